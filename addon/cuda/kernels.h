// Launchers of the engine's kernels, one .cu per operation. Each is templated on
// the storage precision T (float or __half); arithmetic is fp32 throughout.
// Activations are row-major [tokens, channels], tokens in natural (b, y, x) order.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace swin {

// patch_embed.cu: uint8 NHWC image -> normalised patch rows [B*(H/P)*(W/P), P*P*3],
// column order (ky, kx, c) (the builder permutes the conv weight to match).
// scale[c] = 1/(255*std[c]), shift[c] = -mean[c]/std[c].
template <typename T>
void launchPatchEmbedIm2col(const uint8_t* images, T* patches, int B, int H, int W, int P, const float* scale,
                            const float* shift, cudaStream_t s);

// layernorm.cu
//   out[r] = LN(in[r])                 (residual = false; in == out allowed)
//   out[r] += LN(in[r])                (residual = true: Swin V2's post-norm residual)
template <typename T>
void launchLayerNorm(const T* in, T* out, const T* gamma, const T* beta, int rows, int C, float eps, bool residual,
                     cudaStream_t s);
// Patch merging: x [B, H, W, C] -> out [B, H/2, W/2, 4C] in timm's order (x0, x1, x2, x3) =
// offsets (dy, dx) = (0,0), (1,0), (0,1), (1,1); normalised over 4C when gamma != nullptr
// (Swin V1 norm-then-reduce), plain gather when gamma == nullptr (V2 reduce-then-norm).
template <typename T>
void launchPatchMergeGather(const T* x, T* out, const T* gamma, const T* beta, int B, int H, int W, int C, float eps,
                            cudaStream_t s);
// Final norm + global average pool: x [B, L, C] -> pooled [B, C] = mean_t LN(x[b, t]).
template <typename T>
void launchFinalNormPool(const T* x, T* pooled, const T* gamma, const T* beta, int B, int L, int C, float eps,
                         cudaStream_t s);

// window_attention.cu: shifted-window multi-head attention, reading q/k/v straight from the
// natural-order qkv [B*H*W, 3C] rows (cyclic shift + window partition folded into the
// gather) and writing [B*H*W, C] in natural order (window reverse + un-shift folded into
// the scatter). V1: softmax(scale q k^T + bias + mask) v. V2 (logit_scale != nullptr):
// softmax(logit_scale[h] * cos(q, k) + bias + mask) v. bias [heads, N, N]; mask
// [nW, N, N] or nullptr; N = ws*ws <= 256; head dim C/heads = 32.
template <typename T>
void launchWindowAttention(const T* qkv, T* out, const T* bias, const T* mask, const float* logit_scale, float scale,
                           int B, int H, int W, int C, int heads, int ws, int shift, cudaStream_t s);

// attention_bias.cu (load-time kernels of the unfold variant).
// V1: out[h, i, j] = table[index[i*N + j], h]; table [entries, heads] fp32.
template <typename T>
void launchGatherRelativeBias(const float* table, const int32_t* index, T* out, int heads, int N, cudaStream_t s);
// V2: t[e, h] = w2[h, :] . relu(w1 @ coords[e] + b1); out[h, i, j] = 16 sigmoid(t[index[i*N+j], h]).
// coords [entries, 2], w1 [hidden, 2], b1 [hidden], w2 [heads, hidden]; scratch [entries*heads] fp32.
template <typename T>
void launchCpbBias(const float* coords, const float* w1, const float* b1, const float* w2, const int32_t* index,
                   float* scratch, T* out, int entries, int hidden, int heads, int N, cudaStream_t s);
// Shift mask [nW, N, N]: 0 where both tokens lie in the same region of the rolled image, -100 otherwise.
template <typename T>
void launchShiftMask(T* out, int H, int W, int ws, int shift, cudaStream_t s);
// V2: out[h] = exp(min(raw[h], log(100))).
void launchLogitScale(const float* raw, float* out, int heads, cudaStream_t s);

// elementwise.cu
// x[r, c] = gelu_erf(x[r, c] + bias[c]) (bias may be nullptr); the fp32 checking path and
// the fallback when cuBLASLt offers no fused epilogue.
template <typename T>
void launchBiasGelu(T* x, const T* bias, long long rows, int C, bool gelu, cudaStream_t s);
// y[r, c] += x[r, c] (+ bias[c]); fallback when cuBLASLt cannot accumulate in place.
template <typename T>
void launchAddBias(const T* x, const T* bias, T* y, long long rows, int C, bool accumulate, cudaStream_t s);
// D[M, N] = act(X[M, K] . W[N, K]^T + bias) (+ D): plain SIMT fallback for shapes for which
// cuBLASLt offers no algorithm (e.g. a 10-class head whose rows are not 16-byte aligned).
template <typename T>
void launchNaiveGemm(const T* X, const T* W, const T* bias, T* D, int M, int N, int K, bool gelu, bool accumulate,
                     cudaStream_t s);
template <typename T>
void launchToFloat(const T* x, float* y, long long n, cudaStream_t s);

}  // namespace swin
