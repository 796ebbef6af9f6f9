// Device discovery and GPU statistics for capabilities() and gpuInfo().
// Plain structs; no V8 here. Works in every build: without CUDA it reports
// zero devices and says why.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swin {

struct DeviceSummary {
  int count = 0;            // CUDA devices visible to this process
  int driver_version = 0;   // e.g. 13000 (0 when no driver)
  int runtime_version = 0;  // CUDA runtime the addon was linked with
  std::string reason;       // why count is 0, empty otherwise
};

struct GpuStats {
  int index = 0;  // CUDA device index (as cudaSetDevice takes it)
  std::string name;
  std::string pci_bus_id;  // "0000:1A:00.0"
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_free_bytes = 0;
  uint64_t memory_used_bytes = 0;
  double utilization = -1;    // 0..1 over NVML's last sample period; -1 unknown
  double temperature_c = -1;  // -1 unknown
  double power_w = -1;        // -1 unknown
  std::string source;         // "nvml" or "cuda" (cudaMemGetInfo)
};

// Cheap after the first call (the first initialises the CUDA driver).
DeviceSummary queryDevices();

// Per-GPU memory and load. Uses NVML through dlopen where libnvidia-ml is
// present (no CUDA context needed); otherwise cudaMemGetInfo, which creates
// the device's primary context. Throws EngineError on driver failures.
std::vector<GpuStats> queryGpuStats();

// Makes `index` current on the calling thread (no-op without CUDA).
void setCurrentDevice(int index);

}  // namespace swin
