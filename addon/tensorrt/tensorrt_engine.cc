// TensorRT 10 backend (see tensorrt_engine.h for the plan contract).
//
// Per execution context (one per concurrent batch, `instances` of them):
//   a CUDA stream, the TensorRT IExecutionContext, device input/output buffers
//   sized for the largest batch its profiles allow, pinned host staging
//   buffers of the same size, and one CUDA graph per batch size seen.
// One infer(): images -> pinned -> H2D -> enqueueV3 (or graph launch) -> D2H
// -> pinned -> logits, all on the context's stream, then one synchronize.
#include "tensorrt/tensorrt_engine.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "common/cuda_buffers.h"
#include "common/cuda_check.h"
#include "common/engine.h"

#if NV_TENSORRT_MAJOR < 10
#error "the tensorrt backend needs TensorRT 10 or later (name-based IO tensors, enqueueV3)"
#endif

namespace swin {

std::string tensorrtLibraryVersion() {
  const int v = getInferLibVersion();  // major*10000 + minor*100 + patch
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

namespace {

using nvinfer1::ILogger;

// TensorRT reports failures through its logger and returns false/nullptr.
// Errors are kept per thread so the exception for a failing call carries the
// messages that call produced; warnings go to stderr.
thread_local std::string t_trt_errors;

class Logger : public ILogger {
 public:
  Logger() {
    const char* level = std::getenv("SWIN_TRT_LOG");  // error | warning (default) | info | verbose
    if (level && !std::strcmp(level, "error")) threshold_ = Severity::kERROR;
    else if (level && !std::strcmp(level, "info")) threshold_ = Severity::kINFO;
    else if (level && !std::strcmp(level, "verbose")) threshold_ = Severity::kVERBOSE;
  }
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kERROR) {
      if (!t_trt_errors.empty()) t_trt_errors += "; ";
      t_trt_errors += msg;
    }
    if (severity <= threshold_) std::fprintf(stderr, "[swin-addon tensorrt] %s\n", msg);
  }

 private:
  Severity threshold_ = Severity::kWARNING;
};

Logger& logger() {
  static Logger l;  // outlives every runtime; TensorRT keeps a pointer to it
  return l;
}

std::string takeErrors() {
  std::string s;
  s.swap(t_trt_errors);
  return s;
}

bool containsAny(const std::string& haystack, std::initializer_list<const char*> needles) {
  std::string lower(haystack);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* n : needles) {
    if (lower.find(n) != std::string::npos) return true;
  }
  return false;
}

// Throws for a TensorRT call that returned false/nullptr, picking the code from
// what TensorRT logged: allocation failures are ERR_OUT_OF_MEMORY.
[[noreturn]] void throwTrt(ErrorCode code, const std::string& what, const char* expr, const char* file, int line) {
  const std::string log = takeErrors();
  ErrorCode c = code;
  if (containsAny(log, {"out of memory", "failed_allocation", "failed to allocate", "allocation failed"})) {
    c = ErrorCode::kOutOfMemory;
  }
  std::ostringstream os;
  os << "TensorRT: " << what;
  if (!log.empty()) os << ": " << log;
  os << " (in `" << expr << "` at " << file << ":" << line << ")";
  throw EngineError(c, os.str());
}

#define SWIN_TRT_CHECK(expr, code, what)                              \
  do {                                                                \
    if (!(expr)) throwTrt((code), (what), #expr, __FILE__, __LINE__); \
  } while (0)

const char* dataTypeName(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return "float32";
    case nvinfer1::DataType::kHALF: return "float16";
    case nvinfer1::DataType::kINT8: return "int8";
    case nvinfer1::DataType::kINT32: return "int32";
    case nvinfer1::DataType::kBOOL: return "bool";
    case nvinfer1::DataType::kUINT8: return "uint8";
    default: return "another type";
  }
}

std::string dimsString(const nvinfer1::Dims& d) {
  std::string s = "[";
  for (int i = 0; i < d.nbDims; ++i) s += (i ? "," : "") + std::to_string(static_cast<long long>(d.d[i]));
  return s + "]";
}

struct Profile {
  int index = 0;
  int min = 1;  // batch sizes this profile accepts
  int opt = 1;
  int max = 1;
};

