// Entry point of the swin_addon module: registers exports, nothing else.
//   capabilities(), gpuInfo(), loadEngine(kind, path, options), Engine, JpegDecoder, _testing
#include <napi.h>

#include "binding/capabilities.h"
#include "binding/load_engine.h"
#include "binding/native_engine.h"
#include "nvjpeg/jpeg_decoder.h"
#include "testing/testing.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  swin::NativeEngine::Init(env, exports);
  swin::JpegDecoder::Init(env, exports);
  exports.Set("capabilities", Napi::Function::New(env, swin::Capabilities, "capabilities"));
  exports.Set("gpuInfo", Napi::Function::New(env, swin::GpuInfo, "gpuInfo"));
  exports.Set("loadEngine", Napi::Function::New(env, swin::LoadEngine, "loadEngine"));
  exports.Set("_testing", swin::InitTesting(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(swin_addon, Init)
