// A deliberately slow GPU kernel for tests that must prove the event loop
// runs while the GPU works. Compiled only where nvcc was found.
#pragma once

namespace swin {

bool testKernelsBuilt();

// Keeps the current device busy for about `ms` milliseconds with one
// busy-waiting kernel on a fresh stream, then waits for it on the calling
// (worker) thread. Throws EngineError (ERR_BACKEND_UNAVAILABLE where not built).
void spinGpu(double ms);

}  // namespace swin
