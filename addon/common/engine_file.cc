#include "common/engine_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

namespace swin {

namespace {

bool endsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

[[noreturn]] void fileError(const std::string& path, const std::string& why) {
  throw EngineError(ErrorCode::kEngineFile, "engine file " + path + ": " + why);
}

}  // namespace

const char* formatName(FileFormat f) {
  switch (f) {
    case FileFormat::kTensorRTPlan: return "a TensorRT plan";
    case FileFormat::kSafetensors: return "a safetensors container (CUDA engine file format)";
    case FileFormat::kOnnx: return "an ONNX model";
    default: return "of unknown format";
  }
}

FileFormat sniffEngineFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fileError(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fileError(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) fileError(path, "is empty");
  std::ifstream in(path, std::ios::binary);
  if (!in) fileError(path, std::strerror(errno));
  unsigned char head[16] = {0};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const size_t got = static_cast<size_t>(in.gcount());

  if (got >= 4 && std::memcmp(head, "ftrt", 4) == 0) return FileFormat::kTensorRTPlan;
  if (got >= 9 && head[8] == '{') {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | head[i];
    if (header_len < 2 || header_len > size - 8 || header_len > (uint64_t{1} << 30)) {
      fileError(path, "corrupt safetensors header (length " + std::to_string(header_len) + " in a file of " +
                          std::to_string(size) + " bytes)");
    }
    // The JSON header ends with '}' possibly followed by space padding.
    std::vector<char> tail(static_cast<size_t>(std::min<uint64_t>(header_len, 64)));
    in.clear();
    in.seekg(static_cast<std::streamoff>(8 + header_len - tail.size()));
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    if (static_cast<size_t>(in.gcount()) != tail.size()) fileError(path, "truncated safetensors header");
    size_t i = tail.size();
    while (i > 0 && tail[i - 1] == ' ') --i;
    if (i == 0 || tail[i - 1] != '}') fileError(path, "corrupt safetensors header (not a JSON object)");
    return FileFormat::kSafetensors;
  }
  // ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
  if (endsWith(path, ".onnx") || (got >= 1 && head[0] == 0x08 && size > 64 && endsWith(path, ".pb"))) {
    return FileFormat::kOnnx;
  }
  return FileFormat::kUnknown;
}

bool tensorrtBuilt() {
#ifdef SWIN_HAVE_TENSORRT
  return true;
#else
  return false;
#endif
}

bool cudaEngineBuilt() {
#ifdef SWIN_HAVE_CUDA_ENGINE
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Engine> openEngine(const std::string& kind, const std::string& path, const EngineOptions& options) {
  if (kind != "tensorrt" && kind != "cuda") {
    throw EngineError(ErrorCode::kEngineKind, "unknown engine kind '" + kind + "' (expected tensorrt or cuda)");
  }
  const FileFormat format = sniffEngineFile(path);
  if (kind == "tensorrt") {
    if (format == FileFormat::kSafetensors || format == FileFormat::kOnnx) {
      throw EngineError(ErrorCode::kEngineKind,
                        path + " is " + formatName(format) + ", not a TensorRT plan" +
                            (format == FileFormat::kOnnx ? " (build plans with engines/build_trt_plans.sh)" : ""));
    }
#ifdef SWIN_HAVE_TENSORRT
    return createTensorRTEngine(path, options);
#else
    (void)options;
    throw EngineError(ErrorCode::kBackendUnavailable,
                      "the tensorrt backend is not in this build of the addon (TensorRT >= 10 was not found when it "
                      "was built; see docs/tensorrt.md)");
#endif
  }
  // kind == "cuda"
  if (format == FileFormat::kTensorRTPlan || format == FileFormat::kOnnx) {
    throw EngineError(ErrorCode::kEngineKind, path + " is " + formatName(format) + ", not a CUDA engine file");
  }
  if (format != FileFormat::kSafetensors) {
    throw EngineError(ErrorCode::kEngineFile, "engine file " + path +
                                                  ": not a CUDA engine file (a safetensors container "
                                                  "with JSON metadata was expected)");
  }
#ifdef SWIN_HAVE_CUDA_ENGINE
  return createCudaSwinEngine(path, options);
#else
  throw EngineError(ErrorCode::kBackendUnavailable,
                    "the cuda backend is not in this build of the addon (it needs the CUDA toolkit with nvcc and "
                    "cuBLASLt at build time; see docs/addon.md)");
#endif
}

}  // namespace swin
