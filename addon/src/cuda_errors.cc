// Status -> stable code mapping for cuda_check.h. Kept free of CUDA headers so
// it is the same code in every build.
#include <sstream>

#include "cuda_check.h"

namespace swin {
namespace detail {

const char* codeForCudaStatus(int status) {
  switch (status) {
    case kCudaErrorMemoryAllocation:
      return "ERR_OUT_OF_MEMORY";
    case kCudaErrorInsufficientDriver:
    case kCudaErrorNoDevice:
    case kCudaErrorInvalidDevice:
      return "ERR_NO_DEVICE";
    case kCudaErrorNoKernelImageForDevice:
      return "ERR_ENGINE_MISMATCH";  // kernels compiled for another GPU architecture
    default:
      return "ERR_CUDA";
  }
}

const char* codeForCublasStatus(int status) {
  switch (status) {
    case kCublasStatusAllocFailed:
      return "ERR_OUT_OF_MEMORY";
    case kCublasStatusArchMismatch:
      return "ERR_ENGINE_MISMATCH";
    default:
      return "ERR_CUDA";
  }
}

void throwLibraryError(const char* code, const char* library, int status, const char* name, const char* message,
                       const char* expr, const char* file, int line) {
  std::ostringstream os;
  os << library << " error " << (name ? name : "?") << " (" << status << "): " << (message ? message : "")
     << " in `" << expr << "` at " << file << ":" << line;
  throw EngineError(code, os.str());
}

}  // namespace detail
}  // namespace swin
