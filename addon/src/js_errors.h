// C++ exceptions -> JS Errors with a stable `code` (JS thread only).
//   swin::EngineError      -> its code (ERR_ENGINE_FILE, ERR_CUDA, ...)
//   std::bad_alloc         -> ERR_OUT_OF_MEMORY (host memory)
//   other std::exception   -> ERR_INTERNAL, with what()
//   anything else          -> ERR_INTERNAL, "unknown C++ exception"
// Addon-level codes besides engine.h's: ERR_INVALID_ARGUMENT (bad call from
// JS), ERR_BACKEND_UNAVAILABLE (backend not compiled into this build),
// ERR_DISPOSED (engine already disposed), ERR_INTERNAL.
#pragma once

#include <napi.h>

#include <exception>
#include <string>

namespace swin {

Napi::Error makeJsError(Napi::Env env, const std::string& code, const std::string& message);
Napi::Error toJsError(Napi::Env env, std::exception_ptr error);

// A promise already rejected with `code`, for argument errors found on the JS thread.
Napi::Promise rejectedPromise(Napi::Env env, const std::string& code, const std::string& message);

}  // namespace swin
