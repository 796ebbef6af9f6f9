#include "testing/testing.h"

#include "binding/js_errors.h"
#include "binding/load_engine.h"
#include "binding/native_engine.h"
#include "testing/fault_engine.h"

namespace swin {

namespace {

Napi::Value LoadFaultEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FaultSpec spec;
  int instances = 1;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&o](const char* k, double fallback) {
      return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().DoubleValue() : fallback;
    };
    if (o.Has("fault") && o.Get("fault").IsString()) spec.fault = o.Get("fault").As<Napi::String>().Utf8Value();
    spec.fault_on_load = o.Has("faultOnLoad") && o.Get("faultOnLoad").ToBoolean();
    spec.delay_ms = num("delayMs", 0);
    spec.gpu_spin_ms = num("gpuSpinMs", 0);
    spec.max_batch = static_cast<int>(num("maxBatch", spec.max_batch));
    spec.height = static_cast<int>(num("height", spec.height));
    spec.width = static_cast<int>(num("width", spec.width));
    spec.num_classes = static_cast<int>(num("numClasses", spec.num_classes));
    spec.device_index = static_cast<int>(num("deviceIndex", 0));
    if (o.Has("precision") && o.Get("precision").IsString())
      spec.precision = o.Get("precision").As<Napi::String>().Utf8Value();
    spec.logit_offset = num("logitOffset", 0);
    instances = static_cast<int>(num("instances", 1));
  }
  const bool use_device = spec.gpu_spin_ms > 0 || spec.fault == "cuda" || spec.fault == "cuda_oom";
  return loadAsync(env, [spec] { return std::unique_ptr<Engine>(new FaultEngine(spec)); }, instances, use_device);
}

Napi::Value FaultStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* fault = dynamic_cast<FaultEngine*>(info.Length() > 0 ? NativeEngine::EngineOf(info[0]) : nullptr);
  if (!fault)
    throw makeJsError(env, ErrorCode::kInvalidArgument, "faultStats(engine) takes an engine from loadFaultEngine()");
  Napi::Object o = Napi::Object::New(env);
  o.Set("calls", fault->calls());
  o.Set("peakConcurrency", fault->peakConcurrency());
  return o;
}

}  // namespace

Napi::Object InitTesting(Napi::Env env) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("loadFaultEngine", Napi::Function::New(env, LoadFaultEngine, "loadFaultEngine"));
  t.Set("faultStats", Napi::Function::New(env, FaultStats, "faultStats"));
  return t;
}

}  // namespace swin