class TensorRTEngine : public Engine {
 public:
  TensorRTEngine(const std::string& path, const EngineOptions& options);
  // Members free CUDA objects of this engine's GPU; dispose() may run on any thread.
  ~TensorRTEngine() override { (void)cudaSetDevice(info_.device_index); }
  const EngineInfo& info() const override { return info_; }
  void infer(const uint8_t* images, int n, float* logits) override;

 private:
  struct Context {
    std::unique_ptr<nvinfer1::IExecutionContext> ctx;
    CudaStream stream;
    std::vector<int> profiles;  // indices into profiles_, this context's only
    int max_batch = 0;
    DeviceBuffer input, output;
    PinnedBuffer host_input, host_output;
    int current_profile = -1;
    int current_batch = -1;
    std::map<int, cudaGraphExec_t> graphs;  // by (padded) batch size
    std::set<int> no_graph;                 // batch sizes that could not be captured
    bool busy = false;
    ~Context() {
      for (auto& g : graphs) (void)cudaGraphExecDestroy(g.second);
    }
  };

  void readPlan(const std::string& path, std::vector<char>& blob) const;
  void selectTensors(const EngineOptions& options);
  void readProfiles();
  void createContexts(int instances);
  Context& acquire(int n);
  void release(Context& c);
  void run(Context& c, int batch);

  EngineInfo info_;
  bool use_graphs_ = true;
  std::string input_name_, output_name_;
  bool dynamic_batch_ = true;
  size_t image_bytes_ = 0;
  std::vector<Profile> profiles_;
  // Destruction runs bottom-up: contexts, then the engine, then the runtime.
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::vector<std::unique_ptr<Context>> contexts_;
  std::mutex mu_;
  std::condition_variable free_;
};

TensorRTEngine::TensorRTEngine(const std::string& path, const EngineOptions& options) {
  takeErrors();
  int count = 0;
  SWIN_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (options.device_index < 0 || options.device_index >= count) {
    throw EngineError(ErrorCode::kNoDevice, "GPU #" + std::to_string(options.device_index) + " does not exist (" +
                                                std::to_string(count) + " visible)");
  }
  SWIN_CUDA_CHECK(cudaSetDevice(options.device_index));
  cudaDeviceProp prop{};
  SWIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device_index));

  const int lib = getInferLibVersion();
  if (lib / 10000 != NV_TENSORRT_MAJOR) {
    throw EngineError(ErrorCode::kEngineMismatch,
                      "libnvinfer " + tensorrtLibraryVersion() + " does not match the TensorRT " +
                          std::to_string(NV_TENSORRT_MAJOR) + ".x headers the addon was built with; rebuild the addon");
  }

  std::vector<char> blob;
  readPlan(path, blob);
  runtime_.reset(nvinfer1::createInferRuntime(logger()));
  SWIN_TRT_CHECK(runtime_ != nullptr, ErrorCode::kCuda, "createInferRuntime failed");
  engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
  if (!engine_) {
    const std::string log = takeErrors();
    ErrorCode code = ErrorCode::kEngineFile;
    std::string why = "the file is not a valid TensorRT plan (corrupt or truncated)";
    if (containsAny(log, {"version", "incompatible", "compute capability", "rebuild", "platform", "hardware"})) {
      code = ErrorCode::kEngineMismatch;
      why = "the plan was built for another TensorRT version or GPU (this process: TensorRT " +
            tensorrtLibraryVersion() + ", " + prop.name + ", compute " + std::to_string(prop.major) + "." +
            std::to_string(prop.minor) + "); rebuild it on this host with engines/build_trt_plans.sh";
    } else if (containsAny(log, {"out of memory", "allocat"})) {
      code = ErrorCode::kOutOfMemory;
      why = "out of GPU memory while deserialising the plan";
    }
    throw EngineError(code, "TensorRT plan " + path + ": " + why + (log.empty() ? "" : " [" + log + "]"));
  }

  use_graphs_ = options.use_cuda_graphs;
  info_.kind = "tensorrt";
  info_.variant = "";  // a plan does not know; the TS backend labels it from model.json
  info_.precision = options.precision;
  info_.device = std::string(prop.name) + " #" + std::to_string(options.device_index);
  info_.device_index = options.device_index;
  selectTensors(options);
  readProfiles();

  int largest = 0;
  for (const Profile& p : profiles_) largest = std::max(largest, p.max);
  info_.max_batch = options.max_batch > 0 ? std::min(options.max_batch, largest) : largest;
  int smallest_min = largest;
  for (const Profile& p : profiles_) smallest_min = std::min(smallest_min, p.min);
  if (info_.max_batch < 1 || info_.max_batch < smallest_min) {
    // Every batch would be padded past the cap: nothing can run.
    throw EngineError(ErrorCode::kBatchRange, "maxBatch " + std::to_string(options.max_batch) +
                                                  " is below every optimisation profile of " + path);
  }
  createContexts(options.instances);
}

