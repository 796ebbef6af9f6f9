#include "binding/image_batch.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <exception>

#include "build_config.h"
#include "common/errors.h"

#if defined(SWIN_HAVE_NVJPEG) && defined(SWIN_HAVE_CUDA_ENGINE)
#include <cuda_runtime.h>

#include "common/cuda_buffers.h"
#include "common/cuda_check.h"
#include "cuda/swin_engine.h"
#define SWIN_IMAGE_BATCHES 1
#endif

namespace swin {

#ifdef SWIN_IMAGE_BATCHES

namespace {

// Scratch memory one batch's JPEG decoding may take on the GPU (decoded pixels at full size and
// the resize's rows), per engine thread: 64 photographs of 5 Mpx fit (about 15 MiB each); a
// batch of huge images does not get to claim gigabytes (the images past it go to sharp).
constexpr size_t kMaxScratchBytes = size_t{1} << 30;

// Grows a buffer to at least `bytes` (never shrinks): sized by the first batches, then reused.
template <typename Buffer>
void reserve(Buffer& b, size_t bytes) {
  if (b.bytes() >= bytes) return;
  b = Buffer();  // free first
  b = Buffer(std::max<size_t>(bytes, 256));
}

}  // namespace

bool imageBatchesSupported(const Engine& engine, std::string* why) {
  if (dynamic_cast<const CudaSwinEngine*>(&engine) != nullptr) return true;
  if (why) *why = "the " + engine.info().kind + " engine takes no device input (the cuda backend does)";
  return false;
}

struct ImageBatchRunner::State {
  explicit State(int device) : decoder(device, "auto") {
    for (auto& e : events) SWIN_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~State() {
    for (auto& e : events)
      if (e) (void)cudaEventDestroy(e);
  }
  JpegDecoderCore decoder;
  DeviceBuffer input, logits;
  PinnedBuffer pixels, host_logits;
  // Stage boundaries on the stream: start, pixels copied in, decoded, engine done, logits out.
  std::array<cudaEvent_t, 5> events{};
};

namespace {

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

ImageBatchRunner::ImageBatchRunner(int device) : state_(std::make_unique<State>(device)) {}
ImageBatchRunner::~ImageBatchRunner() = default;

void ImageBatchRunner::run(Engine& engine, ImageBatch& b) {
  auto* cuda = dynamic_cast<CudaSwinEngine*>(&engine);
  if (!cuda) throw EngineError(ErrorCode::kBackendUnavailable, "this engine takes no image batches");
  const EngineInfo& ei = engine.info();
  const int n = static_cast<int>(b.data.size());
  if (n < 1 || n > ei.max_batch)
    throw EngineError(ErrorCode::kBatchRange,
                      "batch of " + std::to_string(n) + " images is outside 1.." + std::to_string(ei.max_batch));
  if (b.spec.size != ei.height || b.spec.size != ei.width)
    throw EngineError(ErrorCode::kInvalidArgument, "decode size " + std::to_string(b.spec.size) +
                                                       " is not the engine's input " + std::to_string(ei.height) + "x" +
                                                       std::to_string(ei.width));
  const size_t image_bytes = static_cast<size_t>(ei.height) * ei.width * 3;
  const size_t logit_bytes = sizeof(float) * static_cast<size_t>(n) * ei.num_classes;
  State& st = *state_;
  reserve(st.input, image_bytes * ei.max_batch);
  reserve(st.logits, sizeof(float) * static_cast<size_t>(ei.max_batch) * ei.num_classes);
  reserve(st.host_logits, sizeof(float) * static_cast<size_t>(ei.max_batch) * ei.num_classes);
  auto stream = static_cast<cudaStream_t>(st.decoder.stream());
  uint8_t* input = st.input.get<uint8_t>();
  const auto started = std::chrono::steady_clock::now();
  b.decoded.assign(n, 1);
  b.reasons.assign(n, "");

  DecodeJob job;
  job.spec = b.spec;
  // A batch of large JPEGs must not take the GPU's memory: past this, images go to sharp.
  job.max_scratch_bytes = kMaxScratchBytes;
  std::vector<int> given;  // images that came decoded
  for (int i = 0; i < n; ++i) {
    if (!b.is_jpeg[i]) {
      if (b.lengths[i] != image_bytes)
        throw EngineError(ErrorCode::kInvalidArgument, "image " + std::to_string(i) + " holds " +
                                                           std::to_string(b.lengths[i]) + " bytes; pixels need " +
                                                           std::to_string(image_bytes));
      given.push_back(i);
      continue;
    }
    job.data.push_back(b.data[i]);
    job.lengths.push_back(b.lengths[i]);
    job.slots.push_back(i);
  }
  // Decoded images first (through pinned staging, so the copies are asynchronous), then the
  // JPEGs: both on the decoder's stream, which the engine then waits on.
  SWIN_CUDA_CHECK(cudaEventRecord(st.events[0], stream));
  if (!given.empty()) {
    reserve(st.pixels, image_bytes * given.size());
    for (size_t k = 0; k < given.size(); ++k) {
      uint8_t* staged = st.pixels.get<uint8_t>() + image_bytes * k;
      std::memcpy(staged, b.data[given[k]], image_bytes);
      SWIN_CUDA_CHECK(
          cudaMemcpyAsync(input + image_bytes * given[k], staged, image_bytes, cudaMemcpyHostToDevice, stream));
    }
  }
  SWIN_CUDA_CHECK(cudaEventRecord(st.events[1], stream));
  const auto decode_started = std::chrono::steady_clock::now();
  if (!job.data.empty()) {
    try {
      st.decoder.decodeToDevice(job, input);
    } catch (const std::exception& e) {
      // A decoding failure (out of memory, an nvJPEG fault) is not the engine's: its JPEGs go to
      // sharp and the batch's decoded images still run. The stream is drained of what was queued.
      (void)cudaStreamSynchronize(stream);
      (void)cudaGetLastError();
      job.decoded.assign(job.data.size(), 0);
      job.reasons.assign(job.data.size(), std::string("GPU decoding failed: ") + e.what());
    }
    for (size_t k = 0; k < job.slots.size(); ++k) {
      b.decoded[job.slots[k]] = job.decoded[k];
      b.reasons[job.slots[k]] = job.reasons[k];
    }
  }
  b.stages.host_decode_ms = msSince(decode_started);
  SWIN_CUDA_CHECK(cudaEventRecord(st.events[2], stream));
  cuda->inferDevice(input, n, st.logits.get<float>(), stream);
  SWIN_CUDA_CHECK(cudaEventRecord(st.events[3], stream));
  SWIN_CUDA_CHECK(cudaMemcpyAsync(st.host_logits.get(), st.logits.get(), logit_bytes, cudaMemcpyDeviceToHost, stream));
  SWIN_CUDA_CHECK(cudaEventRecord(st.events[4], stream));
  SWIN_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::memcpy(b.logits, st.host_logits.get(), logit_bytes);
  float* stage[] = {&b.stages.copy_in_ms, &b.stages.decode_ms, &b.stages.engine_ms, &b.stages.copy_out_ms};
  for (int i = 0; i < 4; ++i) SWIN_CUDA_CHECK(cudaEventElapsedTime(stage[i], st.events[i], st.events[i + 1]));
  b.stages.wall_ms = msSince(started);
}

#else  // no nvJPEG or no cuda backend in this build

bool imageBatchesSupported(const Engine&, std::string* why) {
  if (why)
    *why = std::string("this build has no ") +
#ifndef SWIN_HAVE_NVJPEG
           "nvJPEG (" + SWIN_BUILD_NVJPEG_STATUS + ")";
#else
           "cuda backend (" + SWIN_BUILD_CUDA_ENGINE_STATUS + ")";
#endif
  return false;
}

struct ImageBatchRunner::State {};

ImageBatchRunner::ImageBatchRunner(int) {
  throw EngineError(ErrorCode::kBackendUnavailable, "image batches are not in this build");
}
ImageBatchRunner::~ImageBatchRunner() = default;
void ImageBatchRunner::run(Engine&, ImageBatch&) {}

#endif

}  // namespace swin
