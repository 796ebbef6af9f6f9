// Linear layers through cuBLASLt with fused epilogues:
//   D[M, N] = act(X[M, K] . W[N, K]^T + bias[N]) (+ D when accumulate)
// row-major activations and PyTorch-layout weights. In cuBLASLt's column-major terms this
// is D^T = W . X^T: A = W (transposed, lda = K), B = X (ldb = K), D (ldd = N); the bias
// epilogue broadcasts along D^T's rows, i.e. per output feature. `accumulate` sets beta = 1
// with C = D (in place), which fuses the residual add of the projection and fc2.
//
// fp16: fp16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F), GELU_BIAS epilogue (cuBLASLt's
// GELU is the tanh form, |diff| < 5e-4 from erf GELU). fp32: CUBLAS_COMPUTE_32F without TF32 and
// erf GELU in a separate kernel, so the checking mode stays at fp32 rounding.
// Algorithms: cuBLASLt's heuristic proposes up to 16 per shape; on the first (eager, uncaptured)
// use each is timed on the real operands and the fastest is kept for that shape (and so for the
// CUDA graphs captured afterwards). When no algorithm supports a fused epilogue the plain
// product runs and a small kernel applies it; when none exists at all, a SIMT fallback runs.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>
#include <vector>

namespace swin {

enum class Epilogue { None, Bias, BiasGelu };

class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  template <typename T>
  void run(const T* X, const T* W, const T* bias, T* D, int M, int N, int K, Epilogue epi, bool accumulate,
           cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool fused = true;                             // epilogue runs inside cuBLASLt
    bool naive = false;                            // cuBLASLt offered no algorithm at all: SIMT fallback kernel
    std::vector<cublasLtMatmulAlgo_t> candidates;  // heuristic's top choices, timed on first use
    bool tuned = false;
  };
  template <typename T>
  void tune(Plan& p, const T* X, const T* W, T* D, int M, int N, bool accumulate, cudaStream_t stream);
  using Key = std::tuple<int, int, int, int, bool, bool>;  // M, N, K, epilogue, accumulate, fp16
  Plan& plan(const Key& key, bool fp16, bool exactGelu);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspaceBytes_ = 32u << 20;
  void* scratch_ = nullptr;  // grow-only output for timing accumulating products (no cudaFree mid-run)
  size_t scratchBytes_ = 0;
  std::map<Key, Plan> plans_;
};

}  // namespace swin
