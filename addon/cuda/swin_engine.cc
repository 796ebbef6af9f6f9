// The engine: loads an engine file (safetensors + JSON metadata, see docs/cuda-engine.md),
// uploads the weights once, builds the attention biases / masks / logit scales on the GPU
// for the `unfold` variant, and runs the forward pass as one CUDA graph per batch size on
// each of `instances` execution contexts (stream, cuBLASLt handle and workspace, activation
// buffers, pinned-free host copies) that share the weights.
//
// Forward pass, activations row-major [tokens, C] in natural (b, y, x) order:
//   im2col(uint8 -> normalised patches) . GEMM(+bias) . LN                      patch embed
//   per stage: V1 merge = gather+LN(4C) . GEMM;  V2 merge = gather . GEMM . LN
//   per block V1 (pre-norm):  h = LN1(x); qkv = GEMM(h)+b; a = attn(qkv); x += GEMM(a)+b (beta=1)
//                             h = LN2(x); m = GELU(GEMM(h)+b); x += GEMM(m)+b (beta=1)
//   per block V2 (post-norm): qkv = GEMM(x)+b; a = attn(qkv); t = GEMM(a)+b; x += LN1(t)
//                             m = GELU(GEMM(x)+b); t = GEMM(m)+b; x += LN2(t)
//   final: pooled = mean_t LN(x); logits = GEMM(pooled)+b
// Seven launches per block; the attention kernel gathers/scatters through the shifted
// window map, so no partition / reverse copies exist.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/cuda_check.h"
#include "gemm.h"
#include "kernels.h"
#include "safetensors.h"
#include "swin_engine.h"

