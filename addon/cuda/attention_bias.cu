// Load-time kernels of the `unfold` variant: the attention bias, shift masks and V2 logit
// scales are computed on the GPU from the raw tables stored in the engine file (the `fold`
// variant ships the same tensors precomputed by the builder). They run once per engine
// load, outside the per-batch graphs; their cost is irrelevant next to file I/O, so they
// are written for clarity.
//
//   V1 gather : out[h, i, j] = table[index[i*N + j], h]        table [(2w-1)^2, heads] fp32
//   V2 CPB    : t[e, h] = w2[h, :] . relu(W1 coords[e] + b1)  coords [(2w-1)^2, 2], hidden 512
//               out[h, i, j] = 16 * sigmoid(t[index[i*N + j], h])
//   mask      : out[w, i, j] = region(w, i) == region(w, j) ? 0 : -100, regions of the
//               image rolled by -shift, exactly timm's 3x3 slicing
//   logit     : out[h] = exp(min(raw[h], log(100)))
//
// Sizes: SwinV2-B stage 3: 961 entries x 512 hidden x 16 heads = 8 MFLOP, bias 16x256x256.
#include <algorithm>
#include <cmath>

#include "common.cuh"
#include "common/cuda_check.h"
#include "kernels.h"

namespace swin {

namespace {

template <typename T>
__global__ void gatherBiasKernel(const float* table, const int32_t* index, T* out, int heads, int N, bool sig16) {
  const long long total = static_cast<long long>(heads) * N * N;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int h = static_cast<int>(e / (static_cast<long long>(N) * N));
    const int ij = static_cast<int>(e - static_cast<long long>(h) * N * N);
    float v = table[static_cast<long long>(index[ij]) * heads + h];
    if (sig16) v = 16.f / (1.f + expf(-v));
    out[e] = Num<T>::fromF(v);
  }
}

// One block per table entry: hidden units across threads, one reduction per head.
__global__ void cpbMlpKernel(const float* coords, const float* w1, const float* b1, const float* w2, float* table,
                             int hidden, int heads) {
  extern __shared__ float act[];
  const int e = blockIdx.x;
  const float c0 = coords[2 * e], c1 = coords[2 * e + 1];
  for (int k = threadIdx.x; k < hidden; k += blockDim.x)
    act[k] = fmaxf(w1[2 * k] * c0 + w1[2 * k + 1] * c1 + b1[k], 0.f);
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int h = warp; h < heads; h += warps) {
    float s = 0.f;
    for (int k = lane; k < hidden; k += 32) s += w2[static_cast<long long>(h) * hidden + k] * act[k];
    s = warpSum(s);
    if (lane == 0) table[static_cast<long long>(e) * heads + h] = s;
  }
}

__device__ __forceinline__ int shiftRegion(int p, int size, int ws, int shift) {
  return p < size - ws ? 0 : (p < size - shift ? 1 : 2);
}

template <typename T>
__global__ void shiftMaskKernel(T* out, int H, int W, int ws, int shift) {
  const int N = ws * ws, nWx = W / ws, nW = (H / ws) * nWx;
  const long long total = static_cast<long long>(nW) * N * N;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int w = static_cast<int>(e / (static_cast<long long>(N) * N));
    const int ij = static_cast<int>(e - static_cast<long long>(w) * N * N);
    const int i = ij / N, j = ij - i * N;
    const int wy = w / nWx, wx = w - wy * nWx;
    // positions in the rolled (shifted) image, where timm assigns the regions
    const int yi = wy * ws + i / ws, xi = wx * ws + i % ws;
    const int yj = wy * ws + j / ws, xj = wx * ws + j % ws;
    const int ri = shiftRegion(yi, H, ws, shift) * 3 + shiftRegion(xi, W, ws, shift);
    const int rj = shiftRegion(yj, H, ws, shift) * 3 + shiftRegion(xj, W, ws, shift);
    out[e] = Num<T>::fromF(ri == rj ? 0.f : -100.f);
  }
}

__global__ void logitScaleKernel(const float* raw, float* out, int heads) {
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h < heads) out[h] = expf(fminf(raw[h], logf(100.f)));
}

inline int gridFor(long long n) { return static_cast<int>(std::min<long long>((n + 255) / 256, 4096)); }

}  // namespace

template <typename T>
void launchGatherRelativeBias(const float* table, const int32_t* index, T* out, int heads, int N, cudaStream_t s) {
  gatherBiasKernel<T>
      <<<gridFor(static_cast<long long>(heads) * N * N), 256, 0, s>>>(table, index, out, heads, N, false);
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchCpbBias(const float* coords, const float* w1, const float* b1, const float* w2, const int32_t* index,
                   float* scratch, T* out, int entries, int hidden, int heads, int N, cudaStream_t s) {
  cpbMlpKernel<<<entries, 256, hidden * sizeof(float), s>>>(coords, w1, b1, w2, scratch, hidden, heads);
  SWIN_CUDA_CHECK_LAUNCH();
  gatherBiasKernel<T>
      <<<gridFor(static_cast<long long>(heads) * N * N), 256, 0, s>>>(scratch, index, out, heads, N, true);
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchShiftMask(T* out, int H, int W, int ws, int shift, cudaStream_t s) {
  const long long total = static_cast<long long>(H / ws) * (W / ws) * ws * ws * ws * ws;
  shiftMaskKernel<T><<<gridFor(total), 256, 0, s>>>(out, H, W, ws, shift);
  SWIN_CUDA_CHECK_LAUNCH();
}

void launchLogitScale(const float* raw, float* out, int heads, cudaStream_t s) {
  logitScaleKernel<<<(heads + 127) / 128, 128, 0, s>>>(raw, out, heads);
  SWIN_CUDA_CHECK_LAUNCH();
}

#define SWIN_INSTANTIATE(T)                                                                                          \
  template void launchGatherRelativeBias<T>(const float*, const int32_t*, T*, int, int, cudaStream_t);               \
  template void launchCpbBias<T>(const float*, const float*, const float*, const float*, const int32_t*, float*, T*, \
                                 int, int, int, int, cudaStream_t);                                                  \
  template void launchShiftMask<T>(T*, int, int, int, int, cudaStream_t);
SWIN_INSTANTIATE(float)
SWIN_INSTANTIATE(__half)
#undef SWIN_INSTANTIATE

}  // namespace swin
