// spin_kernel: one thread reads the GPU's nanosecond timer until `ns` passed.
// No memory traffic and 1 thread: it occupies the device's queue, not its SMs.
#include <cstdint>

#include "common/cuda_buffers.h"
#include "testing/testing_kernels.h"

namespace swin {

namespace {

__device__ __forceinline__ uint64_t globalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spinKernel(uint64_t ns, unsigned long long* iterations) {
  const uint64_t start = globalTimerNs();
  unsigned long long n = 0;
  while (globalTimerNs() - start < ns) ++n;
  *iterations = n;  // a visible side effect so the loop is not optimised away
}

}  // namespace

bool testKernelsBuilt() { return true; }

void spinGpu(double ms) {
  CudaStream stream;
  DeviceBuffer counter(sizeof(unsigned long long));
  spinKernel<<<1, 1, 0, stream.get()>>>(static_cast<uint64_t>(ms * 1e6), counter.get<unsigned long long>());
  SWIN_CUDA_CHECK_LAUNCH();
  SWIN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
}

}  // namespace swin