namespace swin {

namespace {

constexpr int kFormatVersion = 1;

struct StageSpec {
  int dim = 0, depth = 0, heads = 0, H = 0, W = 0, ws = 0;
  bool downsample = false;
  std::vector<int> shifts;
};

struct ModelSpec {
  std::string family, name, variant, precision;
  bool v2 = false;
  int imgH = 0, imgW = 0, patch = 4, embed = 0, classes = 0, hidden_ratio = 4;
  float mlpRatio = 4.f, eps = 1e-5f;
  bool patchNorm = true;
  int maxBatch = 0;
  float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
  std::vector<StageSpec> stages;
};

ModelSpec parseSpec(const SafetensorsFile& f, const std::string& path) {
  const auto& md = f.metadata();
  auto it = md.find("swin_engine");
  if (it == md.end())
    throw EngineError(ErrorCode::kEngineKind, path + ": not a CUDA Swin engine (no 'swin_engine' metadata)");
  ModelSpec s;
  try {
    const nlohmann::json m = nlohmann::json::parse(it->second);
    if (!m.is_object() || m.value("format", "") != "swin-cuda-engine")
      throw EngineError(ErrorCode::kEngineKind, path + ": metadata format is not 'swin-cuda-engine'");
    const int version = m.at("format_version").get<int>();
    if (version != kFormatVersion)
      throw EngineError(ErrorCode::kEngineKind, path + ": engine format version " + std::to_string(version) +
                                                    ", this build reads version " + std::to_string(kFormatVersion));
    s.family = m.at("family").get<std::string>();
    if (s.family != "swin" && s.family != "swinv2")
      throw EngineError(ErrorCode::kEngineKind, path + ": unknown family '" + s.family + "'");
    s.v2 = s.family == "swinv2";
    s.name = m.value("name", s.family);
    s.variant = m.at("variant").get<std::string>();
    if (s.variant != "fold" && s.variant != "unfold")
      throw EngineError(ErrorCode::kEngineKind, path + ": unknown variant '" + s.variant + "'");
    s.precision = m.at("precision").get<std::string>();
    if (s.precision != "fp16" && s.precision != "fp32")
      throw EngineError(ErrorCode::kEngineKind, path + ": unknown precision '" + s.precision + "'");
    s.imgH = m.at("img_size").at(0).get<int>();
    s.imgW = m.at("img_size").at(1).get<int>();
    s.patch = m.at("patch_size").get<int>();
    s.embed = m.at("embed_dim").get<int>();
    s.classes = m.at("num_classes").get<int>();
    s.eps = m.at("ln_eps").get<float>();
    s.patchNorm = m.at("patch_norm").get<bool>();
    s.maxBatch = m.value("max_batch", 128);
    for (int c = 0; c < 3; ++c) {
      s.mean[c] = m.at("preprocess").at("mean").at(c).get<float>();
      s.std[c] = m.at("preprocess").at("std").at(c).get<float>();
    }
    for (const auto& st : m.at("stages").get_ref<const nlohmann::json::array_t&>()) {
      StageSpec g;
      g.dim = st.at("dim").get<int>();
      g.depth = st.at("depth").get<int>();
      g.heads = st.at("heads").get<int>();
      g.H = st.at("resolution").at(0).get<int>();
      g.W = st.at("resolution").at(1).get<int>();
      g.ws = st.at("window").get<int>();
      g.downsample = st.at("downsample").get<bool>();
      g.shifts = st.at("shifts").get<std::vector<int>>();
      if (static_cast<int>(g.shifts.size()) != g.depth) throw std::runtime_error("shifts/depth mismatch");
      s.stages.push_back(g);
    }
  } catch (const EngineError&) {
    throw;
  } catch (const nlohmann::json::exception& e) {  // malformed JSON, missing key, wrong type
    throw EngineError(ErrorCode::kEngineFile, path + ": bad engine metadata: " + e.what());
  } catch (const std::runtime_error& e) {
    throw EngineError(ErrorCode::kEngineFile, path + ": bad engine metadata: " + e.what());
  }
  if (s.stages.empty() || s.imgH % s.patch || s.imgW % s.patch)
    throw EngineError(ErrorCode::kEngineFile, path + ": inconsistent geometry in engine metadata");
  return s;
}

float halfBitsToFloat(uint16_t h) {
  __half_raw r;
  r.x = h;
  return __half2float(__half(r));
}

// Host conversion of a stored tensor to the engine precision.
template <typename T>
std::vector<T> convert(const HostTensor& t, const std::string& name) {
  std::vector<T> out(static_cast<size_t>(t.numel()));
  if (t.dtype == "F32") {
    const float* src = reinterpret_cast<const float*>(t.data);
    for (size_t i = 0; i < out.size(); ++i) {
      if constexpr (std::is_same<T, float>::value) out[i] = src[i];
      else out[i] = __float2half_rn(src[i]);
    }
  } else if (t.dtype == "F16") {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(t.data);
    for (size_t i = 0; i < out.size(); ++i) {
      if constexpr (std::is_same<T, float>::value) out[i] = halfBitsToFloat(src[i]);
      else {
        __half_raw r;
        r.x = src[i];
        out[i] = __half(r);
      }
    }
  } else {
    throw EngineError(ErrorCode::kEngineFile, "tensor " + name + " has dtype " + t.dtype + ", expected F16 or F32");
  }
  return out;
}

template <typename T>
class SwinEngineImpl final : public CudaSwinEngine {
 public:
  SwinEngineImpl(const SafetensorsFile& file, ModelSpec spec, const EngineOptions& opt, const std::string& path)
      : spec_(std::move(spec)), opt_(opt) {
    SWIN_CUDA_CHECK(cudaSetDevice(opt.device_index));
    cudaDeviceProp prop{};
    SWIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device_index));
    info_.kind = "cuda";
    info_.variant = spec_.variant;
    info_.precision = std::is_same<T, float>::value ? "fp32" : "fp16";
    info_.device = std::string(prop.name) + " #" + std::to_string(opt.device_index);
    info_.device_index = opt.device_index;
    info_.max_batch = opt.max_batch > 0 ? opt.max_batch : spec_.maxBatch;
    info_.height = spec_.imgH;
    info_.width = spec_.imgW;
    info_.num_classes = spec_.classes;
    if (info_.max_batch < 1) throw EngineError(ErrorCode::kBatchRange, "max_batch must be >= 1");
    try {
      loadWeights(file, path);
      const int instances = std::max(1, opt.instances);
      for (int i = 0; i < instances; ++i) contexts_.push_back(makeContext());
      for (auto& c : contexts_) idle_.push_back(c.get());
    } catch (...) {
      release();
      throw;
    }
  }
  ~SwinEngineImpl() override { release(); }

  const EngineInfo& info() const override { return info_; }
  size_t deviceBytes() const override { return deviceBytes_; }

