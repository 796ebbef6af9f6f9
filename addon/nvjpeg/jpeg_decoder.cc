#include "nvjpeg/jpeg_decoder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "binding/js_errors.h"
#include "build_config.h"
#include "common/engine.h"
#include "common/gpu_device.h"
#include "nvjpeg/decoder_core.h"
#include "nvjpeg/resize_kernels.h"

#ifdef SWIN_HAVE_NVJPEG
#include <cuda_runtime.h>
#include <nvjpeg.h>

#include "common/cuda_buffers.h"
#include "common/cuda_check.h"
#endif

namespace swin {

// ------------------------------------------------------------ host header parse

namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// EXIF APP1 payload after "Exif\0\0": a TIFF header, IFD0, tag 0x0112 (SHORT).
int exifOrientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  const bool le = t[0] == 'I' && t[1] == 'I';
  if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
  auto u16 = [&](size_t o) -> uint32_t { return le ? (t[o] | t[o + 1] << 8) : (t[o] << 8 | t[o + 1]); };
  auto u32 = [&](size_t o) -> uint32_t {
    return le ? (t[o] | t[o + 1] << 8 | t[o + 2] << 16 | static_cast<uint32_t>(t[o + 3]) << 24)
              : (static_cast<uint32_t>(t[o]) << 24 | t[o + 1] << 16 | t[o + 2] << 8 | t[o + 3]);
  };
  if (u16(2) != 42) return 1;
  const size_t ifd = u32(4);
  if (ifd + 2 > n) return 1;
  const uint32_t count = u16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + static_cast<size_t>(i) * 12;
    if (e + 12 > n) return 1;
    if (u16(e) == 0x0112 && u16(e + 2) == 3) {  // SHORT
      const uint32_t v = u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
    }
  }
  return 1;
}

}  // namespace

JpegHeader parseJpegHeader(const uint8_t* d, size_t n) {
  JpegHeader h;
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) {
    h.reason = "not a JPEG";
    return h;
  }
  bool have_exif = false, have_sof = false;
  size_t sos = 0;  // first byte after the first scan header
  size_t p = 2;
  while (p + 4 <= n) {
    if (d[p] != 0xFF) {
      h.reason = "corrupt marker structure";
      return h;
    }
    uint8_t m = d[p + 1];
    if (m == 0xFF) {
      ++p;
      continue;
    }  // fill byte
    p += 2;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length
    if (m == 0xD9) break;
    const size_t len = be16(d + p);
    if (len < 2 || p + len > n) {
      h.reason = "truncated header";
      return h;
    }
    const uint8_t* s = d + p + 2;
    const size_t sn = len - 2;
    if (m == 0xDA) {  // start of scan: the headers are done
      sos = p + len;
      break;
    }
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (sn < 6) {
        h.reason = "truncated frame header";
        return h;
      }
      have_sof = true;
      h.precision = s[0];
      h.height = be16(s + 1);
      h.width = be16(s + 3);
      h.components = s[5];
      h.progressive = m == 0xC2;
      if (m != 0xC0 && m != 0xC1 && m != 0xC2) { h.reason = "lossless, hierarchical or arithmetic-coded JPEG"; }
    } else if (m == 0xE1 && !have_exif && sn >= 6 && std::memcmp(s, "Exif\0\0", 6) == 0) {
      have_exif = true;
      h.orientation = exifOrientation(s + 6, sn - 6);
    } else if (m == 0xEE && sn >= 12 && std::memcmp(s, "Adobe", 5) == 0) {
      h.adobe_transform = s[11];
    }
    p += len;
  }
  if (!h.reason.empty()) return h;
  // nvJPEG decodes a truncated stream without complaint (measured on the H100's hardware
  // decoder); sharp refuses it. Entropy-coded data never holds FF D9 (FF is stuffed as
  // FF 00), so an end-of-image marker after the first scan header means the stream is whole.
  bool eoi = false;
  for (size_t i = sos; sos > 0 && i + 1 < n && !eoi;) {  // memchr: the service inspects every JPEG
    const auto* ff = static_cast<const uint8_t*>(std::memchr(d + i, 0xFF, n - 1 - i));
    if (!ff) break;
    i = static_cast<size_t>(ff - d) + 1;
    eoi = d[i] == 0xD9;
  }
  if (sos == 0) h.reason = "no scan";
  else if (!eoi) h.reason = "truncated (no end-of-image marker)";
  else if (!have_sof) h.reason = "no frame header";
  else if (h.precision != 8) h.reason = std::to_string(h.precision) + "-bit samples";
  else if (h.components == 4) h.reason = "CMYK/YCCK JPEG";
  else if (h.components != 1 && h.components != 3) h.reason = std::to_string(h.components) + " components";
  else if (h.components == 3 && h.adobe_transform == 0) h.reason = "RGB-coded (Adobe transform 0) JPEG";
  else if (h.width < 1 || h.height < 1) h.reason = "no dimensions in the frame header";
  return h;
}