void TensorRTEngine::readPlan(const std::string& path, std::vector<char>& blob) const {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw EngineError(ErrorCode::kEngineFile, "engine file " + path + ": cannot be opened");
  const std::streamsize size = in.tellg();
  if (size <= 0) throw EngineError(ErrorCode::kEngineFile, "engine file " + path + ": is empty");
  blob.resize(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(blob.data(), size)) throw EngineError(ErrorCode::kEngineFile, "engine file " + path + ": read failed");
}

void TensorRTEngine::selectTensors(const EngineOptions& options) {
  std::vector<std::string> inputs, outputs;
  for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
    const char* name = engine_->getIOTensorName(i);
    (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs : outputs).push_back(name);
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("none") : s;
  };
  auto pick = [&](const std::vector<std::string>& names, const std::string& wanted, const char* role) {
    if (!wanted.empty()) {
      if (std::find(names.begin(), names.end(), wanted) == names.end()) {
        throw EngineError(ErrorCode::kEngineKind, std::string("the plan has no ") + role + " tensor named '" + wanted +
                                                      "' (its " + role + "s: " + list(names) + ")");
      }
    }
    if (names.size() != 1) {
      throw EngineError(ErrorCode::kEngineKind,
                        std::string("the plan must have exactly one ") + role + " (it has: " + list(names) + ")");
    }
    return names[0];
  };
  input_name_ = pick(inputs, options.input_name, "input");
  output_name_ = pick(outputs, options.output_name, "output");

  const nvinfer1::Dims in = engine_->getTensorShape(input_name_.c_str());
  const nvinfer1::DataType in_type = engine_->getTensorDataType(input_name_.c_str());
  if (in_type != nvinfer1::DataType::kUINT8 || in.nbDims != 4 || in.d[3] != 3 || in.d[1] <= 0 || in.d[2] <= 0 ||
      engine_->getTensorFormat(input_name_.c_str()) != nvinfer1::TensorFormat::kLINEAR) {
    throw EngineError(ErrorCode::kEngineKind, "input '" + input_name_ +
                                                  "' must be linear uint8 NHWC [N,H,W,3]; the plan has " +
                                                  dataTypeName(in_type) + " " + dimsString(in));
  }
  const nvinfer1::Dims out = engine_->getTensorShape(output_name_.c_str());
  const nvinfer1::DataType out_type = engine_->getTensorDataType(output_name_.c_str());
  if (out_type != nvinfer1::DataType::kFLOAT || out.nbDims != 2 || out.d[1] <= 0) {
    throw EngineError(ErrorCode::kEngineKind, "output '" + output_name_ +
                                                  "' must be float32 logits [N,C]; the plan has " +
                                                  dataTypeName(out_type) + " " + dimsString(out));
  }
  info_.height = static_cast<int>(in.d[1]);
  info_.width = static_cast<int>(in.d[2]);
  info_.num_classes = static_cast<int>(out.d[1]);
  image_bytes_ = static_cast<size_t>(info_.height) * info_.width * 3;
  dynamic_batch_ = in.d[0] < 0;
  if (!dynamic_batch_)
    profiles_.push_back({0, static_cast<int>(in.d[0]), static_cast<int>(in.d[0]), static_cast<int>(in.d[0])});
}

