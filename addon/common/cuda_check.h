// Checked calls into CUDA and cuBLAS(Lt): the one check header of the addon and the CUDA
// engine. Every failing call throws swin::EngineError carrying the library's own status name
// and message, the expression and file:line; nothing here exits the process.
//
//   SWIN_CUDA_CHECK(cudaMalloc(&p, bytes));
//   SWIN_CUDA_CHECK_LAUNCH();              // after a kernel launch
//   SWIN_CUBLAS_CHECK(cublasLtMatmul(...));  // include <cublasLt.h> first
//
// The status -> code mapping (cuda_errors.cc) is compiled in every build, with or without
// CUDA, so the addon's tests drive it on machines without a GPU (testing/fault_engine.cc).
// TensorRT and nvJPEG report through their own checks (tensorrt/, nvjpeg/), which throw the
// same EngineError.
#pragma once

#include "common/errors.h"

namespace swin {
namespace detail {

// Values of the cudaError_t / cublasStatus_t enumerators that get their own
// code; static_asserts below hold them to the real headers where present.
constexpr int kCudaErrorMemoryAllocation = 2;
constexpr int kCudaErrorInsufficientDriver = 35;
constexpr int kCudaErrorNoDevice = 100;
constexpr int kCudaErrorInvalidDevice = 101;
constexpr int kCudaErrorNoKernelImageForDevice = 209;
constexpr int kCublasStatusAllocFailed = 3;
constexpr int kCublasStatusArchMismatch = 8;

// kOutOfMemory, kNoDevice, kEngineMismatch for kernels built for another GPU architecture
// (what docs/addon.md promises: the build, not the call, is wrong), else kCuda.
ErrorCode codeForCudaStatus(int status);
ErrorCode codeForCublasStatus(int status);

// "<library> error <name> (<status>): <message> in `<expr>` at <file>:<line>"
[[noreturn]] void throwLibraryError(ErrorCode code, const char* library, int status, const char* name,
                                    const char* message, const char* expr, const char* file, int line);

}  // namespace detail
}  // namespace swin

#ifdef SWIN_HAVE_CUDA
#include <cuda_runtime_api.h>

static_assert(cudaErrorMemoryAllocation == swin::detail::kCudaErrorMemoryAllocation, "CUDA enum drifted");
static_assert(cudaErrorInsufficientDriver == swin::detail::kCudaErrorInsufficientDriver, "CUDA enum drifted");
static_assert(cudaErrorNoDevice == swin::detail::kCudaErrorNoDevice, "CUDA enum drifted");
static_assert(cudaErrorInvalidDevice == swin::detail::kCudaErrorInvalidDevice, "CUDA enum drifted");
static_assert(cudaErrorNoKernelImageForDevice == swin::detail::kCudaErrorNoKernelImageForDevice, "CUDA enum drifted");

namespace swin {
namespace detail {
[[noreturn]] inline void throwCudaError(cudaError_t status, const char* expr, const char* file, int line) {
  // Clear the non-sticky error so the next call on this thread starts clean.
  (void)cudaGetLastError();
  throwLibraryError(codeForCudaStatus(static_cast<int>(status)), "CUDA", static_cast<int>(status),
                    cudaGetErrorName(status), cudaGetErrorString(status), expr, file, line);
}
}  // namespace detail
}  // namespace swin

#define SWIN_CUDA_CHECK(expr)                                                                                 \
  do {                                                                                                        \
    const cudaError_t swin_status_ = (expr);                                                                  \
    if (swin_status_ != cudaSuccess) ::swin::detail::throwCudaError(swin_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// Kernel launches report configuration errors through cudaGetLastError(); faults inside
// the kernel surface at the next synchronising call, also checked.
#define SWIN_CUDA_CHECK_LAUNCH() SWIN_CUDA_CHECK(cudaGetLastError())

#endif  // SWIN_HAVE_CUDA

// cuBLASLt: include <cublasLt.h> before this header to get the macro (most of the addon
// does not link cuBLAS).
#if defined(SWIN_HAVE_CUDA) && defined(CUBLAS_VER_MAJOR)
static_assert(CUBLAS_STATUS_ALLOC_FAILED == swin::detail::kCublasStatusAllocFailed, "cuBLAS enum drifted");
static_assert(CUBLAS_STATUS_ARCH_MISMATCH == swin::detail::kCublasStatusArchMismatch, "cuBLAS enum drifted");
#define SWIN_CUBLAS_CHECK(expr)                                                                              \
  do {                                                                                                       \
    const cublasStatus_t swin_status_ = (expr);                                                              \
    if (swin_status_ != CUBLAS_STATUS_SUCCESS)                                                               \
      ::swin::detail::throwLibraryError(::swin::detail::codeForCublasStatus(swin_status_), "cuBLAS",         \
                                        static_cast<int>(swin_status_), cublasLtGetStatusName(swin_status_), \
                                        cublasLtGetStatusString(swin_status_), #expr, __FILE__, __LINE__);   \
  } while (0)
#endif
