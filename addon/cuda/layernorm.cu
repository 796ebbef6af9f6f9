// LayerNorm family: one warp per row, the row held in registers (fp32), two-pass
// mean/variance, each lane owning element pairs 2*lane + 64*k.
//
//   launchLayerNorm        out = LN(in)  or  out += LN(in)  (V2 post-norm residual)  [rows, C]
//   launchPatchMergeGather [B, H, W, C] -> [B, H/2, W/2, 4C], optionally normalised over 4C
//   launchFinalNormPool    [B, L, C] -> [B, C] = mean over tokens of LN(x)
//
// Napkin math: memory-bound, one read + one write per element (residual: two reads).
// Swin-T b128 stage 1 (401k x 96 fp16): 77 MB read + 77 MB written -> ~50 us at 3 TB/s;
// per block of the whole network a LayerNorm moves the same bytes as one activation pass.
//
// Why there is no "LayerNorm + cyclic shift + window partition" kernel: the QKV projection
// is per token, so it runs on natural-order rows and the attention kernel gathers each
// window's q/k/v rows through the (shift, partition) index map. That removes the
// partitioned copy (one read + one write of the activations per block) instead of fusing it.
#include <algorithm>

#include "common.cuh"
#include "common/cuda_check.h"
#include "kernels.h"

namespace swin {

namespace {

constexpr int kWarps = 4;  // rows per block in the row-wise kernels

// Mean and 1/std of the pairs held by a warp (zero pairs outside [0, C) are skipped).
template <int KMAX>
__device__ __forceinline__ void rowStats(const float2 (&v)[KMAX], int C, float eps, int lane, float& mean,
                                         float& rstd) {
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    if (e < C) s += v[k].x + v[k].y;
  }
  mean = warpSum(s) / C;
  float q = 0.f;
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    if (e < C) {
      const float a = v[k].x - mean, b = v[k].y - mean;
      q += a * a + b * b;
    }
  }
  rstd = rsqrtf(warpSum(q) / C + eps);
}

template <typename T, int KMAX>
__global__ void layerNormKernel(const T* in, T* out, const T* __restrict__ gamma, const T* __restrict__ beta, int rows,
                                int C, float eps, bool residual) {
  const int lane = threadIdx.x & 31;
  const long long row = static_cast<long long>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const T* src = in + row * C;
  T* dst = out + row * C;
  float2 v[KMAX];
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    v[k] = e < C ? Num<T>::load2(src + e) : make_float2(0.f, 0.f);
  }
  float mean, rstd;
  rowStats<KMAX>(v, C, eps, lane, mean, rstd);
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    if (e < C) {
      const float2 g = Num<T>::load2(gamma + e), b = Num<T>::load2(beta + e);
      float y0 = (v[k].x - mean) * rstd * g.x + b.x;
      float y1 = (v[k].y - mean) * rstd * g.y + b.y;
      if (residual) {
        const float2 r = Num<T>::load2(dst + e);
        y0 += r.x;
        y1 += r.y;
      }
      Num<T>::store2(dst + e, y0, y1);
    }
  }
}

template <typename T, int KMAX>
__global__ void patchMergeKernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ gamma,
                                 const T* __restrict__ beta, int B, int H, int W, int C, float eps) {
  const int lane = threadIdx.x & 31;
  const int Ho = H / 2, Wo = W / 2, C4 = 4 * C;
  const long long row = static_cast<long long>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= static_cast<long long>(B) * Ho * Wo) return;
  const int j = static_cast<int>(row % Wo);
  const int i = static_cast<int>((row / Wo) % Ho);
  const long long b = row / (static_cast<long long>(Wo) * Ho);
  float2 v[KMAX];
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    if (e < C4) {
      const int q = e / C, c = e - q * C;  // C is even, so a pair never straddles quadrants
      const int dy = q & 1, dx = q >> 1;
      v[k] = Num<T>::load2(x + ((b * H + 2 * i + dy) * W + 2 * j + dx) * C + c);
    } else {
      v[k] = make_float2(0.f, 0.f);
    }
  }
  T* dst = out + row * C4;
  if (gamma == nullptr) {
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int e = 2 * lane + 64 * k;
      if (e < C4) Num<T>::store2(dst + e, v[k].x, v[k].y);
    }
    return;
  }
  float mean, rstd;
  rowStats<KMAX>(v, C4, eps, lane, mean, rstd);
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    if (e < C4) {
      const float2 g = Num<T>::load2(gamma + e), bb = Num<T>::load2(beta + e);
      Num<T>::store2(dst + e, (v[k].x - mean) * rstd * g.x + bb.x, (v[k].y - mean) * rstd * g.y + bb.y);
    }
  }
}