void TensorRTEngine::readProfiles() {
  if (!dynamic_batch_) return;
  const int count = engine_->getNbOptimizationProfiles();
  for (int p = 0; p < count; ++p) {
    const char* name = input_name_.c_str();
    const auto mn = engine_->getProfileShape(name, p, nvinfer1::OptProfileSelector::kMIN);
    const auto op = engine_->getProfileShape(name, p, nvinfer1::OptProfileSelector::kOPT);
    const auto mx = engine_->getProfileShape(name, p, nvinfer1::OptProfileSelector::kMAX);
    if (mn.nbDims != 4 || mx.nbDims != 4 || mn.d[0] < 1 || mx.d[0] < mn.d[0]) {
      throw EngineError(ErrorCode::kEngineKind, "optimisation profile " + std::to_string(p) + " of input '" +
                                                    input_name_ + "' is not a batch range: min " + dimsString(mn) +
                                                    ", max " + dimsString(mx));
    }
    profiles_.push_back({p, static_cast<int>(mn.d[0]), static_cast<int>(op.d[0]), static_cast<int>(mx.d[0])});
  }
  if (profiles_.empty())
    throw EngineError(ErrorCode::kEngineKind, "the plan has no optimisation profile for its input");
}

void TensorRTEngine::createContexts(int instances) {
  instances = std::max(1, instances);
  // With dynamic shapes TensorRT needs a distinct profile per context in
  // concurrent use; a plan with fewer profiles than instances runs fewer
  // contexts, and the extra worker threads queue for them.
  const int n = dynamic_batch_ ? std::min<int>(instances, static_cast<int>(profiles_.size())) : instances;
  if (n < instances) {
    std::fprintf(stderr,
                 "[swin-addon tensorrt] the plan has %zu optimisation profile(s): running %d concurrent context(s) "
                 "instead of %d (engines/build_trt_plans.sh builds one profile per instance)\n",
                 profiles_.size(), n, instances);
  }
  for (int k = 0; k < n; ++k) {
    auto c = std::make_unique<Context>();
    for (size_t p = 0; p < profiles_.size(); ++p) {
      if (!dynamic_batch_ || static_cast<int>(p) % n == k) c->profiles.push_back(static_cast<int>(p));
    }
    for (int p : c->profiles) c->max_batch = std::max(c->max_batch, profiles_[p].max);
    c->ctx.reset(engine_->createExecutionContext());
    SWIN_TRT_CHECK(c->ctx != nullptr, ErrorCode::kCuda, "createExecutionContext failed");
    c->input = DeviceBuffer(image_bytes_ * c->max_batch);
    c->output = DeviceBuffer(sizeof(float) * info_.num_classes * c->max_batch);
    c->host_input = PinnedBuffer(image_bytes_ * c->max_batch);
    c->host_output = PinnedBuffer(sizeof(float) * info_.num_classes * c->max_batch);
    SWIN_TRT_CHECK(c->ctx->setTensorAddress(input_name_.c_str(), c->input.get()), ErrorCode::kCuda,
                   "setTensorAddress(input) failed");
    SWIN_TRT_CHECK(c->ctx->setTensorAddress(output_name_.c_str(), c->output.get()), ErrorCode::kCuda,
                   "setTensorAddress(output) failed");
    contexts_.push_back(std::move(c));
  }
}

// Blocks until a context whose profiles take `n` images is free.
TensorRTEngine::Context& TensorRTEngine::acquire(int n) {
  std::unique_lock<std::mutex> lock(mu_);
  bool any = false;
  for (;;) {
    for (auto& c : contexts_) {
      if (c->max_batch < n) continue;
      any = true;
      if (!c->busy) {
        c->busy = true;
        return *c;
      }
    }
    if (!any) {
      std::string ranges;
      for (const Profile& p : profiles_)
        ranges += (ranges.empty() ? "" : ", ") + std::to_string(p.min) + ".." + std::to_string(p.max);
      throw EngineError(ErrorCode::kBatchRange,
                        "batch of " + std::to_string(n) + " images fits no optimisation profile (" + ranges + ")");
    }
    free_.wait(lock);
  }
}

void TensorRTEngine::release(Context& c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    c.busy = false;
  }
  free_.notify_all();
}

