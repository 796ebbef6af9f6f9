// Fused (shifted-)window multi-head self-attention, V1 and V2, one CTA per (window, head).
//
//   qkv  [B*H*W, 3C] natural token order (the QKV projection's output, bias included);
//        q = cols [0, C), k = [C, 2C), v = [2C, 3C), head h at h*32 within each
//   out  [B*H*W, C]  natural token order, head-major channels (h*32 + d), ready for proj
//   bias [heads, N, N] (V1: gathered relative-position bias; V2: 16*sigmoid(CPB))
//   mask [nW, N, N] (0 / -100) for shifted blocks, else nullptr
//   V1: P = softmax(scale * q k^T + bias + mask);  V2: P = softmax(ls[h] * q^ k^T + bias + mask)
//       with q^ = q / max(|q|, 1e-12) and ls[h] = exp(min(logit_scale[h], log 100)) precomputed
//   out = P v
//
// Window token i of window (wy, wx) sits at natural position
//   ((wy*ws + i/ws + shift) mod H, (wx*ws + i%ws + shift) mod W),
// so the cyclic shift + window partition happen in the loads and the window reverse +
// un-shift in the stores: no partitioned copies of the activations exist.
//
// fp16 path: tensor cores through mma.sync m16n8k16 (fp16 in, fp32 accumulate). Each warp
// owns 16 query rows; K (row-major) and V (transposed) sit in shared memory; S = QK^T is
// computed in key chunks of KC with an online softmax (FlashAttention-2 style), P goes from
// the S accumulators straight into the A fragments of the PV product. N is padded to NP, a
// multiple of 16 (49 -> 64); padded keys get -inf, padded query rows are never stored.
// fp32 path (checking mode): plain fp32 SIMT, one warp per query row.
//
// Napkin math per window and head (N = 49, d = 32): QK^T + PV = 4*N*N*d = 307 kFLOP; bytes:
// q,k,v 3*N*d*2 + out N*d*2 = 12.5 kB fp16 plus bias reads (L2-resident, shared by all
// windows). Swin-T b128 stage 1: 128*64*3 CTAs = 7.5 GFLOP, 308 MB of qkv+out -> ~0.1 ms
// memory floor; the attention is memory-bound, the tensor cores only keep it so.
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "common/cuda_check.h"
#include "kernels.h"

