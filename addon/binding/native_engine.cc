#include "binding/native_engine.h"

#include <array>
#include <string>

#include "binding/js_errors.h"
#include "common/gpu_device.h"
#include "nvjpeg/jpeg_decoder.h"

namespace swin {

namespace {

struct AddonData {
  Napi::FunctionReference engine_ctor;
};

// Finishes dispose(): joins the worker threads and frees the engine's GPU
// resources on a libuv thread, so the JS thread never waits on a running batch.
class DisposeWorker : public Napi::AsyncWorker {
 public:
  // `runners`: the image-batch decoders and buffers, freed after the threads stop (their
  // teardown synchronises streams and frees device memory: not on the JS thread).
  DisposeWorker(Napi::Env env, std::unique_ptr<Executor> executor, std::shared_ptr<Engine> engine, Napi::Object owner,
                std::shared_ptr<void> runners)
      : Napi::AsyncWorker(env, "swin-engine-dispose"),
        deferred_(Napi::Promise::Deferred::New(env)),
        executor_(std::move(executor)),
        engine_(std::move(engine)),
        runners_(std::move(runners)) {
    owner_ = Napi::Persistent(owner);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (executor_) executor_->shutdown();
      executor_.reset();
      runners_.reset();
      engine_.reset();
    } catch (...) { error_ = std::current_exception(); }
  }
  void OnOK() override {
    owner_.Reset();
    if (error_) deferred_.Reject(toJsError(Env(), error_).Value());
    else deferred_.Resolve(Env().Undefined());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Executor> executor_;
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<void> runners_;
  Napi::ObjectReference owner_;
  std::exception_ptr error_;
};

}  // namespace

Napi::Function NativeEngine::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Engine",
                                    {
                                        InstanceMethod<&NativeEngine::Infer>("infer"),
                                        InstanceMethod<&NativeEngine::InferImages>("inferImages"),
                                        InstanceMethod<&NativeEngine::Dispose>("dispose"),
                                        InstanceAccessor<&NativeEngine::GetInfo>("info"),
                                    });
  auto* data = new AddonData();
  data->engine_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("Engine", ctor);
  return ctor;
}

NativeEngine::NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
  // Only Wrap() constructs engines; it passes an External as a marker.
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw makeJsError(info.Env(), ErrorCode::kInvalidArgument, "Engine objects are created by loadEngine(), not new");
  }
}

Napi::Object NativeEngine::Wrap(Napi::Env env, std::shared_ptr<Engine> engine, int threads, bool use_device) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object obj = data->engine_ctor.New({Napi::External<void>::New(env, nullptr)});
  NativeEngine* self = Napi::ObjectWrap<NativeEngine>::Unwrap(obj);
  const int device = engine->info().device_index;
  self->engine_ = std::move(engine);
  self->threads_ = threads < 1 ? 1 : threads;
  self->executor_ = std::make_unique<Executor>(self->threads_, [use_device, device] {
    if (use_device) setCurrentDevice(device);
  });
  return obj;
}

Engine* NativeEngine::EngineOf(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  auto* data = value.Env().GetInstanceData<AddonData>();
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.InstanceOf(data->engine_ctor.Value())) return nullptr;
  NativeEngine* self = Napi::ObjectWrap<NativeEngine>::Unwrap(obj);
  return self->engine_.get();
}

NativeEngine::~NativeEngine() {
  // Garbage collected without dispose(): finish in-flight work (at most one
  // batch per thread), then free. Tasks hold a reference to this object, so
  // none can be pending here.
  if (executor_) executor_->shutdown();
}

Napi::Value NativeEngine::Infer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_ || !engine_) return rejectedPromise(env, ErrorCode::kDisposed, "the engine was disposed");
  if (info.Length() < 2 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[1].IsNumber()) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument, "infer(images: Uint8Array, n: number) expected");
  }
  const EngineInfo& ei = engine_->info();
  const double nd = info[1].As<Napi::Number>().DoubleValue();
  const int n = static_cast<int>(nd);
  if (nd != n || n < 1 || n > ei.max_batch) {
    return rejectedPromise(env, ErrorCode::kBatchRange,
                           "batch of " + info[1].ToString().Utf8Value() + " images is outside 1.." +
                               std::to_string(ei.max_batch) + " for this engine");
  }
  Napi::Uint8Array images = info[0].As<Napi::Uint8Array>();
  const size_t image_bytes = static_cast<size_t>(ei.height) * ei.width * 3;
  if (images.ByteLength() != image_bytes * n) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument,
                           "images holds " + std::to_string(images.ByteLength()) + " bytes; " + std::to_string(n) +
                               " RGB images of " + std::to_string(ei.height) + "x" + std::to_string(ei.width) +
                               " need " + std::to_string(image_bytes * n));
  }
  // The output array is allocated here and filled in place by the worker;
  // V8 never moves an ArrayBuffer's backing store.
  Napi::Float32Array logits = Napi::Float32Array::New(env, static_cast<size_t>(n) * ei.num_classes);
  auto deferred = Napi::Promise::Deferred::New(env);
  // References keep the input, the output and this engine alive until done.
  auto refs = std::make_shared<std::array<Napi::ObjectReference, 3>>();
  (*refs)[0] = Napi::Persistent(images.As<Napi::Object>());
  (*refs)[1] = Napi::Persistent(logits.As<Napi::Object>());
  (*refs)[2] = Napi::Persistent(Value());
  const uint8_t* in = images.Data();
  float* out = logits.Data();
  std::shared_ptr<Engine> engine = engine_;
  executor_->submit(
      env, [engine, in, n, out] { engine->infer(in, n, out); },
      [deferred, refs](Napi::Env env, std::exception_ptr error) {
        Napi::Value result = (*refs)[1].Value();
        for (auto& r : *refs) r.Reset();
        if (error) deferred.Reject(toJsError(env, error).Value());
        else deferred.Resolve(result);
      });
  return deferred.Promise();
}

