#include "js_errors.h"

#include <new>

#include "engine.h"

namespace swin {

Napi::Error makeJsError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Error toJsError(Napi::Env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const EngineError& e) {
    return makeJsError(env, e.code(), e.what());
  } catch (const std::bad_alloc& e) {
    return makeJsError(env, "ERR_OUT_OF_MEMORY", std::string("host memory exhausted: ") + e.what());
  } catch (const std::exception& e) {
    return makeJsError(env, "ERR_INTERNAL", std::string("unexpected C++ exception: ") + e.what());
  } catch (...) {
    return makeJsError(env, "ERR_INTERNAL", "unknown C++ exception (not derived from std::exception)");
  }
}

Napi::Promise rejectedPromise(Napi::Env env, const std::string& code, const std::string& message) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(makeJsError(env, code, message).Value());
  return deferred.Promise();
}

}  // namespace swin
