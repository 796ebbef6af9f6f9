#include "binding/capabilities.h"

#include "binding/js_errors.h"
#include "build_config.h"
#include "common/engine_file.h"
#include "common/gpu_device.h"
#include "testing/testing_kernels.h"
#ifdef SWIN_HAVE_TENSORRT
#include "tensorrt/tensorrt_engine.h"
#endif

namespace swin {

namespace {

std::string cudaVersionString(int v) {
  if (v <= 0) return "";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

class GpuInfoWorker : public Napi::AsyncWorker {
 public:
  explicit GpuInfoWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "swin-gpu-info"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try {
      stats_ = queryGpuStats();
    } catch (...) { error_ = std::current_exception(); }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(toJsError(env, error_).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, stats_.size());
    for (size_t i = 0; i < stats_.size(); ++i) {
      const GpuStats& g = stats_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", g.index);
      o.Set("name", g.name);
      o.Set("pciBusId", g.pci_bus_id);
      o.Set("computeCapability", std::to_string(g.compute_major) + "." + std::to_string(g.compute_minor));
      o.Set("multiprocessors", g.multiprocessors);
      // Bytes as doubles: exact up to 2^53 (8 PiB).
      o.Set("memoryTotalBytes", static_cast<double>(g.memory_total_bytes));
      o.Set("memoryFreeBytes", static_cast<double>(g.memory_free_bytes));
      o.Set("memoryUsedBytes", static_cast<double>(g.memory_used_bytes));
      o.Set("utilization", g.utilization < 0 ? env.Null() : Napi::Number::New(env, g.utilization));
      o.Set("temperatureC", g.temperature_c < 0 ? env.Null() : Napi::Number::New(env, g.temperature_c));
      o.Set("powerWatts", g.power_w < 0 ? env.Null() : Napi::Number::New(env, g.power_w));
      o.Set("source", g.source);
      out.Set(static_cast<uint32_t>(i), o);
    }
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<GpuStats> stats_;
  std::exception_ptr error_;
};

}  // namespace

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DeviceSummary dev = queryDevices();
  Napi::Object o = Napi::Object::New(env);
  o.Set("gpus", dev.count);
  if (!dev.reason.empty()) o.Set("deviceReason", dev.reason);

  Napi::Object cuda = Napi::Object::New(env);
#ifdef SWIN_HAVE_CUDA
  cuda.Set("built", true);
#else
  cuda.Set("built", false);
#endif
  cuda.Set("buildStatus", SWIN_BUILD_CUDA_STATUS);
  cuda.Set("headersVersion", SWIN_BUILD_CUDA_VERSION);
  cuda.Set("runtimeVersion", cudaVersionString(dev.runtime_version));
  cuda.Set("driverVersion", cudaVersionString(dev.driver_version));
  cuda.Set("testKernels", testKernelsBuilt());
  o.Set("cuda", cuda);

  Napi::Object trt = Napi::Object::New(env);
  trt.Set("built", tensorrtBuilt());
  trt.Set("buildStatus", SWIN_BUILD_TENSORRT_STATUS);
  trt.Set("headersVersion", SWIN_BUILD_TENSORRT_VERSION);
#ifdef SWIN_HAVE_TENSORRT
  trt.Set("libraryVersion", tensorrtLibraryVersion());
#endif
  o.Set("tensorrt", trt);

  Napi::Object ce = Napi::Object::New(env);
  ce.Set("built", cudaEngineBuilt());
  ce.Set("buildStatus", SWIN_BUILD_CUDA_ENGINE_STATUS);
  o.Set("cudaEngine", ce);

  // Usable here and now: compiled in and at least one GPU.
  Napi::Object backends = Napi::Object::New(env);
  Napi::Object reasons = Napi::Object::New(env);
  const bool gpu = dev.count > 0;
  backends.Set("tensorrt", tensorrtBuilt() && gpu);
  backends.Set("cuda", cudaEngineBuilt() && gpu);
  if (!tensorrtBuilt()) reasons.Set("tensorrt", std::string("not built: ") + SWIN_BUILD_TENSORRT_STATUS);
  else if (!gpu) reasons.Set("tensorrt", dev.reason);
  if (!cudaEngineBuilt()) reasons.Set("cuda", std::string("not built: ") + SWIN_BUILD_CUDA_ENGINE_STATUS);
  else if (!gpu) reasons.Set("cuda", dev.reason);
  o.Set("backends", backends);
  o.Set("reasons", reasons);
  o.Set("buildType", SWIN_BUILD_TYPE);
  return o;
}

Napi::Value GpuInfo(const Napi::CallbackInfo& info) {
  auto* worker = new GpuInfoWorker(info.Env());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace swin
