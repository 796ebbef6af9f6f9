// Reader of the engine file's container: safetensors (8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the
// raw little-endian tensor bytes). The whole file is read into host memory once.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace swin {

struct HostTensor {
  std::string dtype;  // "F16" | "F32" | "I32" | ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into SafetensorsFile::bytes_
  size_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

class SafetensorsFile {
 public:
  // Throws EngineError(ErrorCode::kEngineFile) when missing, unreadable, truncated or corrupt.
  explicit SafetensorsFile(const std::string& path);
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws ERR_ENGINE_FILE when absent or (if given) of another shape.
  const HostTensor& get(const std::string& name, const std::vector<int64_t>& shape = {}) const;

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, HostTensor> tensors_;
};

}  // namespace swin
