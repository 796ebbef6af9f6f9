// The `_testing` export: hooks for the addon's own tests (test/addon-*.test.ts),
// present in every build so tests exercise the binary the service loads.
//   _testing.loadFaultEngine(spec): Promise<Engine>   (fault_engine.h)
//   _testing.faultStats(engine): { calls, peakConcurrency }
// Nothing in the service calls these.
#pragma once

#include <napi.h>

namespace swin {

Napi::Object InitTesting(Napi::Env env);

}  // namespace swin