namespace swin {

namespace {

constexpr int kHeadDim = 32;

template <typename T>
struct AttnArgs {
  const T* qkv;
  T* out;
  const T* bias;
  const T* mask;
  const float* logit_scale;
  float scale;
  int H, W, C, heads, ws, shift, nWx, nW;
};

// Natural-order row of token i of window `win` (win = b*nW + wy*nWx + wx).
template <typename T>
__device__ __forceinline__ long long tokenRow(const AttnArgs<T>& a, int win, int i) {
  const int b = win / a.nW, w = win - b * a.nW;
  const int wy = w / a.nWx, wx = w - wy * a.nWx;
  const int iy = i / a.ws, ix = i - iy * a.ws;
  int y = wy * a.ws + iy + a.shift;
  int x = wx * a.ws + ix + a.shift;
  if (y >= a.H) y -= a.H;
  if (x >= a.W) x -= a.W;
  return (static_cast<long long>(b) * a.H + y) * a.W + x;
}

__device__ __forceinline__ uint32_t packHalf2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---------------------------------------------------------------- fp16, tensor cores
template <int NP, int KC>
__global__ void __launch_bounds__(NP * 2) windowAttentionMmaKernel(AttnArgs<__half> a) {
  constexpr int HD = kHeadDim;
  constexpr int KS = HD + 8;  // K row stride in halves (80 B: 16-B aligned, conflict-free fragment reads)
  constexpr int VS = NP + 8;  // V^T row stride in halves
  __shared__ __align__(16) __half Ks[NP * KS];
  __shared__ __align__(16) __half Vt[HD * VS];

  const int win = blockIdx.x, h = blockIdx.y;
  const int N = a.ws * a.ws;
  const int C3 = 3 * a.C;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bool cosine = a.logit_scale != nullptr;

  // Stage K (rows, L2-normalised for V2) and V (transposed) in shared memory: slots
  // [0, NP) are K rows, [NP, 2NP) V rows, strided over the block's threads.
  for (int slot = tid; slot < 2 * NP; slot += blockDim.x) {
    const bool isK = slot < NP;
    const int r = isK ? slot : slot - NP;
    uint4 raw[4];
    if (r < N) {
      const uint4* src =
          reinterpret_cast<const uint4*>(a.qkv + tokenRow(a, win, r) * C3 + (isK ? a.C : 2 * a.C) + h * HD);
#pragma unroll
      for (int u = 0; u < 4; ++u) raw[u] = src[u];
    } else {
#pragma unroll
      for (int u = 0; u < 4; ++u) raw[u] = make_uint4(0, 0, 0, 0);
    }
    const __half* hv = reinterpret_cast<const __half*>(raw);
    if (isK) {
      if (cosine) {
        float ss = 0.f;
#pragma unroll
        for (int d = 0; d < HD; ++d) ss += __half2float(hv[d]) * __half2float(hv[d]);
        const float inv = 1.f / fmaxf(sqrtf(ss), 1e-12f);
        __half* dst = Ks + r * KS;
#pragma unroll
        for (int d = 0; d < HD; d += 2)
          *reinterpret_cast<__half2*>(dst + d) =
              __floats2half2_rn(__half2float(hv[d]) * inv, __half2float(hv[d + 1]) * inv);
      } else {
        uint4* dst = reinterpret_cast<uint4*>(Ks + r * KS);
#pragma unroll
        for (int u = 0; u < 4; ++u) dst[u] = raw[u];
      }
    } else {
#pragma unroll
      for (int d = 0; d < HD; ++d) Vt[d * VS + r] = hv[d];
    }
  }

  // Q fragments (A operand, 16 rows per warp) straight from global memory, scaled in fp32.
  const int g = lane >> 2, t = lane & 3;
  // blockIdx.z picks this CTA's slice of query rows (small grids split a window's queries)
  const int i0 = blockIdx.z * (blockDim.x / 32) * 16 + warp * 16 + g, i1 = i0 + 8;
  uint32_t qa[HD / 16][4];
  {
    float q0[HD / 4], q1[HD / 4];  // this thread's 8 columns of rows i0 and i1
    const __half* p0 = i0 < N ? a.qkv + tokenRow(a, win, i0) * C3 + h * HD : nullptr;
    const __half* p1 = i1 < N ? a.qkv + tokenRow(a, win, i1) * C3 + h * HD : nullptr;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int col = kk * 16 + half * 8 + 2 * t;
        const int slot = kk * 4 + half * 2;
        float2 v0 = p0 ? __half22float2(*reinterpret_cast<const __half2*>(p0 + col)) : make_float2(0.f, 0.f);
        float2 v1 = p1 ? __half22float2(*reinterpret_cast<const __half2*>(p1 + col)) : make_float2(0.f, 0.f);
        q0[slot] = v0.x;
        q0[slot + 1] = v0.y;
        q1[slot] = v1.x;
        q1[slot + 1] = v1.y;
      }
    }
    float s0 = a.scale, s1 = a.scale;
    if (cosine) {
      float ss0 = 0.f, ss1 = 0.f;
#pragma unroll
      for (int u = 0; u < HD / 4; ++u) {
        ss0 += q0[u] * q0[u];
        ss1 += q1[u] * q1[u];
      }
      ss0 += __shfl_xor_sync(0xffffffffu, ss0, 1);
      ss0 += __shfl_xor_sync(0xffffffffu, ss0, 2);
      ss1 += __shfl_xor_sync(0xffffffffu, ss1, 1);
      ss1 += __shfl_xor_sync(0xffffffffu, ss1, 2);
      const float ls = a.logit_scale[h];
      s0 = ls / fmaxf(sqrtf(ss0), 1e-12f);
      s1 = ls / fmaxf(sqrtf(ss1), 1e-12f);
    }
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      qa[kk][0] = packHalf2(q0[kk * 4] * s0, q0[kk * 4 + 1] * s0);
      qa[kk][1] = packHalf2(q1[kk * 4] * s1, q1[kk * 4 + 1] * s1);
      qa[kk][2] = packHalf2(q0[kk * 4 + 2] * s0, q0[kk * 4 + 3] * s0);
      qa[kk][3] = packHalf2(q1[kk * 4 + 2] * s1, q1[kk * 4 + 3] * s1);
    }
  }
  __syncthreads();

  const int wIn = win % a.nW;
  const __half* bias0 = a.bias + (static_cast<long long>(h) * N + (i0 < N ? i0 : 0)) * N;
  const __half* bias1 = a.bias + (static_cast<long long>(h) * N + (i1 < N ? i1 : 0)) * N;
  const __half* mask0 = a.mask ? a.mask + (static_cast<long long>(wIn) * N + (i0 < N ? i0 : 0)) * N : nullptr;
  const __half* mask1 = a.mask ? a.mask + (static_cast<long long>(wIn) * N + (i1 < N ? i1 : 0)) * N : nullptr;

  float o[HD / 8][4];
