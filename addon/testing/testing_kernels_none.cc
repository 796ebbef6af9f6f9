// Stand-in for testing_kernels.cu in builds without nvcc.
#include "common/engine.h"
#include "testing/testing_kernels.h"

namespace swin {

bool testKernelsBuilt() { return false; }

void spinGpu(double) {
  throw EngineError(ErrorCode::kBackendUnavailable, "GPU test kernels are not in this build (nvcc was not found)");
}

}  // namespace swin
