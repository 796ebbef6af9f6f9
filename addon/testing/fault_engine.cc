#include "testing/fault_engine.h"

#include <chrono>
#include <new>
#include <stdexcept>
#include <thread>

#include "common/cuda_check.h"
#include "testing/testing_kernels.h"

#ifdef SWIN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace swin {

FaultEngine::FaultEngine(FaultSpec spec) : spec_(std::move(spec)) {
  info_.kind = "fault";
  info_.variant = "fold";
  info_.precision = spec_.precision;
  info_.device = "fault #" + std::to_string(spec_.device_index);
  info_.device_index = spec_.device_index;
  info_.max_batch = spec_.max_batch;
  info_.height = spec_.height;
  info_.width = spec_.width;
  info_.num_classes = spec_.num_classes;
  if (spec_.fault_on_load) raise();
}

void FaultEngine::raise() const {
  const std::string& f = spec_.fault;
  if (f == "none") return;
  if (f == "engine") throw EngineError(ErrorCode::kBatchRange, "injected engine error");
  if (f == "std") throw std::runtime_error("injected std::runtime_error");
  if (f == "bad_alloc") throw std::bad_alloc();
  if (f == "nonstd") throw 42;  // NOLINT: deliberately not an exception class
#ifdef SWIN_HAVE_CUDA
  if (f == "cuda") {
    // A real failing runtime call: a device-to-device copy between null pointers.
    SWIN_CUDA_CHECK(cudaMemcpy(nullptr, nullptr, 16, cudaMemcpyDeviceToDevice));
  }
  if (f == "cuda_oom") {
    void* p = nullptr;
    SWIN_CUDA_CHECK(cudaMalloc(&p, size_t{1} << 50));
    (void)cudaFree(p);
  }
#else
  // Same reporting path as SWIN_CUDA_CHECK, with the status a real call returns.
  if (f == "cuda") {
    detail::throwLibraryError(detail::codeForCudaStatus(1), "CUDA", 1, "cudaErrorInvalidValue",
                              "invalid argument (simulated: this build has no CUDA)",
                              "cudaMemcpy(nullptr, nullptr, 16, cudaMemcpyDeviceToDevice)", __FILE__, __LINE__);
  }
  if (f == "cuda_oom") {
    detail::throwLibraryError(detail::codeForCudaStatus(detail::kCudaErrorMemoryAllocation), "CUDA",
                              detail::kCudaErrorMemoryAllocation, "cudaErrorMemoryAllocation",
                              "out of memory (simulated: this build has no CUDA)", "cudaMalloc(&p, size_t{1} << 50)",
                              __FILE__, __LINE__);
  }
#endif
  throw EngineError(ErrorCode::kInvalidArgument, "unknown fault '" + f + "'");
}

void FaultEngine::infer(const uint8_t* images, int n, float* logits) {
  calls_.fetch_add(1);
  const int now = running_.fetch_add(1) + 1;
  int peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {}
  struct Leave {
    std::atomic<int>& r;
    ~Leave() { r.fetch_sub(1); }
  } leave{running_};

  if (spec_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(spec_.delay_ms));
  if (spec_.gpu_spin_ms > 0) spinGpu(spec_.gpu_spin_ms);
  if (!spec_.fault_on_load) raise();
  const float offset = static_cast<float>(spec_.logit_offset);
  const size_t image_bytes = static_cast<size_t>(info_.height) * info_.width * 3;
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (size_t b = 0; b < image_bytes; ++b) sum += images[i * image_bytes + b];
    const float mean = static_cast<float>(sum / image_bytes);
    for (int c = 0; c < info_.num_classes; ++c)
      logits[static_cast<size_t>(i) * info_.num_classes + c] = mean + c + offset;
  }
}

}  // namespace swin