// ------------------------------------------------------------ nvJPEG core

#ifdef SWIN_HAVE_NVJPEG

namespace {

const char* nvjpegStatusName(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS: return "NVJPEG_STATUS_SUCCESS";
    case NVJPEG_STATUS_NOT_INITIALIZED: return "NVJPEG_STATUS_NOT_INITIALIZED";
    case NVJPEG_STATUS_INVALID_PARAMETER: return "NVJPEG_STATUS_INVALID_PARAMETER";
    case NVJPEG_STATUS_BAD_JPEG: return "NVJPEG_STATUS_BAD_JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED: return "NVJPEG_STATUS_JPEG_NOT_SUPPORTED";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE: return "NVJPEG_STATUS_ALLOCATOR_FAILURE";
    case NVJPEG_STATUS_EXECUTION_FAILED: return "NVJPEG_STATUS_EXECUTION_FAILED";
    case NVJPEG_STATUS_ARCH_MISMATCH: return "NVJPEG_STATUS_ARCH_MISMATCH";
    case NVJPEG_STATUS_INTERNAL_ERROR: return "NVJPEG_STATUS_INTERNAL_ERROR";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED: return "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED";
    case NVJPEG_STATUS_INCOMPLETE_BITSTREAM: return "NVJPEG_STATUS_INCOMPLETE_BITSTREAM";
    default: return "NVJPEG_STATUS_UNKNOWN";
  }
}

[[noreturn]] void throwNvjpeg(nvjpegStatus_t s, const char* expr, const char* file, int line) {
  const ErrorCode code = s == NVJPEG_STATUS_ALLOCATOR_FAILURE ? ErrorCode::kOutOfMemory
                         : s == NVJPEG_STATUS_ARCH_MISMATCH   ? ErrorCode::kBackendUnavailable
                                                              : ErrorCode::kCuda;
  throw EngineError(code, std::string("nvJPEG error ") + nvjpegStatusName(s) + " (" + std::to_string(s) + ") in `" +
                              expr + "` at " + file + ":" + std::to_string(line));
}

#define SWIN_NVJPEG_CHECK(expr)                                                                \
  do {                                                                                         \
    const nvjpegStatus_t swin_nvj_ = (expr);                                                   \
    if (swin_nvj_ != NVJPEG_STATUS_SUCCESS) throwNvjpeg(swin_nvj_, #expr, __FILE__, __LINE__); \
  } while (0)

size_t align256(size_t x) { return (x + 255) & ~size_t{255}; }

void ensure(DeviceBuffer& b, size_t bytes) {
  if (b.bytes() < bytes) {
    b = DeviceBuffer();  // free first: the arena only grows
    b = DeviceBuffer(bytes + bytes / 4);
  }
}

}  // namespace

