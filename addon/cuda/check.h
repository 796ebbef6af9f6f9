// Error checking for every CUDA runtime and cuBLASLt call of the engine.
// A failing call throws swin::EngineError carrying file:line and the library's
// own message (FasterTransformer's check_cuda_error, not llm.c's exit): the
// addon turns it into a rejected Promise, the process never exits.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "../src/engine.h"

namespace swin {
namespace detail {

[[noreturn]] inline void throwCuda(cudaError_t e, const char* what, const char* file, int line) {
  std::string code = (e == cudaErrorMemoryAllocation) ? "ERR_OUT_OF_MEMORY"
                     : (e == cudaErrorNoDevice || e == cudaErrorInvalidDevice || e == cudaErrorInsufficientDriver)
                         ? "ERR_NO_DEVICE"
                         : "ERR_CUDA";
  throw EngineError(code, std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                              cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline const char* cublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

[[noreturn]] inline void throwCublas(cublasStatus_t s, const char* what, const char* file, int line) {
  std::string code = (s == CUBLAS_STATUS_ALLOC_FAILED) ? "ERR_OUT_OF_MEMORY" : "ERR_CUDA";
  throw EngineError(code, std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                              cublasStatusName(s) + " (status " + std::to_string(static_cast<int>(s)) + ")");
}

}  // namespace detail
}  // namespace swin

#define SWIN_CUDA_CHECK(call)                                                   \
  do {                                                                          \
    cudaError_t swin_e_ = (call);                                               \
    if (swin_e_ != cudaSuccess) ::swin::detail::throwCuda(swin_e_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here; faults
// inside the kernel surface at the next synchronising call, also checked.
#define SWIN_CUDA_CHECK_LAUNCH() SWIN_CUDA_CHECK(cudaGetLastError())

#define SWIN_CUBLAS_CHECK(call)                                                 \
  do {                                                                          \
    cublasStatus_t swin_s_ = (call);                                            \
    if (swin_s_ != CUBLAS_STATUS_SUCCESS) ::swin::detail::throwCublas(swin_s_, #call, __FILE__, __LINE__); \
  } while (0)
