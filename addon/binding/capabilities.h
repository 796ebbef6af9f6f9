// capabilities(): what this build contains and what can run here (sync).
// gpuInfo(): Promise<per-GPU memory and load> for metrics.
#pragma once

#include <napi.h>

namespace swin {

Napi::Value Capabilities(const Napi::CallbackInfo& info);
Napi::Value GpuInfo(const Napi::CallbackInfo& info);

}  // namespace swin
