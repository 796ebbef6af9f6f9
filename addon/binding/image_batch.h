// A batch of one model's images to logits, all on the engine's GPU: each image is
// either an encoded JPEG, which nvJPEG decodes and resizes straight into the
// engine's input buffer, or decoded pixels (uint8 RGB NHWC, from sharp), copied in
// beside them; the engine runs on the decoder's stream and only the logits come
// back to the host. The JS side is engine.inferImages (native_engine.h).
//
// Needs a build with nvJPEG and the cuda backend, and an engine that takes device
// input (the CUDA Swin engine); imageBatchesSupported() says whether one does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/engine.h"
#include "nvjpeg/decoder_core.h"

namespace swin {

struct ImageBatch {
  std::vector<const uint8_t*> data;  // per image: JPEG bytes, or height * width * 3 pixels
  std::vector<size_t> lengths;
  std::vector<uint8_t> is_jpeg;
  DecodeSpec spec;          // how JPEGs become input (the model's preprocess block)
  float* logits = nullptr;  // n * num_classes, host, written by run()
  // Per image, after run(): 1 = its logits are real; 0 = a JPEG nvJPEG refused (its row is
  // meaningless: the caller decodes it another way and runs it again), reason says why.
  std::vector<uint8_t> decoded;
  std::vector<std::string> reasons;
};

// Whether this build and this engine can run ImageBatches (and why not, if not).
bool imageBatchesSupported(const Engine& engine, std::string* why);

// The decoder, device buffers and pinned staging of one engine worker thread.
class ImageBatchRunner {
 public:
  // On the worker thread, the engine's device current.
  explicit ImageBatchRunner(int device);
  ~ImageBatchRunner();
  ImageBatchRunner(const ImageBatchRunner&) = delete;
  ImageBatchRunner& operator=(const ImageBatchRunner&) = delete;

  // Throws EngineError; batch.decoded/reasons are filled when it returns.
  void run(Engine& engine, ImageBatch& batch);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace swin
