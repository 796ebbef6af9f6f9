// C++ exceptions -> JS Errors with a stable `code` (JS thread only).
//   swin::EngineError      -> its code (common/errors.h: ERR_ENGINE_FILE, ERR_CUDA, ...)
//   std::bad_alloc         -> ERR_OUT_OF_MEMORY (host memory)
//   other std::exception   -> ERR_INTERNAL, with what()
//   anything else          -> ERR_INTERNAL, "unknown C++ exception"
#pragma once

#include <napi.h>

#include <exception>
#include <string>

#include "common/errors.h"

namespace swin {

Napi::Error makeJsError(Napi::Env env, ErrorCode code, const std::string& message);
Napi::Error toJsError(Napi::Env env, std::exception_ptr error);

// A promise already rejected with `code`, for argument errors found on the JS thread.
Napi::Promise rejectedPromise(Napi::Env env, ErrorCode code, const std::string& message);

}  // namespace swin