  void infer(const uint8_t* images, int n, float* logits) override {
    checkBatch(n);
    Lease lease(*this);
    Context& c = *lease.ctx;
    SWIN_CUDA_CHECK(cudaSetDevice(opt_.device_index));
    SWIN_CUDA_CHECK(cudaMemcpyAsync(c.input, images, inputBytes(n), cudaMemcpyHostToDevice, c.stream));
    forward(c, n);
    SWIN_CUDA_CHECK(
        cudaMemcpyAsync(logits, c.logits, sizeof(float) * n * spec_.classes, cudaMemcpyDeviceToHost, c.stream));
    SWIN_CUDA_CHECK(cudaStreamSynchronize(c.stream));
  }

  void inferDevice(const uint8_t* d_images, int n, float* d_logits, cudaStream_t stream) override {
    checkBatch(n);
    Lease lease(*this);
    Context& c = *lease.ctx;
    SWIN_CUDA_CHECK(cudaSetDevice(opt_.device_index));
    SWIN_CUDA_CHECK(cudaEventRecord(c.evIn, stream));
    SWIN_CUDA_CHECK(cudaStreamWaitEvent(c.stream, c.evIn, 0));
    SWIN_CUDA_CHECK(cudaMemcpyAsync(c.input, d_images, inputBytes(n), cudaMemcpyDeviceToDevice, c.stream));
    forward(c, n);
    SWIN_CUDA_CHECK(
        cudaMemcpyAsync(d_logits, c.logits, sizeof(float) * n * spec_.classes, cudaMemcpyDeviceToDevice, c.stream));
    SWIN_CUDA_CHECK(cudaEventRecord(c.evOut, c.stream));
    SWIN_CUDA_CHECK(cudaStreamWaitEvent(stream, c.evOut, 0));
  }