struct JpegDecoderCore::State {
  // Worker thread, device already current.
  State(int device, const std::string& backend) : device_(device) {
    if (backend != "default") {
      const nvjpegStatus_t s = nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, nullptr, nullptr, 0, &hw_);
      if (s != NVJPEG_STATUS_SUCCESS) {
        hw_ = nullptr;
        if (backend == "hardware") {
          throw EngineError(ErrorCode::kBackendUnavailable,
                            std::string("no hardware JPEG decoder on this GPU (") + nvjpegStatusName(s) + ")");
        }
      } else {
        SWIN_NVJPEG_CHECK(nvjpegJpegStateCreate(hw_, &hw_state_));
        SWIN_NVJPEG_CHECK(nvjpegJpegStreamCreate(hw_, &parsed_));
      }
    }
    SWIN_NVJPEG_CHECK(nvjpegCreateEx(NVJPEG_BACKEND_DEFAULT, nullptr, nullptr, 0, &def_));
    SWIN_NVJPEG_CHECK(nvjpegJpegStateCreate(def_, &def_state_));
    SWIN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~State() {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (parsed_) nvjpegJpegStreamDestroy(parsed_);
    if (hw_state_) nvjpegJpegStateDestroy(hw_state_);
    if (def_state_) nvjpegJpegStateDestroy(def_state_);
    if (hw_) nvjpegDestroy(hw_);
    if (def_) nvjpegDestroy(def_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  const char* backendName() const { return hw_ ? "hardware" : "default"; }

  // Decodes job's images into d_out (device), image i at slot(i); the resize is enqueued on
  // stream_, not waited for. Refused images' slots are zeroed.
  void decodeTo(DecodeJob& job, uint8_t* d_out) {
    const int n = static_cast<int>(job.data.size());
    const DecodeSpec& sp = job.spec;
    job.decoded.assign(n, 0);
    job.reasons.assign(n, "");
    struct Item {
      int w = 0, h = 0, orientation = 1;
      size_t offset = 0;  // into decoded_
      size_t tmp_offset = 0;
      ResizeGeometry g;
    };
    std::vector<Item> items(n);
    std::vector<int> batch, single;
    size_t decoded_bytes = 0, tmp_bytes = 0;
    for (int i = 0; i < n; ++i) {
      const JpegHeader hdr = parseJpegHeader(job.data[i], job.lengths[i]);
      if (!hdr.reason.empty()) {
        job.reasons[i] = hdr.reason;
        continue;
      }
      if (static_cast<double>(hdr.width) * hdr.height > sp.max_pixels) {
        job.reasons[i] = "more pixels than allowed";
        continue;
      }
      int comps = 0;
      nvjpegChromaSubsampling_t css;
      int ws[NVJPEG_MAX_COMPONENT] = {}, hs[NVJPEG_MAX_COMPONENT] = {};
      const nvjpegStatus_t s = nvjpegGetImageInfo(def_, job.data[i], job.lengths[i], &comps, &css, ws, hs);
      if (s != NVJPEG_STATUS_SUCCESS) {
        job.reasons[i] = std::string("nvJPEG: ") + nvjpegStatusName(s);
        continue;
      }
      Item& it = items[i];
      it.w = ws[0];
      it.h = hs[0];
      it.orientation = hdr.orientation;
      int W, H;
      orientedSize(it.w, it.h, it.orientation, &W, &H);
      const size_t pixel_bytes = align256(static_cast<size_t>(it.w) * it.h * 3);
      const size_t row_bytes = align256(static_cast<size_t>(W) * sp.size * 3 * sizeof(float));
      if (job.max_scratch_bytes > 0 && decoded_bytes + tmp_bytes + pixel_bytes + row_bytes > job.max_scratch_bytes) {
        job.reasons[i] =
            "over this batch's GPU decode memory (" + std::to_string(job.max_scratch_bytes >> 20) + " MiB)";
        continue;
      }
      it.g = resizeGeometry(W, H, sp.squash, sp.resize, sp.size);
      it.offset = decoded_bytes;
      decoded_bytes += pixel_bytes;
      it.tmp_offset = tmp_bytes;
      tmp_bytes += row_bytes;
      bool hw_ok = false;
      if (hw_) {
        int unsupported = 1;
        if (nvjpegJpegStreamParse(hw_, job.data[i], job.lengths[i], 0, 0, parsed_) == NVJPEG_STATUS_SUCCESS &&
            nvjpegDecodeBatchedSupported(hw_, parsed_, &unsupported) == NVJPEG_STATUS_SUCCESS) {
          hw_ok = unsupported == 0;
        }
      } else {
        hw_ok = !hdr.progressive;  // the default backend's batched path; progressive goes one by one
      }
      (hw_ok ? batch : single).push_back(i);
    }
    const size_t image_bytes = static_cast<size_t>(sp.size) * sp.size * 3;
    ensure(decoded_, std::max<size_t>(decoded_bytes, 256));
    ensure(tmp_, std::max<size_t>(tmp_bytes, 256));
    auto dest = [&](int i) {
      nvjpegImage_t d{};
      d.channel[0] = decoded_.get<unsigned char>() + items[i].offset;
      d.pitch[0] = static_cast<size_t>(items[i].w) * 3;
      return d;
    };

    if (!batch.empty()) {
      nvjpegHandle_t h = hw_ ? hw_ : def_;
      nvjpegJpegState_t st = hw_ ? hw_state_ : def_state_;
      std::vector<const unsigned char*> ptrs;
      std::vector<size_t> lens;
      std::vector<nvjpegImage_t> dests;
      for (int i : batch) {
        ptrs.push_back(job.data[i]);
        lens.push_back(job.lengths[i]);
        dests.push_back(dest(i));
      }
      nvjpegStatus_t s = NVJPEG_STATUS_SUCCESS;
      if (batch_size_ != static_cast<int>(batch.size()) || batch_handle_ != h) {
        s = nvjpegDecodeBatchedInitialize(h, st, static_cast<int>(batch.size()), 1, NVJPEG_OUTPUT_RGBI);
        batch_size_ = s == NVJPEG_STATUS_SUCCESS ? static_cast<int>(batch.size()) : -1;
        batch_handle_ = h;
      }
      if (s == NVJPEG_STATUS_SUCCESS) s = nvjpegDecodeBatched(h, st, ptrs.data(), lens.data(), dests.data(), stream_);
      if (s == NVJPEG_STATUS_SUCCESS)
        s = cudaStreamSynchronize(stream_) == cudaSuccess ? s : NVJPEG_STATUS_EXECUTION_FAILED;
      if (s == NVJPEG_STATUS_SUCCESS) {
        for (int i : batch) job.decoded[i] = 1;
      } else {
        // One bad image fails the whole batch: retry each alone to find it.
        (void)cudaGetLastError();
        batch_size_ = -1;
        single.insert(single.end(), batch.begin(), batch.end());
      }
    }
    for (int i : single) {
      nvjpegImage_t d = dest(i);
      nvjpegStatus_t s = nvjpegDecode(def_, def_state_, job.data[i], job.lengths[i], NVJPEG_OUTPUT_RGBI, &d, stream_);
      if (s == NVJPEG_STATUS_SUCCESS && cudaStreamSynchronize(stream_) != cudaSuccess)
        s = NVJPEG_STATUS_EXECUTION_FAILED;
      if (s == NVJPEG_STATUS_SUCCESS) job.decoded[i] = 1;
      else {
        (void)cudaGetLastError();
        job.reasons[i] = std::string("nvJPEG: ") + nvjpegStatusName(s);
      }
    }

    for (int i = 0; i < n; ++i) {
      uint8_t* dst = d_out + image_bytes * job.slot(i);
      if (!job.decoded[i]) {
        SWIN_CUDA_CHECK(cudaMemsetAsync(dst, 0, image_bytes, stream_));
        continue;
      }
      const Item& it = items[i];
      launchResizeOriented(decoded_.get<uint8_t>() + it.offset, it.w, it.h, it.w * 3, it.orientation, it.g, sp.kernel,
                           reinterpret_cast<float*>(tmp_.get<uint8_t>() + it.tmp_offset), dst, stream_);
    }
  }

  // decodeTo a device buffer of its own, then to job.out (host) through pinned staging.
  void decodeToHost(DecodeJob& job) {
    const size_t bytes = static_cast<size_t>(job.spec.size) * job.spec.size * 3 * job.data.size();
    ensure(out_, bytes);
    if (staging_.bytes() < bytes) {
      staging_ = PinnedBuffer();
      staging_ = PinnedBuffer(bytes + bytes / 4);
    }
    job.slots.clear();
    decodeTo(job, out_.get<uint8_t>());
    SWIN_CUDA_CHECK(cudaMemcpyAsync(staging_.get(), out_.get(), bytes, cudaMemcpyDeviceToHost, stream_));
    SWIN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(job.out, staging_.get(), bytes);
  }

  int device_ = 0;
  nvjpegHandle_t hw_ = nullptr, def_ = nullptr;
  nvjpegJpegState_t hw_state_ = nullptr, def_state_ = nullptr;
  nvjpegJpegStream_t parsed_ = nullptr;
  nvjpegHandle_t batch_handle_ = nullptr;
  int batch_size_ = -1;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer decoded_, tmp_, out_;
  PinnedBuffer staging_;
};

JpegDecoderCore::JpegDecoderCore(int device, const std::string& backend)
    : state_(std::make_unique<State>(device, backend)) {}
JpegDecoderCore::~JpegDecoderCore() = default;
const char* JpegDecoderCore::backendName() const { return state_->backendName(); }
void JpegDecoderCore::decode(DecodeJob& job) { state_->decodeToHost(job); }
void JpegDecoderCore::decodeToDevice(DecodeJob& job, uint8_t* d_out) { state_->decodeTo(job, d_out); }
void* JpegDecoderCore::stream() const { return state_->stream_; }

#else  // no nvJPEG: the class exists so the JS side can ask why

struct JpegDecoderCore::State {};

JpegDecoderCore::JpegDecoderCore(int, const std::string&) {
  throw EngineError(ErrorCode::kBackendUnavailable,
                    std::string("GPU JPEG decoding is not in this build: nvJPEG ") + SWIN_BUILD_NVJPEG_STATUS);
}
JpegDecoderCore::~JpegDecoderCore() = default;
const char* JpegDecoderCore::backendName() const { return "none"; }
void JpegDecoderCore::decode(DecodeJob&) {}
void JpegDecoderCore::decodeToDevice(DecodeJob&, uint8_t*) {}
void* JpegDecoderCore::stream() const { return nullptr; }

#endif

// ------------------------------------------------------------ geometry (host)

ResizeGeometry resizeGeometry(int w, int h, bool squash, int resize, int out) {
  ResizeGeometry g;
  g.out = out;
  if (squash) {
    g.nw = g.nh = out;
    return g;
  }
  // src/decode/preprocess.ts: torchvision Resize(int), then a centre crop; JS arithmetic in doubles.
  const double scale = static_cast<double>(resize) / std::min(w, h);
  g.nw = w <= h ? resize : std::max(resize, static_cast<int>(std::floor(w * scale)));
  g.nh = h < w ? resize : std::max(resize, static_cast<int>(std::floor(h * scale)));
  g.left = static_cast<int>(std::floor((g.nw - out) / 2.0 + 0.5));  // Math.round
  g.top = static_cast<int>(std::floor((g.nh - out) / 2.0 + 0.5));
  return g;
}

// ------------------------------------------------------------ JS class

namespace {

bool isBytes(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

struct Holder {
  std::mutex mu;
  std::unique_ptr<JpegDecoderCore> core;
  std::string backend = "auto";
  int device = 0;
  JpegDecoderCore& get() {
    std::lock_guard<std::mutex> lock(mu);
    if (!core) core = std::make_unique<JpegDecoderCore>(device, backend);
    return *core;
  }
};

}  // namespace

bool parseDecodeSpec(const Napi::Object& so, DecodeSpec* spec) {
  const int size = so.Get("size").ToNumber().Int32Value();
  const std::string mode = so.Get("mode").ToString().Utf8Value();
  const std::string kernel = so.Get("kernel").ToString().Utf8Value();
  static const std::array<const char*, 6> kKernels = {"nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3"};
  int k = -1;
  for (int i = 0; i < 6; ++i)
    if (kernel == kKernels[i]) k = i;
  spec->size = size;
  spec->squash = mode == "squash";
  spec->resize = so.Has("resize") ? so.Get("resize").ToNumber().Int32Value() : size;
  spec->max_pixels = so.Has("maxPixels") ? so.Get("maxPixels").ToNumber().DoubleValue() : 1e18;
  if (size < 1 || size > 8192 || k < 0 || (mode != "squash" && mode != "shorter_side_crop") ||
      (!spec->squash && spec->resize < size)) {
    return false;
  }
  spec->kernel = static_cast<ResizeKernel>(k);
  return true;
}

void setDecodeOutcome(Napi::Env env, Napi::Object result, int n, const std::vector<uint8_t>& decoded,
                      const std::vector<std::string>& reasons) {
  Napi::Uint8Array flags = Napi::Uint8Array::New(env, n);
  Napi::Array why = Napi::Array::New(env, n);
  for (int i = 0; i < n; ++i) {
    const bool ok = !decoded.empty() && decoded[i];
    flags[i] = ok ? 1 : 0;
    why.Set(i, ok ? env.Null() : Napi::String::New(env, reasons.empty() ? "not decoded" : reasons[i]));
  }
  result.Set("decoded", flags);
  result.Set("reasons", why);
}

Napi::Function JpegDecoder::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "JpegDecoder",
                                    {
                                        InstanceMethod<&JpegDecoder::Decode>("decode"),
                                        InstanceMethod<&JpegDecoder::Dispose>("dispose"),
                                        InstanceMethod<&JpegDecoder::GetInfo>("open"),
                                        StaticMethod<&JpegDecoder::Inspect>("inspect"),
#ifdef SWIN_HAVE_NVJPEG
                                        StaticValue("built", Napi::Boolean::New(env, true)),
#else
                                        StaticValue("built", Napi::Boolean::New(env, false)),
#endif
                                        StaticValue("buildStatus", Napi::String::New(env, SWIN_BUILD_NVJPEG_STATUS)),
                                    });
  exports.Set("JpegDecoder", ctor);
  return ctor;
}

JpegDecoder::JpegDecoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JpegDecoder>(info) {
  Napi::Env env = info.Env();
#ifndef SWIN_HAVE_NVJPEG
  throw makeJsError(env, ErrorCode::kBackendUnavailable,
                    std::string("GPU JPEG decoding is not in this build: nvJPEG ") + SWIN_BUILD_NVJPEG_STATUS);
#else
  std::string backend = "auto";
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Has("deviceIndex") && !o.Get("deviceIndex").IsUndefined()) {
      if (!o.Get("deviceIndex").IsNumber())
        throw makeJsError(env, ErrorCode::kInvalidArgument, "deviceIndex must be a number");
      device_index_ = o.Get("deviceIndex").As<Napi::Number>().Int32Value();
    }
    if (o.Has("backend") && !o.Get("backend").IsUndefined()) {
      backend = o.Get("backend").ToString().Utf8Value();
      if (backend != "auto" && backend != "hardware" && backend != "default") {
        throw makeJsError(env, ErrorCode::kInvalidArgument, "backend must be auto, hardware or default");
      }
    }
  }
  auto holder = std::make_shared<Holder>();
  holder->backend = backend;
  holder->device = device_index_;
  holder_ = holder;
  const int device = device_index_;
  executor_ = std::make_unique<Executor>(1, [device] { setCurrentDevice(device); });
