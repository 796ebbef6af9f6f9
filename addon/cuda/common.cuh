// Device helpers shared by the engine's kernels: precision traits (fp32 math on
// fp16 or fp32 storage) and warp reductions.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace swin {

template <typename T>
struct Num;
template <>
struct Num<float> {
  static __device__ __forceinline__ float toF(float v) { return v; }
  static __device__ __forceinline__ float fromF(float v) { return v; }
  // Two consecutive elements (index even; rows of even length keep this aligned).
  static __device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
  static __device__ __forceinline__ void store2(float* p, float a, float b) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
  }
};
template <>
struct Num<__half> {
  static __device__ __forceinline__ float toF(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half fromF(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float2 load2(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
  }
  static __device__ __forceinline__ void store2(__half* p, float a, float b) {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
  }
};

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

inline int ceilDiv(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace swin
