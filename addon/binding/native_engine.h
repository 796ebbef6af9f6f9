// JS class `Engine`: one loaded engine (one GPU) with its worker threads.
//   engine.infer(images: Uint8Array, n: number): Promise<Float32Array>
//   engine.dispose(): Promise<void>
//   engine.info: { kind, variant, precision, device, deviceIndex, maxBatch,
//                  height, width, numClasses, instances }
// Instances are made by loadEngine() (load_engine.h) or the testing hooks,
// never by `new` from JS.
#pragma once

#include <napi.h>

#include <memory>

#include "binding/executor.h"
#include "common/engine.h"

namespace swin {

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Init(Napi::Env env, Napi::Object exports);
  // JS thread. `threads` workers call engine->infer() concurrently; with
  // `use_device` each worker first makes info().device_index current.
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Engine> engine, int threads, bool use_device);
  // The C++ engine behind a JS Engine object, or nullptr (testing hooks).
  static Engine* EngineOf(Napi::Value value);

  explicit NativeEngine(const Napi::CallbackInfo& info);
  ~NativeEngine() override;

 private:
  Napi::Value Infer(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;
  std::unique_ptr<Executor> executor_;
  int threads_ = 1;
  bool disposed_ = false;
};

}  // namespace swin
