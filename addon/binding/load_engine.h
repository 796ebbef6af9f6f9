// loadEngine(kind, path, options?): Promise<Engine>
//   kind: "tensorrt" | "cuda"; path: engine file
//   options: { deviceIndex?, maxBatch?, instances?, cudaGraphs?, precision?,
//              inputName?, outputName? }
// Reading and deserialising run on a libuv thread; failures reject with a
// coded Error (js_errors.h).
#pragma once

#include <napi.h>

#include <functional>
#include <memory>

#include "common/engine.h"

namespace swin {

using EngineFactory = std::function<std::unique_ptr<Engine>()>;

// Runs `factory` on a libuv thread; resolves to a JS Engine with `threads`
// worker threads, or rejects with the factory's error.
Napi::Promise loadAsync(Napi::Env env, EngineFactory factory, int threads, bool use_device);

Napi::Value LoadEngine(const Napi::CallbackInfo& info);

// Reads EngineOptions from a JS object; throws ERR_INVALID_ARGUMENT (as EngineError).
EngineOptions parseEngineOptions(const Napi::Value& value);

}  // namespace swin