Napi::Value NativeEngine::InferImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_ || !engine_) return rejectedPromise(env, ErrorCode::kDisposed, "the engine was disposed");
  std::string why;
  if (!imageBatchesSupported(*engine_, &why)) return rejectedPromise(env, ErrorCode::kBackendUnavailable, why);
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[2].IsObject()) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument,
                           "inferImages(images: Uint8Array[], jpeg: Uint8Array, spec) expected");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  Napi::Uint8Array flags = info[1].As<Napi::Uint8Array>();
  const EngineInfo& ei = engine_->info();
  const int n = static_cast<int>(arr.Length());
  if (n < 1 || n > ei.max_batch) {
    return rejectedPromise(
        env, ErrorCode::kBatchRange,
        "batch of " + std::to_string(n) + " images is outside 1.." + std::to_string(ei.max_batch) + " for this engine");
  }
  if (flags.ElementLength() != static_cast<size_t>(n)) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument, "jpeg must hold one flag per image");
  }
  auto batch = std::make_shared<ImageBatch>();
  if (!parseDecodeSpec(info[2].As<Napi::Object>(), &batch->spec)) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument, "bad decode spec");
  }
  // References keep every image, the output and this engine alive until done.
  auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
  for (int i = 0; i < n; ++i) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(i));
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      return rejectedPromise(env, ErrorCode::kInvalidArgument, "every image must be a Uint8Array");
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    batch->data.push_back(a.Data());
    batch->lengths.push_back(a.ByteLength());
    batch->is_jpeg.push_back(flags[i] ? 1 : 0);
    refs->push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Float32Array logits = Napi::Float32Array::New(env, static_cast<size_t>(n) * ei.num_classes);
  batch->logits = logits.Data();
  refs->push_back(Napi::Persistent(logits.As<Napi::Object>()));
  refs->push_back(Napi::Persistent(Value()));
  auto deferred = Napi::Promise::Deferred::New(env);
  std::shared_ptr<Engine> engine = engine_;
  std::shared_ptr<RunnerPool> pool = runners_;
  const int device = ei.device_index;
  executor_->submit(
      env,
      [engine, pool, batch, device] {
        std::unique_ptr<ImageBatchRunner> runner;
        {
          std::lock_guard<std::mutex> lock(pool->mu);
          if (!pool->idle.empty()) {
            runner = std::move(pool->idle.back());
            pool->idle.pop_back();
          }
        }
        if (!runner) runner = std::make_unique<ImageBatchRunner>(device);
        runner->run(*engine, *batch);
        std::lock_guard<std::mutex> lock(pool->mu);
        pool->idle.push_back(std::move(runner));
      },
      [deferred, refs, batch, n](Napi::Env env, std::exception_ptr error) {
        Napi::Value out = (*refs)[n].Value();
        for (auto& r : *refs) r.Reset();
        if (error) {
          deferred.Reject(toJsError(env, error).Value());
          return;
        }
        Napi::Object result = Napi::Object::New(env);
        result.Set("logits", out);
        setDecodeOutcome(env, result, n, batch->decoded, batch->reasons);
        const BatchStages& t = batch->stages;
        Napi::Object stages = Napi::Object::New(env);
        stages.Set("copyInMs", t.copy_in_ms);
        stages.Set("decodeMs", t.decode_ms);
        stages.Set("engineMs", t.engine_ms);
        stages.Set("copyOutMs", t.copy_out_ms);
        stages.Set("hostDecodeMs", t.host_decode_ms);
        stages.Set("wallMs", t.wall_ms);
        result.Set("stages", stages);
        deferred.Resolve(result);
      });
  return deferred.Promise();
}

Napi::Value NativeEngine::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  disposed_ = true;
  // Batches already queued still run; new infer() calls reject with ERR_DISPOSED.
  auto* worker = new DisposeWorker(env, std::move(executor_), std::move(engine_), Value(), std::move(runners_));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value NativeEngine::GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) return env.Null();
  const EngineInfo& ei = engine_->info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", ei.kind);
  o.Set("variant", ei.variant);
  o.Set("precision", ei.precision);
  o.Set("device", ei.device);
  o.Set("deviceIndex", ei.device_index);
  o.Set("maxBatch", ei.max_batch);
  o.Set("height", ei.height);
  o.Set("width", ei.width);
  o.Set("numClasses", ei.num_classes);
  o.Set("instances", threads_);
  std::string why;
  const bool batches = imageBatchesSupported(*engine_, &why);
  o.Set("imageBatches", batches);
  o.Set("imageBatchesReason", batches ? env.Null() : Napi::String::New(env, why));
  return o;
}

}  // namespace swin
