// A tiny C API over the engine and its kernels, for Python ctypes: tests and benchmarks run
// the engine in the same process as PyTorch, on device tensors (data_ptr()). Every function
// returns 0 on success, -1 on failure; swin_last_error()/swin_last_error_code() then give the
// message and the EngineError code (thread-local). Kernel entry points (swin_k_*) run on the
// legacy default stream (PyTorch's default) and synchronise, so a fault is reported by the
// call that caused it. dtype: 0 = fp32, 1 = fp16.
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "common/cuda_check.h"
#include "gemm.h"
#include "kernels.h"
#include "swin_engine.h"

namespace {

thread_local std::string g_error, g_code;

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const swin::EngineError& e) {
    g_code = e.codeName();
    g_error = e.what();
  } catch (const std::exception& e) {
    g_code = swin::errorCodeName(swin::ErrorCode::kInternal);
    g_error = e.what();
  } catch (...) {
    g_code = swin::errorCodeName(swin::ErrorCode::kInternal);
    g_error = "unknown C++ exception";
  }
  return -1;
}

void syncDefault() { SWIN_CUDA_CHECK(cudaStreamSynchronize(0)); }

template <typename F>
void byType(int dtype, F&& f) {
  if (dtype == 0) f(float());
  else if (dtype == 1) f(__half());
  else throw swin::EngineError(swin::ErrorCode::kInvalidArgument, "dtype must be 0 (fp32) or 1 (fp16)");
}

swin::LtGemm& testGemm() {
  static std::unique_ptr<swin::LtGemm> g;
  if (!g) g = std::make_unique<swin::LtGemm>();
  return *g;
}

}  // namespace

extern "C" {

const char* swin_last_error(void) { return g_error.c_str(); }
const char* swin_last_error_code(void) { return g_code.c_str(); }

void* swin_engine_open(const char* path, int device, int max_batch, int instances, int use_graphs,
                       const char* precision) {
  swin::CudaSwinEngine* out = nullptr;
  guarded([&] {
    swin::EngineOptions o;
    o.device_index = device;
    o.max_batch = max_batch;
    o.instances = instances;
    o.use_cuda_graphs = use_graphs != 0;
    o.precision = precision ? precision : "";
    out = swin::openCudaSwinEngine(path, o).release();
  });
  return out;
}

void swin_engine_close(void* h) { delete static_cast<swin::CudaSwinEngine*>(h); }

// out[0..5] = max_batch, height, width, num_classes, is_fp32, device MiB
int swin_engine_info(void* h, int* out) {
  return guarded([&] {
    auto* e = static_cast<swin::CudaSwinEngine*>(h);
    const auto& i = e->info();
    out[0] = i.max_batch;
    out[1] = i.height;
    out[2] = i.width;
    out[3] = i.num_classes;
    out[4] = i.precision == "fp32";
    out[5] = static_cast<int>(e->deviceBytes() >> 20);
  });
}

int swin_engine_infer(void* h, const uint8_t* images, int n, float* logits) {
  return guarded([&] { static_cast<swin::CudaSwinEngine*>(h)->infer(images, n, logits); });
}

int swin_engine_infer_device(void* h, const uint8_t* d_images, int n, float* d_logits, void* stream) {
  return guarded([&] {
    static_cast<swin::CudaSwinEngine*>(h)->inferDevice(d_images, n, d_logits, static_cast<cudaStream_t>(stream));
  });
}

int swin_engine_time(void* h, int n, int warmup, int iters, float* ms) {
  return guarded([&] { static_cast<swin::CudaSwinEngine*>(h)->timeForward(n, warmup, iters, ms); });
}

int swin_k_patch_embed(int dtype, const uint8_t* img, void* out, int B, int H, int W, int P, const float* mean,
                       const float* std) {
  return guarded([&] {
    float scale[3], shift[3];
    for (int c = 0; c < 3; ++c) {
      scale[c] = 1.f / (255.f * std[c]);
      shift[c] = -mean[c] / std[c];
    }
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchPatchEmbedIm2col<T>(img, static_cast<T*>(out), B, H, W, P, scale, shift, 0);
    });
    syncDefault();
  });
}

int swin_k_layernorm(int dtype, const void* in, void* out, const void* g, const void* b, int rows, int C, float eps,
                     int residual) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchLayerNorm<T>(static_cast<const T*>(in), static_cast<T*>(out), static_cast<const T*>(g),
                               static_cast<const T*>(b), rows, C, eps, residual != 0, 0);
    });
    syncDefault();
  });
}

int swin_k_patch_merge(int dtype, const void* x, void* out, const void* g, const void* b, int B, int H, int W, int C,
                       float eps) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchPatchMergeGather<T>(static_cast<const T*>(x), static_cast<T*>(out), static_cast<const T*>(g),
                                      static_cast<const T*>(b), B, H, W, C, eps, 0);
    });
    syncDefault();
  });
}

int swin_k_final_pool(int dtype, const void* x, void* out, const void* g, const void* b, int B, int L, int C,
                      float eps) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchFinalNormPool<T>(static_cast<const T*>(x), static_cast<T*>(out), static_cast<const T*>(g),
                                   static_cast<const T*>(b), B, L, C, eps, 0);
    });
    syncDefault();
  });
}

int swin_k_window_attention(int dtype, const void* qkv, void* out, const void* bias, const void* mask,
                            const float* logit_scale, float scale, int B, int H, int W, int C, int heads, int ws,
                            int shift) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchWindowAttention<T>(static_cast<const T*>(qkv), static_cast<T*>(out), static_cast<const T*>(bias),
                                     static_cast<const T*>(mask), logit_scale, scale, B, H, W, C, heads, ws, shift, 0);
    });
    syncDefault();
  });
}

int swin_k_rel_bias(int dtype, const float* table, const int32_t* index, void* out, int heads, int N) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchGatherRelativeBias<T>(table, index, static_cast<T*>(out), heads, N, 0);
    });
    syncDefault();
  });
}

int swin_k_cpb_bias(int dtype, const float* coords, const float* w1, const float* b1, const float* w2,
                    const int32_t* index, float* scratch, void* out, int entries, int hidden, int heads, int N) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchCpbBias<T>(coords, w1, b1, w2, index, scratch, static_cast<T*>(out), entries, hidden, heads, N, 0);
    });
    syncDefault();
  });
}

int swin_k_shift_mask(int dtype, void* out, int H, int W, int ws, int shift) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      swin::launchShiftMask<T>(static_cast<T*>(out), H, W, ws, shift, 0);
    });
    syncDefault();
  });
}

int swin_k_logit_scale(const float* raw, float* out, int heads) {
  return guarded([&] {
    swin::launchLogitScale(raw, out, heads, 0);
    syncDefault();
  });
}

// epi: 0 none, 1 bias, 2 bias + GELU
int swin_k_gemm(int dtype, const void* X, const void* W, const void* bias, void* D, int M, int N, int K, int epi,
                int accumulate) {
  return guarded([&] {
    byType(dtype, [&](auto t) {
      using T = decltype(t);
      testGemm().run<T>(static_cast<const T*>(X), static_cast<const T*>(W), static_cast<const T*>(bias),
                        static_cast<T*>(D), M, N, K, static_cast<swin::Epilogue>(epi), accumulate != 0, 0);
    });
    syncDefault();
  });
}

}  // extern "C"