#pragma unroll
  for (int nd = 0; nd < HD / 8; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

#pragma unroll 1
  for (int kc = 0; kc < NP; kc += KC) {
    float s[KC / 8][4];
#pragma unroll
    for (int nt = 0; nt < KC / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const __half* krow = Ks + (kc + nt * 8 + g) * KS + 2 * t;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + kk * 16);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + kk * 16 + 8);
        mma16816(s[nt], qa[kk], b0, b1);
      }
    }
    // + bias + mask; padded keys -> -inf
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < KC / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = kc + nt * 8 + 2 * t + e;
        if (j < N) {
          float b0v = __half2float(bias0[j]), b1v = __half2float(bias1[j]);
          if (mask0) {
            b0v += __half2float(mask0[j]);
            b1v += __half2float(mask1[j]);
          }
          s[nt][e] += b0v;
          s[nt][2 + e] += b1v;
        } else {
          s[nt][e] = -INFINITY;
          s[nt][2 + e] = -INFINITY;
        }
        mx0 = fmaxf(mx0, s[nt][e]);
        mx1 = fmaxf(mx1, s[nt][2 + e]);
      }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float nm0 = fmaxf(m0, mx0), nm1 = fmaxf(m1, mx1);  // finite: every chunk holds a real key
    const float al0 = __expf(m0 - nm0), al1 = __expf(m1 - nm1);
    m0 = nm0;
    m1 = nm1;
    l0 *= al0;
    l1 *= al1;
#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd) {
      o[nd][0] *= al0;
      o[nd][1] *= al0;
      o[nd][2] *= al1;
      o[nd][3] *= al1;
    }
#pragma unroll
    for (int nt = 0; nt < KC / 8; ++nt) {
      s[nt][0] = __expf(s[nt][0] - nm0);
      s[nt][1] = __expf(s[nt][1] - nm0);
      s[nt][2] = __expf(s[nt][2] - nm1);
      s[nt][3] = __expf(s[nt][3] - nm1);
      l0 += s[nt][0] + s[nt][1];
      l1 += s[nt][2] + s[nt][3];
    }
    // O += P V: the S accumulators of two adjacent n-tiles form one 16x16 A fragment.
