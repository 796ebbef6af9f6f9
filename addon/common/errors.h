// The addon's error codes: every rejection and every EngineError carries one of these, and
// JS sees errorCodeName(code) as the Error's `code` property. docs/addon.md lists them with
// their meaning for users; test/addon-native.test.ts holds that table to this enum.
#pragma once

#include <stdexcept>
#include <string>

namespace swin {

enum class ErrorCode {
  kEngineFile,          // engine file missing, unreadable, empty, truncated or corrupt
  kEngineKind,          // a file of another kind or format version, or a plan with the wrong IO
  kEngineMismatch,      // built for another GPU architecture or TensorRT version
  kBatchRange,          // batch size outside what the engine accepts
  kOutOfMemory,         // GPU or host memory exhausted
  kCuda,                // any other CUDA / cuBLAS / nvJPEG / TensorRT failure
  kNoDevice,            // no usable GPU: none, no driver, bad index
  kBackendUnavailable,  // not compiled into this build, or not on this GPU
  kInvalidArgument,     // a call from JS with wrong arguments
  kDisposed,            // the engine or decoder was disposed
  kInternal,            // an unexpected C++ exception
};

// The stable string JS sees. A switch with no default, so -Wall (-Wswitch) flags a code
// added above without a name here.
constexpr const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kEngineFile: return "ERR_ENGINE_FILE";
    case ErrorCode::kEngineKind: return "ERR_ENGINE_KIND";
    case ErrorCode::kEngineMismatch: return "ERR_ENGINE_MISMATCH";
    case ErrorCode::kBatchRange: return "ERR_BATCH_RANGE";
    case ErrorCode::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
    case ErrorCode::kCuda: return "ERR_CUDA";
    case ErrorCode::kNoDevice: return "ERR_NO_DEVICE";
    case ErrorCode::kBackendUnavailable: return "ERR_BACKEND_UNAVAILABLE";
    case ErrorCode::kInvalidArgument: return "ERR_INVALID_ARGUMENT";
    case ErrorCode::kDisposed: return "ERR_DISPOSED";
    case ErrorCode::kInternal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";  // unreachable for a valid enumerator
}

// What engines, loaders and checks throw; the binding turns it into a JS Error with `code`.
class EngineError : public std::runtime_error {
 public:
  EngineError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* codeName() const { return errorCodeName(code_); }

 private:
  ErrorCode code_;
};

}  // namespace swin
