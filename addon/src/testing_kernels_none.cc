// Stand-in for testing_kernels.cu in builds without nvcc.
#include "engine.h"
#include "testing_kernels.h"

namespace swin {

bool testKernelsBuilt() { return false; }

void spinGpu(double) {
  throw EngineError("ERR_BACKEND_UNAVAILABLE", "GPU test kernels are not in this build (nvcc was not found)");
}

}  // namespace swin