#pragma unroll
    for (int kb = 0; kb < KC / 16; ++kb) {
      const uint32_t pa[4] = {packHalf2(s[2 * kb][0], s[2 * kb][1]), packHalf2(s[2 * kb][2], s[2 * kb][3]),
                              packHalf2(s[2 * kb + 1][0], s[2 * kb + 1][1]),
                              packHalf2(s[2 * kb + 1][2], s[2 * kb + 1][3])};
#pragma unroll
      for (int nd = 0; nd < HD / 8; ++nd) {
        const __half* vrow = Vt + (nd * 8 + g) * VS + kc + kb * 16 + 2 * t;
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(vrow);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(vrow + 8);
        mma16816(o[nd], pa, b0, b1);
      }
    }
  }
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  if (i0 < N) {
    __half* dst = a.out + tokenRow(a, win, i0) * a.C + h * HD + 2 * t;
#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd)
      *reinterpret_cast<__half2*>(dst + nd * 8) = __floats2half2_rn(o[nd][0] * inv0, o[nd][1] * inv0);
  }
  if (i1 < N) {
    __half* dst = a.out + tokenRow(a, win, i1) * a.C + h * HD + 2 * t;
#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd)
      *reinterpret_cast<__half2*>(dst + nd * 8) = __floats2half2_rn(o[nd][2] * inv1, o[nd][3] * inv1);
  }
}

// ---------------------------------------------------------------- fp32, checking mode
constexpr int kF32Warps = 8;

__global__ void __launch_bounds__(kF32Warps * 32) windowAttentionF32Kernel(AttnArgs<float> a) {
  constexpr int HD = kHeadDim, KS = HD + 1;
  extern __shared__ float sm[];
  const int N = a.ws * a.ws;
  float* Ks = sm;                  // [N][KS]
  float* Vs = Ks + N * KS;         // [N][KS]
  float* Ps = Vs + N * KS;         // [warps][N]
  float* Qs = Ps + kF32Warps * N;  // [warps][HD]
  const int win = blockIdx.x, h = blockIdx.y, wIn = win % a.nW;
  const int C3 = 3 * a.C;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool cosine = a.logit_scale != nullptr;
  for (int idx = threadIdx.x; idx < N * HD; idx += blockDim.x) {
    const int r = idx / HD, d = idx - r * HD;
    const float* src = a.qkv + tokenRow(a, win, r) * C3 + h * HD + d;
    Ks[r * KS + d] = src[a.C];
    Vs[r * KS + d] = src[2 * a.C];
  }
  __syncthreads();
  if (cosine) {
    for (int r = threadIdx.x; r < N; r += blockDim.x) {
      float ss = 0.f;
      for (int d = 0; d < HD; ++d) ss += Ks[r * KS + d] * Ks[r * KS + d];
      const float inv = 1.f / fmaxf(sqrtf(ss), 1e-12f);
      for (int d = 0; d < HD; ++d) Ks[r * KS + d] *= inv;
    }
    __syncthreads();
  }
  float* P = Ps + warp * N;
  float* Q = Qs + warp * HD;
  for (int i = warp; i < N; i += kF32Warps) {
    const long long row = tokenRow(a, win, i);
    const float q = a.qkv[row * C3 + h * HD + lane];  // HD == 32 == warp size
    float s = a.scale;
    if (cosine) s = a.logit_scale[h] / fmaxf(sqrtf(warpSum(q * q)), 1e-12f);
    Q[lane] = q * s;
    __syncwarp();
    float mx = -INFINITY;
    for (int j = lane; j < N; j += 32) {
      float acc = 0.f;
#pragma unroll
      for (int d = 0; d < HD; ++d) acc += Q[d] * Ks[j * KS + d];
      acc += a.bias[(static_cast<long long>(h) * N + i) * N + j];
      if (a.mask) acc += a.mask[(static_cast<long long>(wIn) * N + i) * N + j];
      P[j] = acc;
      mx = fmaxf(mx, acc);
    }
    mx = warpMax(mx);
    float sum = 0.f;
    for (int j = lane; j < N; j += 32) {
      const float p = expf(P[j] - mx);
      P[j] = p;
      sum += p;
    }
    sum = warpSum(sum);
    __syncwarp();
    float acc = 0.f;
    for (int j = 0; j < N; ++j) acc += P[j] * Vs[j * KS + lane];
    a.out[row * a.C + h * HD + lane] = acc / sum;
    __syncwarp();
  }
}

