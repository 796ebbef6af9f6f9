#include "binding/load_engine.h"

#include <cmath>

#include "binding/js_errors.h"
#include "binding/native_engine.h"
#include "common/engine_file.h"

namespace swin {

namespace {

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, EngineFactory factory, int threads, bool use_device)
      : Napi::AsyncWorker(env, "swin-engine-load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        factory_(std::move(factory)),
        threads_(threads),
        use_device_(use_device) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    // Never SetError(): it carries no code. Keep the exception instead.
    try {
      engine_ = factory_();
    } catch (...) { error_ = std::current_exception(); }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(toJsError(env, error_).Value());
      return;
    }
    try {
      std::shared_ptr<Engine> engine(std::move(engine_));
      deferred_.Resolve(NativeEngine::Wrap(env, std::move(engine), threads_, use_device_));
    } catch (const Napi::Error& e) { deferred_.Reject(e.Value()); } catch (...) {
      deferred_.Reject(toJsError(env, std::current_exception()).Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  EngineFactory factory_;
  int threads_;
  bool use_device_;
  std::unique_ptr<Engine> engine_;
  std::exception_ptr error_;
};

int intOption(const Napi::Object& o, const char* key, int fallback, int lo, int hi) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Napi::Value v = o.Get(key);
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < lo || d > hi) {
    throw EngineError(ErrorCode::kInvalidArgument, std::string("option ") + key + " must be an integer from " +
                                                       std::to_string(lo) + " to " + std::to_string(hi));
  }
  return static_cast<int>(d);
}

std::string stringOption(const Napi::Object& o, const char* key) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return "";
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw EngineError(ErrorCode::kInvalidArgument, std::string("option ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace

EngineOptions parseEngineOptions(const Napi::Value& value) {
  EngineOptions opt;
  if (value.IsUndefined() || value.IsNull()) return opt;
  if (!value.IsObject()) throw EngineError(ErrorCode::kInvalidArgument, "options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  opt.device_index = intOption(o, "deviceIndex", 0, 0, 1023);
  opt.max_batch = intOption(o, "maxBatch", 0, 0, 1 << 16);
  opt.instances = intOption(o, "instances", 1, 1, 64);
  if (o.Has("cudaGraphs") && !o.Get("cudaGraphs").IsUndefined()) opt.use_cuda_graphs = o.Get("cudaGraphs").ToBoolean();
  opt.precision = stringOption(o, "precision");
  opt.input_name = stringOption(o, "inputName");
  opt.output_name = stringOption(o, "outputName");
  return opt;
}

Napi::Value LoadEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument,
                           "loadEngine(kind: string, path: string, options?) expected");
  }
  EngineOptions options;
  try {
    options = parseEngineOptions(info.Length() > 2 ? info[2] : env.Undefined());
  } catch (const EngineError& e) { return rejectedPromise(env, e.code(), e.what()); }
  const int threads = options.instances;
  return loadAsync(
      env,
      [kind = info[0].As<Napi::String>().Utf8Value(), path = info[1].As<Napi::String>().Utf8Value(), options] {
        return openEngine(kind, path, options);
      },
      threads, /*use_device=*/true);
}

Napi::Promise loadAsync(Napi::Env env, EngineFactory factory, int threads, bool use_device) {
  auto* worker = new LoadWorker(env, std::move(factory), threads, use_device);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace swin