constexpr int kPoolWarps = 8;

template <typename T, int KMAX>
__global__ void finalNormPoolKernel(const T* __restrict__ x, T* __restrict__ pooled, const T* __restrict__ gamma,
                                    const T* __restrict__ beta, int L, int C, float eps) {
  __shared__ float part[kPoolWarps][KMAX * 64];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long long b = blockIdx.x;
  float2 acc[KMAX];
#pragma unroll
  for (int k = 0; k < KMAX; ++k) acc[k] = make_float2(0.f, 0.f);
  for (int t = warp; t < L; t += kPoolWarps) {
    const T* src = x + (b * L + t) * C;
    float2 v[KMAX];
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int e = 2 * lane + 64 * k;
      v[k] = e < C ? Num<T>::load2(src + e) : make_float2(0.f, 0.f);
    }
    float mean, rstd;
    rowStats<KMAX>(v, C, eps, lane, mean, rstd);
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int e = 2 * lane + 64 * k;
      if (e < C) {
        const float2 g = Num<T>::load2(gamma + e), bb = Num<T>::load2(beta + e);
        acc[k].x += (v[k].x - mean) * rstd * g.x + bb.x;
        acc[k].y += (v[k].y - mean) * rstd * g.y + bb.y;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int e = 2 * lane + 64 * k;
    part[warp][e] = acc[k].x;
    part[warp][e + 1] = acc[k].y;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < kPoolWarps; ++w) s += part[w][c];
    pooled[b * C + c] = Num<T>::fromF(s / L);
  }
}

// Smallest register budget that holds a row of `width` elements.
template <typename F>
void dispatchWidth(int width, F&& f) {
  if (width % 2 != 0) throw EngineError(ErrorCode::kCuda, "LayerNorm width must be even, got " + std::to_string(width));
  if (width <= 64) f(std::integral_constant<int, 1>());
  else if (width <= 128) f(std::integral_constant<int, 2>());
  else if (width <= 256) f(std::integral_constant<int, 4>());
  else if (width <= 512) f(std::integral_constant<int, 8>());
  else if (width <= 1024) f(std::integral_constant<int, 16>());
  else if (width <= 2048) f(std::integral_constant<int, 32>());
  else throw EngineError(ErrorCode::kCuda, "LayerNorm width " + std::to_string(width) + " > 2048 not supported");
}

}  // namespace

template <typename T>
void launchLayerNorm(const T* in, T* out, const T* gamma, const T* beta, int rows, int C, float eps, bool residual,
                     cudaStream_t s) {
  dispatchWidth(C, [&](auto kmax) {
    layerNormKernel<T, decltype(kmax)::value>
        <<<ceilDiv(rows, kWarps), kWarps * 32, 0, s>>>(in, out, gamma, beta, rows, C, eps, residual);
  });
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchPatchMergeGather(const T* x, T* out, const T* gamma, const T* beta, int B, int H, int W, int C, float eps,
                            cudaStream_t s) {
  if (H % 2 || W % 2) throw EngineError(ErrorCode::kCuda, "patch merging needs even H and W");
  const long long rows = static_cast<long long>(B) * (H / 2) * (W / 2);
  dispatchWidth(4 * C, [&](auto kmax) {
    patchMergeKernel<T, decltype(kmax)::value>
        <<<ceilDiv(rows, kWarps), kWarps * 32, 0, s>>>(x, out, gamma, beta, B, H, W, C, eps);
  });
  SWIN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchFinalNormPool(const T* x, T* pooled, const T* gamma, const T* beta, int B, int L, int C, float eps,
                         cudaStream_t s) {
  if (C > 1024) throw EngineError(ErrorCode::kCuda, "final norm width > 1024 not supported");
  dispatchWidth(C, [&](auto kmax) {
    constexpr int K = decltype(kmax)::value;
    if constexpr (K <= 16) finalNormPoolKernel<T, K><<<B, kPoolWarps * 32, 0, s>>>(x, pooled, gamma, beta, L, C, eps);
  });
  SWIN_CUDA_CHECK_LAUNCH();
}

#define SWIN_INSTANTIATE(T)                                                                                           \
  template void launchLayerNorm<T>(const T*, T*, const T*, const T*, int, int, float, bool, cudaStream_t);            \
  template void launchPatchMergeGather<T>(const T*, T*, const T*, const T*, int, int, int, int, float, cudaStream_t); \
  template void launchFinalNormPool<T>(const T*, T*, const T*, const T*, int, int, int, float, cudaStream_t);
SWIN_INSTANTIATE(float)
SWIN_INSTANTIATE(__half)
#undef SWIN_INSTANTIATE

}  // namespace swin
