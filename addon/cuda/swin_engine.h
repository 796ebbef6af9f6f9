// Our fused CUDA Swin engine (V1 and V2, fold and unfold), behind swin::Engine.
// The factory swin::createCudaSwinEngine(path, options) is declared in ../src/engine.h.
// The extra entry points here serve the C API (capi.cc) used by tests and benchmarks,
// which run the engine in the same process as PyTorch on device-resident tensors.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "common/engine.h"

namespace swin {

class CudaSwinEngine : public Engine {
 public:
  // logits written to device memory; ordered after prior work on `stream`, and later work on
  // `stream` is ordered after it (events, no host synchronisation).
  virtual void inferDevice(const uint8_t* d_images, int n, float* d_logits, cudaStream_t stream) = 0;
  // Times `iters` forward passes of batch n on the images left in the input buffer by the
  // last inferDevice (CUDA events around each graph launch); ms[i] per pass.
  virtual void timeForward(int n, int warmup, int iters, float* ms) = 0;
  virtual size_t deviceBytes() const = 0;  // weights + workspaces of all instances
};

std::unique_ptr<CudaSwinEngine> openCudaSwinEngine(const std::string& path, const EngineOptions& options);

}  // namespace swin
