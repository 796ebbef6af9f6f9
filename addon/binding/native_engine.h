// JS class `Engine`: one loaded engine (one GPU) with its worker threads.
//   engine.infer(images: Uint8Array, n: number): Promise<Float32Array>
//   engine.inferImages(images: Uint8Array[], jpeg: Uint8Array, spec): Promise<{logits: Float32Array,
//       decoded: Uint8Array, reasons: (string|null)[]}>   images[i] is a JPEG where jpeg[i] is 1,
//       else height*width*3 pixels; JPEGs are decoded on the GPU into the engine's input
//       (binding/image_batch.h); spec as JpegDecoder.decode's. decoded[i] = 0: nvJPEG refused
//       JPEG i (reasons[i] says why) and its logits row is meaningless.
//   engine.dispose(): Promise<void>
//   engine.info: { kind, variant, precision, device, deviceIndex, maxBatch,
//                  height, width, numClasses, instances, imageBatches: boolean,
//                  imageBatchesReason: string | null }
// Instances are made by loadEngine() (load_engine.h) or the testing hooks,
// never by `new` from JS.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

#include "binding/executor.h"
#include "binding/image_batch.h"
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
  Napi::Value InferImages(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;
  std::unique_ptr<Executor> executor_;
  // One ImageBatchRunner per worker thread at most, made on first use; tasks share the pool.
  struct RunnerPool {
    std::mutex mu;
    std::vector<std::unique_ptr<ImageBatchRunner>> idle;
  };
  std::shared_ptr<RunnerPool> runners_ = std::make_shared<RunnerPool>();
  int threads_ = 1;
  bool disposed_ = false;
};

}  // namespace swin
