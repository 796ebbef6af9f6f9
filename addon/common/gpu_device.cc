#include "common/gpu_device.h"

#include <mutex>

#include "common/cuda_check.h"

#ifdef SWIN_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#endif

namespace swin {

#ifndef SWIN_HAVE_CUDA

DeviceSummary queryDevices() {
  DeviceSummary s;
  s.reason = "the addon was built without CUDA (no CUDA toolkit found at build time)";
  return s;
}

std::vector<GpuStats> queryGpuStats() { return {}; }

void setCurrentDevice(int) {}

#else  // SWIN_HAVE_CUDA

DeviceSummary queryDevices() {
  DeviceSummary s;
  (void)cudaRuntimeGetVersion(&s.runtime_version);
  if (cudaDriverGetVersion(&s.driver_version) != cudaSuccess) s.driver_version = 0;
  const cudaError_t err = cudaGetDeviceCount(&s.count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    s.count = 0;
    s.reason = std::string("no usable CUDA device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
  } else if (s.count == 0) {
    s.reason = "no CUDA device found";
  }
  return s;
}

void setCurrentDevice(int index) { SWIN_CUDA_CHECK(cudaSetDevice(index)); }

namespace {

// The few NVML entry points we use, declared here so the build needs no NVML
// header; the ABI of these v1/v2 symbols is stable across driver releases.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDeviceOpaque*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned int gpu, memory;
};

struct Nvml {
  bool ok = false;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*byPciBusId)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*memoryInfo)(nvmlDevice_t, NvmlMemory*) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, NvmlUtilization*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*powerUsage)(nvmlDevice_t, unsigned int*) = nullptr;
};

const Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;  // no NVML: callers fall back to cudaMemGetInfo
    auto sym = [lib](const char* name) { return dlsym(lib, name); };
    n.init = reinterpret_cast<decltype(n.init)>(sym("nvmlInit_v2"));
    n.byPciBusId = reinterpret_cast<decltype(n.byPciBusId)>(sym("nvmlDeviceGetHandleByPciBusId_v2"));
    n.memoryInfo = reinterpret_cast<decltype(n.memoryInfo)>(sym("nvmlDeviceGetMemoryInfo"));
    n.utilization = reinterpret_cast<decltype(n.utilization)>(sym("nvmlDeviceGetUtilizationRates"));
    n.temperature = reinterpret_cast<decltype(n.temperature)>(sym("nvmlDeviceGetTemperature"));
    n.powerUsage = reinterpret_cast<decltype(n.powerUsage)>(sym("nvmlDeviceGetPowerUsage"));
    n.ok = n.init && n.byPciBusId && n.memoryInfo && n.init() == 0;
    // The library stays loaded for the life of the process on purpose.
  });
  return n;
}

}  // namespace

std::vector<GpuStats> queryGpuStats() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return {};
  }
  int previous = 0;
  const bool restore = cudaGetDevice(&previous) == cudaSuccess;
  const Nvml& n = nvml();
  std::vector<GpuStats> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    SWIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    GpuStats g;
    g.index = i;
    g.name = prop.name;
    g.compute_major = prop.major;
    g.compute_minor = prop.minor;
    g.multiprocessors = prop.multiProcessorCount;
    g.memory_total_bytes = prop.totalGlobalMem;
    char bus[32] = {0};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, i) == cudaSuccess) g.pci_bus_id = bus;

    nvmlDevice_t dev = nullptr;
    NvmlMemory mem{};
    if (n.ok && !g.pci_bus_id.empty() && n.byPciBusId(g.pci_bus_id.c_str(), &dev) == 0 &&
        n.memoryInfo(dev, &mem) == 0) {
      g.source = "nvml";
      g.memory_total_bytes = mem.total;
      g.memory_free_bytes = mem.free;
      g.memory_used_bytes = mem.used;
      NvmlUtilization u{};
      if (n.utilization && n.utilization(dev, &u) == 0) g.utilization = u.gpu / 100.0;
      unsigned int t = 0;
      if (n.temperature && n.temperature(dev, /*NVML_TEMPERATURE_GPU*/ 0, &t) == 0) g.temperature_c = t;
      unsigned int mw = 0;
      if (n.powerUsage && n.powerUsage(dev, &mw) == 0) g.power_w = mw / 1000.0;
    } else {
      g.source = "cuda";
      size_t free_b = 0, total_b = 0;
      SWIN_CUDA_CHECK(cudaSetDevice(i));
      SWIN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      g.memory_total_bytes = total_b;
      g.memory_free_bytes = free_b;
      g.memory_used_bytes = total_b - free_b;
    }
    out.push_back(std::move(g));
  }
  if (restore) (void)cudaSetDevice(previous);
  return out;
}

#endif  // SWIN_HAVE_CUDA

}  // namespace swin