  void timeForward(int n, int warmup, int iters, float* ms) override {
    checkBatch(n);
    Lease lease(*this);
    Context& c = *lease.ctx;
    SWIN_CUDA_CHECK(cudaSetDevice(opt_.device_index));
    for (int i = 0; i < warmup; ++i) forward(c, n);
    std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(iters));
    for (auto& e : ev) SWIN_CUDA_CHECK(cudaEventCreate(&e));
    for (int i = 0; i < iters; ++i) {
      SWIN_CUDA_CHECK(cudaEventRecord(ev[2 * i], c.stream));
      forward(c, n);
      SWIN_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], c.stream));
    }
    SWIN_CUDA_CHECK(cudaStreamSynchronize(c.stream));
    for (int i = 0; i < iters; ++i) SWIN_CUDA_CHECK(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    for (auto& e : ev) cudaEventDestroy(e);
  }

 private:
  struct BlockW {
    const T *n1w = nullptr, *n1b = nullptr, *qkvw = nullptr, *qkvb = nullptr, *projw = nullptr, *projb = nullptr;
    const T *n2w = nullptr, *n2b = nullptr, *fc1w = nullptr, *fc1b = nullptr, *fc2w = nullptr, *fc2b = nullptr;
    const T* bias = nullptr;            // [heads, N, N]
    const float* logitScale = nullptr;  // [heads], V2
    int shift = 0, hidden = 0;
  };
  struct StageW {
    StageSpec spec;
    int inDim = 0;
    const T *mnw = nullptr, *mnb = nullptr, *mred = nullptr;  // patch merging
    const T* mask = nullptr;                                  // [nW, N, N] shared by the stage's shifted blocks
    std::vector<BlockW> blocks;
  };
  struct Context {
    cudaStream_t stream = nullptr;
    cudaEvent_t evIn = nullptr, evOut = nullptr;
    std::unique_ptr<LtGemm> gemm;
    uint8_t* input = nullptr;
    T *x = nullptr, *y = nullptr, *big = nullptr, *pooled = nullptr, *head = nullptr;
    float* logits = nullptr;
    std::map<int, cudaGraphExec_t> graphs;
  };
  struct Lease {
    explicit Lease(SwinEngineImpl& e) : eng(e) {
      std::unique_lock<std::mutex> lk(e.mu_);
      e.cv_.wait(lk, [&] { return !e.idle_.empty(); });
      ctx = e.idle_.back();
      e.idle_.pop_back();
    }
    ~Lease() {
      {
        std::lock_guard<std::mutex> lk(eng.mu_);
        eng.idle_.push_back(ctx);
      }
      eng.cv_.notify_one();
    }
    SwinEngineImpl& eng;
    Context* ctx = nullptr;
  };

  void checkBatch(int n) const {
    if (n < 1 || n > info_.max_batch)
      throw EngineError(ErrorCode::kBatchRange,
                        "batch " + std::to_string(n) + " outside [1, " + std::to_string(info_.max_batch) + "]");
  }
  size_t inputBytes(int n) const { return static_cast<size_t>(n) * spec_.imgH * spec_.imgW * 3; }

  template <typename U>
  U* alloc(size_t count) {
    void* p = nullptr;
    SWIN_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(U)));
    allocations_.push_back(p);
    deviceBytes_ += count * sizeof(U);
    return static_cast<U*>(p);
  }
  template <typename U>
  U* uploadRaw(const U* host, size_t count) {
    U* d = alloc<U>(count);
    SWIN_CUDA_CHECK(cudaMemcpy(d, host, count * sizeof(U), cudaMemcpyHostToDevice));
    return d;
  }
  const T* up(const SafetensorsFile& f, const std::string& name, std::vector<int64_t> shape) {
    const std::vector<T> v = convert<T>(f.get(name, shape), name);
    return uploadRaw(v.data(), v.size());
  }
  float* upF32(const SafetensorsFile& f, const std::string& name, std::vector<int64_t> shape) {
    const std::vector<float> v = convert<float>(f.get(name, shape), name);
    return uploadRaw(v.data(), v.size());
  }
  int32_t* upI32(const SafetensorsFile& f, const std::string& name, std::vector<int64_t> shape) {
    const HostTensor& t = f.get(name, shape);
    if (t.dtype != "I32") throw EngineError(ErrorCode::kEngineFile, "tensor " + name + " must be I32");
    return uploadRaw(reinterpret_cast<const int32_t*>(t.data), static_cast<size_t>(t.numel()));
  }

  void loadWeights(const SafetensorsFile& f, const std::string& path) {
    (void)path;
    const int C0 = spec_.embed, K0 = spec_.patch * spec_.patch * 3;
    peW_ = up(f, "patch_embed.weight", {C0, K0});
    peB_ = up(f, "patch_embed.bias", {C0});
    if (spec_.patchNorm) {
      peNw_ = up(f, "patch_embed.norm.weight", {C0});
      peNb_ = up(f, "patch_embed.norm.bias", {C0});
    }
    for (int c = 0; c < 3; ++c) {
      scale_[c] = 1.f / (255.f * spec_.std[c]);
      shift_[c] = -spec_.mean[c] / spec_.std[c];
    }
    cudaStream_t s = nullptr;
    SWIN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    std::vector<void*> scratch;
    const bool fold = spec_.variant == "fold";
    int prevDim = C0;
    for (size_t si = 0; si < spec_.stages.size(); ++si) {
      StageW st;
      st.spec = spec_.stages[si];
      st.inDim = prevDim;
      const int C = st.spec.dim, heads = st.spec.heads, ws = st.spec.ws, N = ws * ws;
      const std::string sp = "stages." + std::to_string(si) + ".";
      if (st.spec.downsample) {
        const int normDim = spec_.v2 ? C : 4 * prevDim;
        st.mnw = up(f, sp + "downsample.norm.weight", {normDim});
        st.mnb = up(f, sp + "downsample.norm.bias", {normDim});
        st.mred = up(f, sp + "downsample.reduction.weight", {C, 4 * prevDim});
      } else if (C != prevDim) {
        throw EngineError(ErrorCode::kEngineFile, "stage " + std::to_string(si) + " changes width without merging");
      }
      const int nW = (st.spec.H / ws) * (st.spec.W / ws);
      const bool anyShift = std::any_of(st.spec.shifts.begin(), st.spec.shifts.end(), [](int v) { return v > 0; });
      if (anyShift) {
        if (fold) {
          st.mask = up(f, sp + "attn_mask", {nW, N, N});
        } else {
          T* m = alloc<T>(static_cast<size_t>(nW) * N * N);
          launchShiftMask<T>(m, st.spec.H, st.spec.W, ws,
                             *std::max_element(st.spec.shifts.begin(), st.spec.shifts.end()), s);
          st.mask = m;
        }
      }
      for (int b = 0; b < st.spec.depth; ++b) {
        BlockW w;
        const std::string bp = sp + "blocks." + std::to_string(b) + ".";
        w.shift = st.spec.shifts[b];
        if (w.shift > 0 &&
            std::count_if(st.spec.shifts.begin(), st.spec.shifts.end(), [&](int v) { return v > 0 && v != w.shift; }))
          throw EngineError(ErrorCode::kEngineFile, "one stage with two different shifts");
        const HostTensor& fc1 = f.get(bp + "fc1.weight");
        if (fc1.shape.size() != 2) throw EngineError(ErrorCode::kEngineFile, bp + "fc1.weight must be 2-D");
        w.hidden = static_cast<int>(fc1.shape[0]);
        w.n1w = up(f, bp + "norm1.weight", {C});
        w.n1b = up(f, bp + "norm1.bias", {C});
        w.qkvw = up(f, bp + "qkv.weight", {3 * C, C});
        w.qkvb = up(f, bp + "qkv.bias", {3 * C});
        w.projw = up(f, bp + "proj.weight", {C, C});
        w.projb = up(f, bp + "proj.bias", {C});
        w.n2w = up(f, bp + "norm2.weight", {C});
        w.n2b = up(f, bp + "norm2.bias", {C});
        w.fc1w = up(f, bp + "fc1.weight", {w.hidden, C});
        w.fc1b = up(f, bp + "fc1.bias", {w.hidden});
        w.fc2w = up(f, bp + "fc2.weight", {C, w.hidden});
        w.fc2b = up(f, bp + "fc2.bias", {C});
        const int entries = (2 * ws - 1) * (2 * ws - 1);
        if (fold) {
          w.bias = up(f, bp + "attn_bias", {heads, N, N});
          if (spec_.v2) w.logitScale = upF32(f, bp + "logit_scale", {heads});
        } else {
          T* bias = alloc<T>(static_cast<size_t>(heads) * N * N);
          const int32_t* index = upI32(f, bp + "rp_index", {N * N});
          if (!spec_.v2) {
            const float* table = upF32(f, bp + "rpb_table", {entries, heads});
            launchGatherRelativeBias<T>(table, index, bias, heads, N, s);
          } else {
            const HostTensor& w1 = f.get(bp + "cpb_fc1.weight");
            const int hid = static_cast<int>(w1.shape.at(0));
            const float* coords = upF32(f, bp + "cpb_coords", {entries, 2});
            const float* fw1 = upF32(f, bp + "cpb_fc1.weight", {hid, 2});
            const float* fb1 = upF32(f, bp + "cpb_fc1.bias", {hid});
            const float* fw2 = upF32(f, bp + "cpb_fc2.weight", {heads, hid});
            float* tmp = alloc<float>(static_cast<size_t>(entries) * heads);
            launchCpbBias<T>(coords, fw1, fb1, fw2, index, tmp, bias, entries, hid, heads, N, s);
            const float* raw = upF32(f, bp + "logit_scale_raw", {heads});
            float* ls = alloc<float>(heads);
            launchLogitScale(raw, ls, heads, s);
            w.logitScale = ls;
          }
          w.bias = bias;
        }
        st.blocks.push_back(w);
      }
      stages_.push_back(std::move(st));
      prevDim = C;
    }
    finalDim_ = prevDim;
    nW_ = up(f, "norm.weight", {finalDim_});
    nB_ = up(f, "norm.bias", {finalDim_});
    headW_ = up(f, "head.weight", {spec_.classes, finalDim_});
    headB_ = up(f, "head.bias", {spec_.classes});
    SWIN_CUDA_CHECK(cudaStreamSynchronize(s));
    SWIN_CUDA_CHECK(cudaStreamDestroy(s));
    // (the unfold raw tables stay allocated: a few MB, and freeing them piecemeal is not worth it)
  }

  std::unique_ptr<Context> makeContext() {
    auto c = std::make_unique<Context>();
    SWIN_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    SWIN_CUDA_CHECK(cudaEventCreateWithFlags(&c->evIn, cudaEventDisableTiming));
    SWIN_CUDA_CHECK(cudaEventCreateWithFlags(&c->evOut, cudaEventDisableTiming));
    c->gemm = std::make_unique<LtGemm>();
    deviceBytes_ += 32u << 20;
    const size_t B = static_cast<size_t>(info_.max_batch);
    const size_t L0 = static_cast<size_t>(spec_.imgH / spec_.patch) * (spec_.imgW / spec_.patch);
    // Stage 1 has the most elements (each merge quarters tokens and doubles width).
    size_t act = B * L0 * spec_.embed;
    size_t bigElems = B * L0 * spec_.patch * spec_.patch * 3;
    for (const auto& st : stages_) {
      const size_t rows = B * st.spec.H * st.spec.W;
      act = std::max(act, rows * st.spec.dim);
      if (st.spec.downsample) act = std::max(act, rows * 4 * st.inDim);
      for (const auto& b : st.blocks) bigElems = std::max({bigElems, rows * 3 * st.spec.dim, rows * b.hidden});
    }
    c->input = alloc<uint8_t>(B * spec_.imgH * spec_.imgW * 3);
    c->x = alloc<T>(act);
    c->y = alloc<T>(act);
    c->big = alloc<T>(bigElems);
    c->pooled = alloc<T>(B * finalDim_);
    c->head = alloc<T>(B * spec_.classes);
    c->logits = alloc<float>(B * spec_.classes);
    return c;
  }

  void forward(Context& c, int n) {
    if (!opt_.use_cuda_graphs) {
      enqueue(c, n);
      return;
    }
    auto it = c.graphs.find(n);
    if (it == c.graphs.end()) {
      // One eager pass first: cuBLASLt plans and kernel attributes get created outside the
      // capture, and a failure surfaces with its own message.
      enqueue(c, n);
      SWIN_CUDA_CHECK(cudaStreamSynchronize(c.stream));
      cudaGraph_t graph = nullptr;
      SWIN_CUDA_CHECK(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal));
      try {
        enqueue(c, n);
      } catch (...) {
        cudaStreamEndCapture(c.stream, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      SWIN_CUDA_CHECK(cudaStreamEndCapture(c.stream, &graph));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      SWIN_CUDA_CHECK(e);
      it = c.graphs.emplace(n, exec).first;
      return;  // the eager pass already produced this batch's logits
    }
    SWIN_CUDA_CHECK(cudaGraphLaunch(it->second, c.stream));
  }

  void enqueue(Context& c, int n) {
    cudaStream_t s = c.stream;
    LtGemm& g = *c.gemm;
    const int P = spec_.patch, C0 = spec_.embed;
    int H = spec_.imgH / P, W = spec_.imgW / P;
    int rows = n * H * W;
    const float eps = spec_.eps;
    launchPatchEmbedIm2col<T>(c.input, c.big, n, spec_.imgH, spec_.imgW, P, scale_, shift_, s);
    if (spec_.patchNorm) {
      g.run<T>(c.big, peW_, peB_, c.y, rows, C0, P * P * 3, Epilogue::Bias, false, s);
      launchLayerNorm<T>(c.y, c.x, peNw_, peNb_, rows, C0, eps, false, s);
    } else {
      g.run<T>(c.big, peW_, peB_, c.x, rows, C0, P * P * 3, Epilogue::Bias, false, s);
    }
    for (const StageW& st : stages_) {
      const int C = st.spec.dim, heads = st.spec.heads, ws = st.spec.ws;
      if (st.spec.downsample) {
        const int Cin = st.inDim;
        if (!spec_.v2) {
          launchPatchMergeGather<T>(c.x, c.y, st.mnw, st.mnb, n, H, W, Cin, eps, s);
          H /= 2;
          W /= 2;
          rows = n * H * W;
          g.run<T>(c.y, st.mred, nullptr, c.x, rows, C, 4 * Cin, Epilogue::None, false, s);
        } else {
          launchPatchMergeGather<T>(c.x, c.y, nullptr, nullptr, n, H, W, Cin, eps, s);
          H /= 2;
          W /= 2;
          rows = n * H * W;
          g.run<T>(c.y, st.mred, nullptr, c.x, rows, C, 4 * Cin, Epilogue::None, false, s);
          launchLayerNorm<T>(c.x, c.x, st.mnw, st.mnb, rows, C, eps, false, s);
        }
      }
      if (H != st.spec.H || W != st.spec.W) throw EngineError(ErrorCode::kEngineFile, "stage resolution mismatch");
      const float scale = 1.f / std::sqrt(static_cast<float>(C / heads));
      for (const BlockW& b : st.blocks) {
        const T* mask = b.shift > 0 ? st.mask : nullptr;
        if (!spec_.v2) {
          launchLayerNorm<T>(c.x, c.y, b.n1w, b.n1b, rows, C, eps, false, s);
          g.run<T>(c.y, b.qkvw, b.qkvb, c.big, rows, 3 * C, C, Epilogue::Bias, false, s);
          launchWindowAttention<T>(c.big, c.y, b.bias, mask, nullptr, scale, n, H, W, C, heads, ws, b.shift, s);
          g.run<T>(c.y, b.projw, b.projb, c.x, rows, C, C, Epilogue::Bias, true, s);
          launchLayerNorm<T>(c.x, c.y, b.n2w, b.n2b, rows, C, eps, false, s);
          g.run<T>(c.y, b.fc1w, b.fc1b, c.big, rows, b.hidden, C, Epilogue::BiasGelu, false, s);
          g.run<T>(c.big, b.fc2w, b.fc2b, c.x, rows, C, b.hidden, Epilogue::Bias, true, s);
        } else {
          g.run<T>(c.x, b.qkvw, b.qkvb, c.big, rows, 3 * C, C, Epilogue::Bias, false, s);
          launchWindowAttention<T>(c.big, c.y, b.bias, mask, b.logitScale, 1.f, n, H, W, C, heads, ws, b.shift, s);
          g.run<T>(c.y, b.projw, b.projb, c.big, rows, C, C, Epilogue::Bias, false, s);
          launchLayerNorm<T>(c.big, c.x, b.n1w, b.n1b, rows, C, eps, true, s);
          g.run<T>(c.x, b.fc1w, b.fc1b, c.big, rows, b.hidden, C, Epilogue::BiasGelu, false, s);
          g.run<T>(c.big, b.fc2w, b.fc2b, c.y, rows, C, b.hidden, Epilogue::Bias, false, s);
          launchLayerNorm<T>(c.y, c.x, b.n2w, b.n2b, rows, C, eps, true, s);
        }
      }
    }
    launchFinalNormPool<T>(c.x, c.pooled, nW_, nB_, n, H * W, finalDim_, eps, s);
    if constexpr (std::is_same<T, float>::value) {
      g.run<T>(c.pooled, headW_, headB_, c.logits, n, spec_.classes, finalDim_, Epilogue::Bias, false, s);
    } else {
      g.run<T>(c.pooled, headW_, headB_, c.head, n, spec_.classes, finalDim_, Epilogue::Bias, false, s);
      launchToFloat<T>(c.head, c.logits, static_cast<long long>(n) * spec_.classes, s);
    }
  }

  void release() {
    cudaSetDevice(opt_.device_index);
    for (auto& c : contexts_) {
      if (c->stream) cudaStreamSynchronize(c->stream);
      for (auto& kv : c->graphs) cudaGraphExecDestroy(kv.second);
      c->gemm.reset();
      if (c->evIn) cudaEventDestroy(c->evIn);
      if (c->evOut) cudaEventDestroy(c->evOut);
      if (c->stream) cudaStreamDestroy(c->stream);
    }
    contexts_.clear();
    for (void* p : allocations_) cudaFree(p);
    allocations_.clear();
  }

  ModelSpec spec_;
  EngineOptions opt_;
  EngineInfo info_;
  float scale_[3] = {1, 1, 1}, shift_[3] = {0, 0, 0};
  const T *peW_ = nullptr, *peB_ = nullptr, *peNw_ = nullptr, *peNb_ = nullptr;
  const T *nW_ = nullptr, *nB_ = nullptr, *headW_ = nullptr, *headB_ = nullptr;
  int finalDim_ = 0;
  std::vector<StageW> stages_;
  std::vector<void*> allocations_;
  size_t deviceBytes_ = 0;
  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<Context*> idle_;
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace

std::unique_ptr<CudaSwinEngine> openCudaSwinEngine(const std::string& path, const EngineOptions& options) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    throw EngineError(ErrorCode::kNoDevice, "no CUDA device available");
  if (options.device_index < 0 || options.device_index >= count)
    throw EngineError(ErrorCode::kNoDevice, "CUDA device " + std::to_string(options.device_index) +
                                                " does not exist (" + std::to_string(count) + " present)");
  SafetensorsFile file(path);
  ModelSpec spec = parseSpec(file, path);
  const std::string precision = options.precision.empty() ? spec.precision : options.precision;
  if (precision == "fp32") return std::make_unique<SwinEngineImpl<float>>(file, spec, options, path);
  if (precision == "fp16") return std::make_unique<SwinEngineImpl<__half>>(file, spec, options, path);
  throw EngineError(ErrorCode::kEngineKind, "unknown precision '" + precision + "' (expected fp16 or fp32)");
}

std::unique_ptr<Engine> createCudaSwinEngine(const std::string& path, const EngineOptions& options) {
  return openCudaSwinEngine(path, options);
}

}  // namespace swin
