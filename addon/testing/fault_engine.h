// A test-only Engine that fails on purpose, for proving that errors raised on
// worker threads become rejected promises and never take Node down. Reached
// only through the `_testing` export (testing.h); never through loadEngine().
#pragma once

#include <atomic>
#include <string>

#include "common/engine.h"

namespace swin {

struct FaultSpec {
  // "none" | "engine" (EngineError ERR_BATCH_RANGE) | "std" (std::runtime_error)
  // | "bad_alloc" | "nonstd" (throws an int) | "cuda" (a failing CUDA call, or
  // the same error path with a simulated status where CUDA is not built)
  // | "cuda_oom" (cudaMalloc of 1 PiB, or its simulated status)
  std::string fault = "none";
  bool fault_on_load = false;  // throw from the factory instead of infer()
  double delay_ms = 0;         // host sleep inside infer()
  double gpu_spin_ms = 0;      // GPU busy-wait inside infer() (testing_kernels.h)
  int max_batch = 8;
  int height = 4;
  int width = 4;
  int num_classes = 3;
  int device_index = 0;
  // What info().precision reports: "fp32", "fp16", or "" as a TensorRT plan
  // does (it cannot tell its builder flags), for the self-test tolerance tests.
  std::string precision = "fp32";
  // Added to every logit: a fake engine that is this far off the reference.
  double logit_offset = 0;
};

class FaultEngine : public Engine {
 public:
  explicit FaultEngine(FaultSpec spec);
  const EngineInfo& info() const override { return info_; }
  // Logits of image i: logits[i][c] = mean byte value of image i + c (+ the
  // spec's logit_offset), so tests can check every row went through.
  void infer(const uint8_t* images, int n, float* logits) override;

  int calls() const { return calls_.load(); }
  int peakConcurrency() const { return peak_.load(); }

 private:
  void raise() const;
  FaultSpec spec_;
  EngineInfo info_;
  std::atomic<int> calls_{0};
  std::atomic<int> running_{0};
  std::atomic<int> peak_{0};
};

}  // namespace swin