template <typename T>
AttnArgs<T> makeArgs(const T* qkv, T* out, const T* bias, const T* mask, const float* logit_scale, float scale, int H,
                     int W, int C, int heads, int ws, int shift) {
  if (C != heads * kHeadDim)
    throw EngineError(ErrorCode::kCuda, "window attention supports head dim 32 only (C=" + std::to_string(C) +
                                            ", heads=" + std::to_string(heads) + ")");
  if (ws * ws > 256 || H % ws || W % ws)
    throw EngineError(ErrorCode::kCuda, "window " + std::to_string(ws) + " does not tile " + std::to_string(H) + "x" +
                                            std::to_string(W) + " or exceeds 16");
  AttnArgs<T> a{qkv, out, bias, mask, logit_scale, scale, H, W, C, heads, ws, shift, W / ws, (H / ws) * (W / ws)};
  return a;
}

}  // namespace

template <>
void launchWindowAttention<__half>(const __half* qkv, __half* out, const __half* bias, const __half* mask,
                                   const float* logit_scale, float scale, int B, int H, int W, int C, int heads, int ws,
                                   int shift, cudaStream_t s) {
  const AttnArgs<__half> a = makeArgs(qkv, out, bias, mask, logit_scale, scale, H, W, C, heads, ws, shift);
  const int np = (ws * ws + 15) / 16 * 16;
  // One CTA per (window, head) holds NP/16 warps. When that gives fewer than ~2 CTAs per SM
  // (batch 1, late stages) the window's query rows are split over `splits` CTAs, each
  // staging the same K/V (L2 hits) and computing NP/splits rows: more SMs busy at low batch.
  static int sms = 0;
  if (sms == 0) {
    int dev = 0;
    SWIN_CUDA_CHECK(cudaGetDevice(&dev));
    SWIN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  }
  int splits = 1;
  if (static_cast<long long>(B) * a.nW * heads < 2LL * sms)
    splits = np == 256 ? 4 : (np == 144 ? 3 : (np == 64 ? 2 : 1));
  const dim3 grid(B * a.nW, heads, splits);
  const int threads = np / splits / 16 * 32;
  switch (np) {
    case 16: windowAttentionMmaKernel<16, 16><<<grid, threads, 0, s>>>(a); break;
    case 32: windowAttentionMmaKernel<32, 32><<<grid, threads, 0, s>>>(a); break;
    case 64: windowAttentionMmaKernel<64, 64><<<grid, threads, 0, s>>>(a); break;
    case 144: windowAttentionMmaKernel<144, 48><<<grid, threads, 0, s>>>(a); break;
    case 256: windowAttentionMmaKernel<256, 64><<<grid, threads, 0, s>>>(a); break;
    default:
      throw EngineError(ErrorCode::kCuda, "no fp16 window-attention kernel for window " + std::to_string(ws) +
                                              " (supported: 4, 7, 8, 12, 16)");
  }
  SWIN_CUDA_CHECK_LAUNCH();
}

template <>
void launchWindowAttention<float>(const float* qkv, float* out, const float* bias, const float* mask,
                                  const float* logit_scale, float scale, int B, int H, int W, int C, int heads, int ws,
                                  int shift, cudaStream_t s) {
  const AttnArgs<float> a = makeArgs(qkv, out, bias, mask, logit_scale, scale, H, W, C, heads, ws, shift);
  const int N = ws * ws;
  const size_t smem = (2 * N * (kHeadDim + 1) + kF32Warps * N + kF32Warps * kHeadDim) * sizeof(float);
  static bool raised = false;  // the attribute is per function, not per stream: set it once
  if (!raised) {
    SWIN_CUDA_CHECK(
        cudaFuncSetAttribute(windowAttentionF32Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
    raised = true;
  }
  windowAttentionF32Kernel<<<dim3(B * a.nW, heads), kF32Warps * 32, smem, s>>>(a);
  SWIN_CUDA_CHECK_LAUNCH();
}

}  // namespace swin
