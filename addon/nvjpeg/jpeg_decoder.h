// JS class `JpegDecoder`: JPEG -> model input (uint8 RGB NHWC) on one GPU with
// nvJPEG, plus the resize/crop of resize_kernels.cu. Built where CMake finds
// nvJPEG (`-- nvJPEG: found`); elsewhere `JpegDecoder.built` is false and
// `new JpegDecoder()` throws ERR_BACKEND_UNAVAILABLE.
//
//   JpegDecoder.built: boolean            JpegDecoder.buildStatus: string
//   JpegDecoder.inspect(jpeg: Uint8Array) -> {width, height, components, progressive,
//       orientation, reason}   host-side header parse (every build); reason is null
//       when the GPU may try the image, else why it goes to sharp (CMYK, 12-bit, ...)
//   new JpegDecoder({deviceIndex?, backend?: 'auto'|'hardware'|'default'})
//   decoder.decode(jpegs: Uint8Array[], {size, mode: 'squash'|'shorter_side_crop',
//       resize, kernel, maxPixels}) -> Promise<{pixels: Uint8Array (n*size*size*3),
//       decoded: Uint8Array (1 = done on the GPU, 0 = refused), reasons: (string|null)[]}>
//     Refused images leave zeros in `pixels`; the caller decodes them with sharp.
//   decoder.info -> {backend: 'hardware'|'default', deviceIndex, device}
//   decoder.dispose(): Promise<void>
// Output goes to a host array (pinned staging, then a copy). The serving path for
// the cuda backend decodes inside the engine's batch instead (engine.inferImages,
// binding/image_batch.h), with no host round trip of pixels.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "binding/executor.h"
#include "nvjpeg/decoder_core.h"

namespace swin {

// What the markers before the first scan say (no entropy decoding).
struct JpegHeader {
  int width = 0, height = 0;
  int components = 0;
  int precision = 0;
  bool progressive = false;
  int adobe_transform = -1;  // APP14 "Adobe" transform byte, -1 when absent
  int orientation = 1;       // EXIF 0x0112 in IFD0, 1..8 (1 when absent or invalid)
  std::string reason;        // empty: the GPU may try it; else why sharp must decode it
};
JpegHeader parseJpegHeader(const uint8_t* data, size_t size);

// {size, mode: 'squash'|'shorter_side_crop', resize?, kernel, maxPixels?} -> spec; false when invalid.
bool parseDecodeSpec(const Napi::Object& so, DecodeSpec* spec);

// result.decoded (Uint8Array, 1 = done on the GPU) and result.reasons ((string|null)[], why not)
// for n images; empty vectors (a job that never ran) mean none was decoded.
void setDecodeOutcome(Napi::Env env, Napi::Object result, int n, const std::vector<uint8_t>& decoded,
                      const std::vector<std::string>& reasons);

class JpegDecoder : public Napi::ObjectWrap<JpegDecoder> {
 public:
  static Napi::Function Init(Napi::Env env, Napi::Object exports);
  explicit JpegDecoder(const Napi::CallbackInfo& info);
  ~JpegDecoder() override;

 private:
  static Napi::Value Inspect(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);

  std::shared_ptr<void> holder_;  // the nvJPEG state, created on the worker thread
  std::unique_ptr<Executor> executor_;
  int device_index_ = 0;
};

}  // namespace swin
