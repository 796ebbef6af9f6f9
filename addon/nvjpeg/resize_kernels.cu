// Oriented separable resize + crop, uint8 RGB -> uint8 RGB (resize_kernels.h
// has the geometry and the filter). Two launches per image:
//   pass 1 (vertical):   oriented W x H  -> W x out rows (top..top+out-1 of nh), float
//   pass 2 (horizontal): W x out         -> out x out (cols left..left+out-1 of nw)
// One thread per output pixel, 3 channels each; the weights are recomputed per
// thread (a few taps of a closed-form kernel, cheaper than a table in global memory).
// Napkin math for 500x375 -> 256x256, linear: reads 375x256x3x~4 taps + 256x256x3x~4
// taps of cached bytes, ~0.2 MB written; a few microseconds per image on an H100,
// far below nvJPEG's decode time, so these kernels do not bound the path.
#include <cuda_runtime.h>

#include <cmath>

#include "common/cuda_check.h"
#include "nvjpeg/resize_kernels.h"

namespace swin {

namespace {

__device__ __forceinline__ float sinc(float x) {
  if (fabsf(x) < 1e-6f) return 1.f;
  const float px = 3.14159265358979f * x;
  return sinf(px) / px;
}

// The filters and the eight EXIF orientations read as tables, one case per line.
// clang-format off
__device__ __forceinline__ float bicubic(float x, float B, float C) {
  x = fabsf(x);
  if (x < 1.f) return ((12.f - 9.f * B - 6.f * C) * x * x * x + (-18.f + 12.f * B + 6.f * C) * x * x + (6.f - 2.f * B)) / 6.f;
  if (x < 2.f)
    return ((-B - 6.f * C) * x * x * x + (6.f * B + 30.f * C) * x * x + (-12.f * B - 48.f * C) * x + (8.f * B + 24.f * C)) / 6.f;
  return 0.f;
}

__device__ __forceinline__ float kernelRadius(int k) {
  switch (k) {
    case 1: return 1.f;
    case 2: case 3: case 4: return 2.f;
    case 5: return 3.f;
    default: return 0.5f;
  }
}

__device__ __forceinline__ float kernelAt(int k, float x) {
  switch (k) {
    case 1: { const float a = 1.f - fabsf(x); return a > 0.f ? a : 0.f; }
    case 2: return bicubic(x, 0.f, 0.5f);
    case 3: return bicubic(x, 1.f / 3.f, 1.f / 3.f);
    case 4: return fabsf(x) < 2.f ? sinc(x) * sinc(x / 2.f) : 0.f;
    case 5: return fabsf(x) < 3.f ? sinc(x) * sinc(x / 3.f) : 0.f;
    default: return 1.f;
  }
}

// Oriented (u, v) -> stored (x, y); W0/H0 are the stored sides.
__device__ __forceinline__ void unorient(int o, int u, int v, int W0, int H0, int* x, int* y) {
  switch (o) {
    case 2: *x = W0 - 1 - u; *y = v; break;
    case 3: *x = W0 - 1 - u; *y = H0 - 1 - v; break;
    case 4: *x = u; *y = H0 - 1 - v; break;
    case 5: *x = v; *y = u; break;
    case 6: *x = v; *y = H0 - 1 - u; break;
    case 7: *x = W0 - 1 - v; *y = H0 - 1 - u; break;
    case 8: *x = W0 - 1 - v; *y = u; break;
    default: *x = u; *y = v; break;
  }
}
// clang-format on

// Weighted sum along one axis of length L resized to N, output index i.
// fetch(j, c) returns sample j (already clamped by the caller's lambda) channel c.
template <typename Fetch>
__device__ __forceinline__ void filter1d(int kernel, int L, int N, int i, Fetch fetch, float acc[3]) {
  const float s = static_cast<float>(L) / static_cast<float>(N);
  acc[0] = acc[1] = acc[2] = 0.f;
  if (kernel == 0) {  // nearest: the sample under the output pixel's centre
    int j = static_cast<int>(floorf((i + 0.5f) * s));
    j = min(max(j, 0), L - 1);
    for (int c = 0; c < 3; ++c) acc[c] = fetch(j, c);
    return;
  }
  // Shrinking: libvips reduce's centre convention. Enlarging: sharp runs vips_affine with
  // an input displacement of 0.5, i.e. x = i * L / N - 0.5 (measured: exact on 28 -> 256).
  const float center = s > 1.f ? (i + 0.5f) * s - 0.5f : i * s - 0.5f;
  const float f = fmaxf(s, 1.f);
  const float radius = kernelRadius(kernel) * f;
  const int j0 = static_cast<int>(ceilf(center - radius));
  const int j1 = static_cast<int>(floorf(center + radius));
  float wsum = 0.f;
  for (int j = j0; j <= j1; ++j) {
    const float w = kernelAt(kernel, (j - center) / f);
    if (w == 0.f) continue;
    const int jj = min(max(j, 0), L - 1);
    for (int c = 0; c < 3; ++c) acc[c] += w * fetch(jj, c);
    wsum += w;
  }
  const float inv = wsum != 0.f ? 1.f / wsum : 0.f;
  for (int c = 0; c < 3; ++c) acc[c] *= inv;
}

__device__ __forceinline__ uint8_t toByte(float v) {
  v = floorf(v + 0.5f);
  return static_cast<uint8_t>(fminf(fmaxf(v, 0.f), 255.f));
}

// tmp[r][u][c], r in [0, out): row (top + r) of the nh rows, column u of W. Rounded
// to whole levels when shrinking (libvips' reducev writes uchar), kept as float when
// enlarging (libvips' affine interpolates both axes in one pass).
__global__ void resizeVertical(const uint8_t* __restrict__ src, int W0, int H0, int pitch, int o, int W, int H, int nh,
                               int top, int out, int kernel, float* __restrict__ tmp) {
  const int u = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (u >= W || r >= out) return;
  float acc[3];
  filter1d(
      kernel, H, nh, top + r,
      [&](int v, int c) {
        int x, y;
        unorient(o, u, v, W0, H0, &x, &y);
        return static_cast<float>(src[static_cast<size_t>(y) * pitch + x * 3 + c]);
      },
      acc);
  float* p = tmp + (static_cast<size_t>(r) * W + u) * 3;
  const bool shrink = H > nh;
  for (int c = 0; c < 3; ++c) p[c] = shrink ? static_cast<float>(toByte(acc[c])) : acc[c];
}

// dst[r][q][c] = horizontal filter of tmp row r at column (left + q) of nw.
__global__ void resizeHorizontal(const float* __restrict__ tmp, int W, int nw, int left, int out, int kernel,
                                 uint8_t* __restrict__ dst) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (q >= out || r >= out) return;
  const float* row = tmp + static_cast<size_t>(r) * W * 3;
  float acc[3];
  filter1d(kernel, W, nw, left + q, [&](int u, int c) { return row[u * 3 + c]; }, acc);
  uint8_t* p = dst + (static_cast<size_t>(r) * out + q) * 3;
  for (int c = 0; c < 3; ++c) p[c] = toByte(acc[c]);
}

}  // namespace

void launchResizeOriented(const uint8_t* src, int stored_w, int stored_h, int pitch, int orientation,
                          const ResizeGeometry& g, ResizeKernel kernel, float* tmp, uint8_t* dst, void* stream) {
  int W, H;
  orientedSize(stored_w, stored_h, orientation, &W, &H);
  auto st = static_cast<cudaStream_t>(stream);
  const dim3 block(32, 8);
  const dim3 grid1((W + 31) / 32, (g.out + 7) / 8);
  resizeVertical<<<grid1, block, 0, st>>>(src, stored_w, stored_h, pitch, orientation, W, H, g.nh, g.top, g.out,
                                          static_cast<int>(kernel), tmp);
  SWIN_CUDA_CHECK_LAUNCH();
  const dim3 grid2((g.out + 31) / 32, (g.out + 7) / 8);
  resizeHorizontal<<<grid2, block, 0, st>>>(tmp, W, g.nw, g.left, g.out, static_cast<int>(kernel), dst);
  SWIN_CUDA_CHECK_LAUNCH();
}

}  // namespace swin