#endif
}

JpegDecoder::~JpegDecoder() {
  if (executor_) executor_->shutdown();
}

Napi::Value JpegDecoder::Inspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !isBytes(info[0]))
    throw makeJsError(env, ErrorCode::kInvalidArgument, "inspect(jpeg: Uint8Array) expected");
  Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
  const JpegHeader h = parseJpegHeader(a.Data(), a.ByteLength());
  Napi::Object o = Napi::Object::New(env);
  o.Set("width", h.width);
  o.Set("height", h.height);
  o.Set("components", h.components);
  o.Set("progressive", h.progressive);
  o.Set("orientation", h.orientation);
  o.Set("reason", h.reason.empty() ? env.Null() : Napi::String::New(env, h.reason));
  return o;
}

Napi::Value JpegDecoder::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!executor_) return rejectedPromise(env, ErrorCode::kDisposed, "the decoder was disposed");
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject()) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument, "decode(jpegs: Uint8Array[], spec) expected");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  Napi::Object so = info[1].As<Napi::Object>();
  auto job = std::make_shared<DecodeJob>();
  const int n = static_cast<int>(arr.Length());
  if (n < 1 || !parseDecodeSpec(so, &job->spec)) {
    return rejectedPromise(env, ErrorCode::kInvalidArgument, "bad decode spec or empty image list");
  }
  const int size = job->spec.size;
  auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
  for (int i = 0; i < n; ++i) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(i));
    if (!isBytes(v)) return rejectedPromise(env, ErrorCode::kInvalidArgument, "every image must be a Uint8Array");
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    job->data.push_back(a.Data());
    job->lengths.push_back(a.ByteLength());
    refs->push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Uint8Array pixels = Napi::Uint8Array::New(env, static_cast<size_t>(n) * size * size * 3);
  job->out = pixels.Data();
  refs->push_back(Napi::Persistent(pixels.As<Napi::Object>()));
  refs->push_back(Napi::Persistent(Value()));
  auto deferred = Napi::Promise::Deferred::New(env);
  std::shared_ptr<Holder> holder = std::static_pointer_cast<Holder>(holder_);
  executor_->submit(
      env, [holder, job] { holder->get().decode(*job); },
      [deferred, refs, job, n](Napi::Env env, std::exception_ptr error) {
        Napi::Value px = (*refs)[n].Value();
        for (auto& r : *refs) r.Reset();
        if (error) {
          deferred.Reject(toJsError(env, error).Value());
          return;
        }
        Napi::Object result = Napi::Object::New(env);
        result.Set("pixels", px);
        setDecodeOutcome(env, result, n, job->decoded, job->reasons);
        deferred.Resolve(result);
      });
  return deferred.Promise();
}

// open(): creates the nvJPEG handles on the worker thread; resolves {backend, deviceIndex}.
Napi::Value JpegDecoder::GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!executor_) return rejectedPromise(env, ErrorCode::kDisposed, "the decoder was disposed");
  auto deferred = Napi::Promise::Deferred::New(env);
  std::shared_ptr<Holder> holder = std::static_pointer_cast<Holder>(holder_);
  auto name = std::make_shared<std::string>();
  auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
  const int device = device_index_;
  executor_->submit(
      env, [holder, name] { *name = holder->get().backendName(); },
      [deferred, name, self, device](Napi::Env env, std::exception_ptr error) {
        self->Reset();
        if (error) {
          deferred.Reject(toJsError(env, error).Value());
          return;
        }
        Napi::Object o = Napi::Object::New(env);
        o.Set("backend", *name);
        o.Set("deviceIndex", device);
        deferred.Resolve(o);
      });
  return deferred.Promise();
}

Napi::Value JpegDecoder::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  if (executor_) {
    // Waits for at most one running batch; the nvJPEG state is freed with the last reference.
    executor_->shutdown();
    executor_.reset();
    holder_.reset();
  }
  deferred.Resolve(env.Undefined());
  return deferred.Promise();
}

}  // namespace swin
