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

// Where one batch's time went, ms: GPU stages from CUDA events on the batch's stream, in
// order, and two host walls. copy_in: decoded images to the device; decode: nvJPEG's batched
// decode and the resize kernels (GPU); engine: the forward pass with its input and logits
// copies on the device; copy_out: logits to the host. host_decode: the host's part of
// decoding (header parses, the wait for the hardware decoder); wall: all of run().
struct BatchStages {
  float copy_in_ms = 0, decode_ms = 0, engine_ms = 0, copy_out_ms = 0;
  double host_decode_ms = 0, wall_ms = 0;
};

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
  BatchStages stages;  // after run()
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

  // Throws EngineError for the engine's failures; a JPEG that cannot be decoded on the GPU
  // (refused, over the batch's decode memory, or decoding failed) comes back decoded = 0.
  // batch.decoded/reasons are filled when it returns.
  void run(Engine& engine, ImageBatch& batch);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace swin
