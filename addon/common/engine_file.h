// Opening an engine file: checks that are the same for every backend (file
// exists, is not empty, is not plainly an engine of another kind), then the
// backend's factory. Pure C++; throws EngineError.
#pragma once

#include <memory>
#include <string>

#include "common/engine.h"

namespace swin {

enum class FileFormat {
  kTensorRTPlan,  // begins with TensorRT's "ftrt" magic
  kSafetensors,   // 8-byte little-endian header length, then a JSON object
  kOnnx,          // *.onnx (a protobuf ModelProto)
  kUnknown,
};

const char* formatName(FileFormat f);

// Reads the start of `path`. Throws ERR_ENGINE_FILE when it cannot be opened,
// is not a regular file, is empty, or is a safetensors container whose header
// is truncated or not a JSON object.
FileFormat sniffEngineFile(const std::string& path);

// kind: "tensorrt" | "cuda". Throws ERR_ENGINE_KIND for an unknown kind or a
// file of another kind, ERR_BACKEND_UNAVAILABLE where the backend was not
// compiled into this build, and whatever the backend's factory throws.
std::unique_ptr<Engine> openEngine(const std::string& kind, const std::string& path, const EngineOptions& options);

// Which backends this build contains.
bool tensorrtBuilt();
bool cudaEngineBuilt();

}  // namespace swin
