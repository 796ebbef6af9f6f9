// The interface every native execution engine implements (TensorRT plans,
// our CUDA Swin engine). The JS-facing classes hold Engines; engines never
// touch V8. Inputs and outputs are plain host buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/errors.h"

namespace swin {

struct EngineInfo {
  std::string kind;       // "tensorrt" | "cuda"
  std::string variant;    // "fold" | "unfold"
  std::string precision;  // "fp16" | "fp32"
  std::string device;     // e.g. "NVIDIA H100 80GB HBM3 #0"
  int device_index = 0;
  int max_batch = 0;    // largest n infer() accepts
  int height = 0;       // input image height (pixels)
  int width = 0;        // input image width (pixels)
  int num_classes = 0;  // logits per image
};

struct EngineOptions {
  int device_index = 0;
  int max_batch = 0;  // 0: the engine's own maximum
  int instances = 1;  // infer() may run concurrently from this many threads
  bool use_cuda_graphs = true;
  std::string precision;  // "" keeps the file's precision; "fp32" asks for the checking mode where supported
  // IO tensor names from model.json (input.name, output.name); "" accepts the
  // engine's only input / only output. Engines without named tensors ignore them.
  std::string input_name;
  std::string output_name;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const EngineInfo& info() const = 0;
  // images: n * height * width * 3 bytes, uint8 RGB NHWC (host memory).
  // logits: n * num_classes floats (host memory), written before return.
  // Safe to call from up to `instances` threads at once: each call takes one
  // of `instances` execution contexts (stream, workspace, CUDA graphs).
  // Throws EngineError (common/errors.h).
  virtual void infer(const uint8_t* images, int n, float* logits) = 0;
};

// Factories; each is compiled only where its dependencies were found.
std::unique_ptr<Engine> createCudaSwinEngine(const std::string& path, const EngineOptions& options);
std::unique_ptr<Engine> createTensorRTEngine(const std::string& path, const EngineOptions& options);

}  // namespace swin
