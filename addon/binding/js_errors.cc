#include "binding/js_errors.h"

#include <new>

#include "common/errors.h"

namespace swin {

Napi::Error makeJsError(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, errorCodeName(code)));
  return err;
}

Napi::Error toJsError(Napi::Env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const EngineError& e) { return makeJsError(env, e.code(), e.what()); } catch (const std::bad_alloc& e) {
    return makeJsError(env, ErrorCode::kOutOfMemory, std::string("host memory exhausted: ") + e.what());
  } catch (const std::exception& e) {
    return makeJsError(env, ErrorCode::kInternal, std::string("unexpected C++ exception: ") + e.what());
  } catch (...) {
    return makeJsError(env, ErrorCode::kInternal, "unknown C++ exception (not derived from std::exception)");
  }
}

Napi::Promise rejectedPromise(Napi::Env env, ErrorCode code, const std::string& message) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(makeJsError(env, code, message).Value());
  return deferred.Promise();
}

}  // namespace swin
