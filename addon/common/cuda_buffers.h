// RAII owners for CUDA memory and streams, for engines that run inference:
// pinned host staging buffers (so cudaMemcpyAsync really is asynchronous and
// runs at full PCIe speed), device buffers and streams. CUDA builds only.
#pragma once

#ifdef SWIN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "common/cuda_check.h"

namespace swin {

// One owning handle for memory from a CUDA allocator; Traits names the
// allocate/free pair. Moves swap, so `b = Buffer();` frees b's old memory.
template <typename Traits>
class CudaMemory {
 public:
  CudaMemory() = default;
  explicit CudaMemory(size_t bytes) : bytes_(bytes) {
    if (bytes) Traits::allocate(&ptr_, bytes);
  }
  ~CudaMemory() {
    if (ptr_) Traits::release(ptr_);  // never throws from a destructor
  }
  CudaMemory(CudaMemory&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  CudaMemory& operator=(CudaMemory&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  CudaMemory(const CudaMemory&) = delete;
  CudaMemory& operator=(const CudaMemory&) = delete;

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct PinnedHostTraits {
  // Portable: usable from every device's contexts, since one process may
  // drive several GPUs.
  static void allocate(void** p, size_t bytes) { SWIN_CUDA_CHECK(cudaHostAlloc(p, bytes, cudaHostAllocPortable)); }
  static void release(void* p) { (void)cudaFreeHost(p); }
};

struct DeviceTraits {
  static void allocate(void** p, size_t bytes) { SWIN_CUDA_CHECK(cudaMalloc(p, bytes)); }
  static void release(void* p) { (void)cudaFree(p); }
};

using PinnedBuffer = CudaMemory<PinnedHostTraits>;
using DeviceBuffer = CudaMemory<DeviceTraits>;

class CudaStream {
 public:
  CudaStream() { SWIN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace swin
#endif  // SWIN_HAVE_CUDA
