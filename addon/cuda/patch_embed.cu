// Patch embedding, part 1: uint8 NHWC -> normalised patch rows (im2col), so the 4x4/4
// convolution runs as one GEMM (cuBLASLt, bias epilogue) followed by the patch norm.
//
//   images  [B, H, W, 3] uint8 (sharp's raw RGB)
//   patches [B*(H/P)*(W/P), P*P*3] T, column (ky*P + kx)*3 + c, value (px/255 - mean[c]) / std[c]
//
// Napkin math (Swin-T, 224, P=4, B=128): reads 19.3 MB of uint8, writes 38.5 MB of fp16:
// ~20 us at 3 TB/s. The GEMM after it is 401k x 96 x 48 = 3.7 GFLOP (~5-10 us).
#include <algorithm>

#include "common.cuh"
#include "common/cuda_check.h"
#include "kernels.h"

namespace swin {

template <typename T>
__global__ void patchEmbedIm2colKernel(const uint8_t* __restrict__ images, T* __restrict__ patches, int H, int W, int P,
                                       long long total, float3 scale, float3 shift) {
  const int K = P * P * 3;
  const int Wp = W / P, Hp = H / P;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long row = e / K;
    const int k = static_cast<int>(e - row * K);
    const int px = static_cast<int>(row % Wp);
    const long long t = row / Wp;
    const int py = static_cast<int>(t % Hp);
    const long long b = t / Hp;
    const int ky = k / (P * 3);
    const int rem = k - ky * P * 3;  // kx*3 + c: contiguous bytes in the image row
    const int c = rem % 3;
    const float v = images[((b * H + py * P + ky) * W + px * P) * 3 + rem];
    const float sc = c == 0 ? scale.x : (c == 1 ? scale.y : scale.z);
    const float sh = c == 0 ? shift.x : (c == 1 ? shift.y : shift.z);
    patches[e] = Num<T>::fromF(v * sc + sh);
  }
}

template <typename T>
void launchPatchEmbedIm2col(const uint8_t* images, T* patches, int B, int H, int W, int P, const float* scale,
                            const float* shift, cudaStream_t s) {
  const long long total = static_cast<long long>(B) * (H / P) * (W / P) * P * P * 3;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<long long>((total + threads - 1) / threads, 132LL * 64));
  patchEmbedIm2colKernel<T><<<blocks, threads, 0, s>>>(images, patches, H, W, P, total,
                                                       make_float3(scale[0], scale[1], scale[2]),
                                                       make_float3(shift[0], shift[1], shift[2]));
  SWIN_CUDA_CHECK_LAUNCH();
}

template void launchPatchEmbedIm2col<float>(const uint8_t*, float*, int, int, int, int, const float*, const float*,
                                            cudaStream_t);
template void launchPatchEmbedIm2col<__half>(const uint8_t*, __half*, int, int, int, int, const float*, const float*,
                                             cudaStream_t);

}  // namespace swin
