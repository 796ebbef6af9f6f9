// The nvJPEG side of GPU decoding, without V8: one decoder's handles, stream and
// buffers on one GPU. JpegDecoder (jpeg_decoder.h) runs it for JS callers that want
// pixels back; the engine's image batches (binding/image_batch.h) run it into the
// engine's input on the device. One thread at a time per core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nvjpeg/resize_kernels.h"

namespace swin {

struct DecodeSpec {
  int size = 0;  // output side (the model's img_size)
  bool squash = true;
  int resize = 0;  // shorter side before the centre crop (shorter_side_crop)
  ResizeKernel kernel = ResizeKernel::Linear;
  double max_pixels = 0;
};

struct DecodeJob {
  std::vector<const uint8_t*> data;
  std::vector<size_t> lengths;
  DecodeSpec spec;
  uint8_t* out = nullptr;  // decode(): n * size * size * 3 host bytes
  std::vector<int> slots;  // decodeToDevice(): image i's place in d_out (empty: i)
  // Most scratch memory (decoded pixels + resize rows) the job may take; images past it are
  // refused ("over this batch's GPU decode memory"). 0: no limit (the per-request decoder).
  size_t max_scratch_bytes = 0;
  std::vector<uint8_t> decoded;  // per image: 1 on the GPU, 0 refused
  std::vector<std::string> reasons;

  int slot(int i) const { return slots.empty() ? i : slots[static_cast<size_t>(i)]; }
};

class JpegDecoderCore {
 public:
  // On the thread that will use it, `device` current. Throws EngineError
  // (ERR_BACKEND_UNAVAILABLE where the build or the GPU has no nvJPEG).
  JpegDecoderCore(int device, const std::string& backend);
  ~JpegDecoderCore();
  JpegDecoderCore(const JpegDecoderCore&) = delete;
  JpegDecoderCore& operator=(const JpegDecoderCore&) = delete;

  const char* backendName() const;  // "hardware" | "default"
  // Pixels to job.out (host); returns when they are there.
  void decode(DecodeJob& job);
  // Pixels to d_out + slot(i) * size * size * 3 (device memory on this GPU). The entropy
  // decoding is done on return; the resize is enqueued on stream(), for the caller to order
  // its own work after. Refused images' slots are zeroed.
  void decodeToDevice(DecodeJob& job, uint8_t* d_out);
  void* stream() const;  // cudaStream_t

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace swin
