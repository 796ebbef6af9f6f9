// Status -> stable code mapping for cuda_check.h. Kept free of CUDA headers so
// it is the same code in every build, the CUDA engine's (addon/cuda) included.
#include <sstream>

#include "common/cuda_check.h"

namespace swin {
namespace detail {

ErrorCode codeForCudaStatus(int status) {
  switch (status) {
    case kCudaErrorMemoryAllocation: return ErrorCode::kOutOfMemory;
    case kCudaErrorInsufficientDriver:
    case kCudaErrorNoDevice:
    case kCudaErrorInvalidDevice: return ErrorCode::kNoDevice;
    case kCudaErrorNoKernelImageForDevice:
      return ErrorCode::kEngineMismatch;  // kernels compiled for another GPU architecture
    default: return ErrorCode::kCuda;
  }
}

ErrorCode codeForCublasStatus(int status) {
  switch (status) {
    case kCublasStatusAllocFailed: return ErrorCode::kOutOfMemory;
    case kCublasStatusArchMismatch: return ErrorCode::kEngineMismatch;
    default: return ErrorCode::kCuda;
  }
}

void throwLibraryError(ErrorCode code, const char* library, int status, const char* name, const char* message,
                       const char* expr, const char* file, int line) {
  std::ostringstream os;
  os << library << " error " << (name ? name : "?") << " (" << status << "): " << (message ? message : "") << " in `"
     << expr << "` at " << file << ":" << line;
  throw EngineError(code, os.str());
}

}  // namespace detail
}  // namespace swin
