// Elementwise kernels outside the GEMM epilogues.
//   launchBiasGelu: x = gelu_erf(x + bias), [rows, C]. Used in fp32 checking mode, where
//     cuBLASLt's tanh-approximated GELU epilogue would cost ~1e-4 of relative error, and as
//     the fallback when no fused epilogue is offered. Swin-T b128 fc1 output: 154M elements,
//     one read + one write = 1.2 GB fp32 (~0.4 ms at 3 TB/s): why fp16 uses the epilogue.
//   launchAddBias: y = (y) + x + bias, the fallback for a GEMM without in-place residual.
//   launchToFloat: fp16 logits -> fp32 output, [B, classes].
#include <algorithm>

#include "common.cuh"
#include "common/cuda_check.h"
#include "kernels.h"

namespace swin {

namespace {
inline int gridFor(long long n, int threads) {
  return static_cast<int>(std::min<long long>((n + threads - 1) / threads, 132LL * 32));
}
}  // namespace

template <typename T>
__global__ void biasGeluKernel(T* x, const T* bias, long long n, int C, bool gelu) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float v = Num<T>::toF(x[i]);
    if (bias) v += Num<T>::toF(bias[i % C]);
    if (gelu) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    x[i] = Num<T>::fromF(v);
  }
}

template <typename T>
__global__ void addBiasKernel(const T* x, const T* bias, T* y, long long n, int C, bool accumulate) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float v = Num<T>::toF(x[i]);
    if (bias) v += Num<T>::toF(bias[i % C]);
    if (accumulate) v += Num<T>::toF(y[i]);
    y[i] = Num<T>::fromF(v);
  }
}

template <typename T>
__global__ void toFloatKernel(const T* x, float* y, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    y[i] = Num<T>::toF(x[i]);
}

template <typename T>
__global__ void naiveGemmKernel(const T* X, const T* W, const T* bias, T* D, int M, int N, int K, bool gelu,
                                bool accumulate) {
  const long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (e >= static_cast<long long>(M) * N) return;
  const int m = static_cast<int>(e / N), n = static_cast<int>(e - static_cast<long long>(m) * N);
  float acc = 0.f;
  for (int k = 0; k < K; ++k)
    acc += Num<T>::toF(X[static_cast<long long>(m) * K + k]) * Num<T>::toF(W[static_cast<long long>(n) * K + k]);
  if (bias) acc += Num<T>::toF(bias[n]);
  if (gelu) acc = 0.5f * acc * (1.0f + erff(acc * 0.70710678118654752f));
  if (accumulate) acc += Num<T>::toF(D[e]);
  D[e] = Num<T>::fromF(acc);
}

template <typename T>
void launchNaiveGemm(const T* X, const T* W, const T* bias, T* D, int M, int N, int K, bool gelu, bool accumulate,
                     cudaStream_t s) {
  const long long n = static_cast<long long>(M) * N;
  naiveGemmKernel<T><<<static_cast<int>((n + 255) / 256), 256, 0, s>>>(X, W, bias, D, M, N, K, gelu, accumulate);
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchBiasGelu(T* x, const T* bias, long long rows, int C, bool gelu, cudaStream_t s) {
  const long long n = rows * C;
  biasGeluKernel<T><<<gridFor(n, 256), 256, 0, s>>>(x, bias, n, C, gelu);
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchAddBias(const T* x, const T* bias, T* y, long long rows, int C, bool accumulate, cudaStream_t s) {
  const long long n = rows * C;
  addBiasKernel<T><<<gridFor(n, 256), 256, 0, s>>>(x, bias, y, n, C, accumulate);
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchToFloat(const T* x, float* y, long long n, cudaStream_t s) {
  toFloatKernel<T><<<gridFor(n, 256), 256, 0, s>>>(x, y, n);
  SWIN_CUDA_CHECK_LAUNCH();
}

#define SWIN_INSTANTIATE(T)                                                                   \
  template void launchBiasGelu<T>(T*, const T*, long long, int, bool, cudaStream_t);          \
  template void launchAddBias<T>(const T*, const T*, T*, long long, int, bool, cudaStream_t); \
  template void launchToFloat<T>(const T*, float*, long long, cudaStream_t);                  \
  template void launchNaiveGemm<T>(const T*, const T*, const T*, T*, int, int, int, bool, bool, cudaStream_t);
SWIN_INSTANTIATE(float)
SWIN_INSTANTIATE(__half)
#undef SWIN_INSTANTIATE

}  // namespace swin