// Enqueues the network for `batch` images on c.stream: a CUDA graph where one
// was captured for this size, else enqueueV3 (capturing a graph for next time).
void TensorRTEngine::run(Context& c, int batch) {
  auto graph = c.graphs.find(batch);
  if (graph != c.graphs.end()) {
    SWIN_CUDA_CHECK(cudaGraphLaunch(graph->second, c.stream.get()));
    return;
  }
  // The first enqueue after a shape change also does TensorRT's deferred
  // work, which must not be captured; it computes this call's output.
  SWIN_TRT_CHECK(c.ctx->enqueueV3(c.stream.get()), ErrorCode::kCuda, "enqueueV3 failed");
  if (!use_graphs_ || c.no_graph.count(batch)) return;

  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  bool ok = cudaStreamBeginCapture(c.stream.get(), cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (ok) {
    const bool enqueued = c.ctx->enqueueV3(c.stream.get());
    ok = cudaStreamEndCapture(c.stream.get(), &g) == cudaSuccess && enqueued && g != nullptr;
  }
  if (ok) ok = cudaGraphInstantiate(&exec, g, 0) == cudaSuccess;
  if (g) (void)cudaGraphDestroy(g);
  if (ok) {
    c.graphs[batch] = exec;
  } else {
    // Some plans cannot be captured; they keep running through enqueueV3.
    (void)cudaGetLastError();
    takeErrors();
    c.no_graph.insert(batch);
  }
}

void TensorRTEngine::infer(const uint8_t* images, int n, float* logits) {
  if (n < 1 || n > info_.max_batch) {
    throw EngineError(ErrorCode::kBatchRange,
                      "batch of " + std::to_string(n) + " images is outside 1.." + std::to_string(info_.max_batch));
  }
  takeErrors();
  SWIN_CUDA_CHECK(cudaSetDevice(info_.device_index));
  Context& c = acquire(n);
  struct Lease {
    TensorRTEngine* self;
    Context& c;
    ~Lease() { self->release(c); }
  } lease{this, c};

  // The tightest profile of this context that takes n; batches below its
  // minimum are padded with zero images whose logits are dropped.
  const Profile* best = nullptr;
  for (int p : c.profiles) {
    const Profile& pr = profiles_[p];
    if (pr.max >= n && (!best || pr.max < best->max)) best = &pr;
  }
  const int batch = std::max(n, best->min);
  cudaStream_t stream = c.stream.get();

  if (dynamic_batch_ && c.current_profile != best->index) {
    SWIN_TRT_CHECK(c.ctx->setOptimizationProfileAsync(best->index, stream), ErrorCode::kCuda,
                   "setOptimizationProfileAsync(" + std::to_string(best->index) + ") failed");
    c.current_profile = best->index;
    c.current_batch = -1;
  }
  if (dynamic_batch_ && c.current_batch != batch) {
    nvinfer1::Dims shape{};
    shape.nbDims = 4;
    shape.d[0] = batch;
    shape.d[1] = info_.height;
    shape.d[2] = info_.width;
    shape.d[3] = 3;
    SWIN_TRT_CHECK(c.ctx->setInputShape(input_name_.c_str(), shape), ErrorCode::kBatchRange,
                   "setInputShape(" + dimsString(shape) + ") failed");
    c.current_batch = batch;
  }

  const size_t in_bytes = image_bytes_ * n;
  std::memcpy(c.host_input.get(), images, in_bytes);
  if (batch > n) std::memset(c.host_input.get<uint8_t>() + in_bytes, 0, image_bytes_ * (batch - n));
  SWIN_CUDA_CHECK(
      cudaMemcpyAsync(c.input.get(), c.host_input.get(), image_bytes_ * batch, cudaMemcpyHostToDevice, stream));
  run(c, batch);
  const size_t out_bytes = sizeof(float) * info_.num_classes * n;
  SWIN_CUDA_CHECK(cudaMemcpyAsync(c.host_output.get(), c.output.get(), out_bytes, cudaMemcpyDeviceToHost, stream));
  SWIN_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::memcpy(logits, c.host_output.get(), out_bytes);
}

}  // namespace

std::unique_ptr<Engine> createTensorRTEngine(const std::string& path, const EngineOptions& options) {
  return std::make_unique<TensorRTEngine>(path, options);
}

}  // namespace swin
