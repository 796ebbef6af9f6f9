#include "safetensors.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/engine.h"

namespace swin {

namespace {
size_t dtypeSize(const std::string& d) {
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16") return 2;
  if (d == "F64" || d == "I64") return 8;
  if (d == "U8" || d == "I8" || d == "BOOL") return 1;
  return 0;
}
std::string shapeStr(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}
}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw EngineError(ErrorCode::kEngineFile, "cannot open engine file " + path);
  const std::streamsize size = f.tellg();
  if (size < 8) throw EngineError(ErrorCode::kEngineFile, path + ": too short to be a safetensors file");
  bytes_.resize(static_cast<size_t>(size));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(bytes_.data()), size))
    throw EngineError(ErrorCode::kEngineFile, path + ": read failed");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | bytes_[static_cast<size_t>(i)];
  if (headerLen == 0 || headerLen > bytes_.size() - 8)
    throw EngineError(ErrorCode::kEngineFile, path + ": bad safetensors header length " + std::to_string(headerLen));
  const std::string header(reinterpret_cast<const char*>(bytes_.data() + 8), static_cast<size_t>(headerLen));
  const uint8_t* base = bytes_.data() + 8 + headerLen;
  const size_t dataBytes = bytes_.size() - 8 - headerLen;
  try {
    const nlohmann::json root = nlohmann::json::parse(header);
    if (!root.is_object()) throw std::runtime_error("header is not an object");
    for (const auto& kv : root.items()) {
      if (kv.key() == "__metadata__") {
        if (!kv.value().is_object()) throw std::runtime_error("__metadata__ is not an object");
        for (const auto& m : kv.value().items()) metadata_[m.key()] = m.value().get<std::string>();
        continue;
      }
      HostTensor t;
      t.dtype = kv.value().at("dtype").get<std::string>();
      t.shape = kv.value().at("shape").get<std::vector<int64_t>>();
      const auto off = kv.value().at("data_offsets").get<std::vector<int64_t>>();
      if (off.size() != 2 || off[0] < 0 || off[1] < 0)
        throw std::runtime_error("tensor " + kv.key() + " has bad data_offsets");
      const size_t b = static_cast<size_t>(off[0]), e = static_cast<size_t>(off[1]);
      const size_t es = dtypeSize(t.dtype);
      if (es == 0) throw std::runtime_error("tensor " + kv.key() + " has unsupported dtype " + t.dtype);
      if (e < b || e > dataBytes || (e - b) != static_cast<size_t>(t.numel()) * es)
        throw std::runtime_error("tensor " + kv.key() + " has inconsistent offsets");
      t.data = base + b;
      t.nbytes = e - b;
      tensors_[kv.key()] = t;
    }
  } catch (const nlohmann::json::exception& e) {  // malformed JSON, missing key, wrong type
    throw EngineError(ErrorCode::kEngineFile, path + ": corrupt safetensors header: " + e.what());
  } catch (const std::runtime_error& e) {
    throw EngineError(ErrorCode::kEngineFile, path + ": corrupt safetensors header: " + e.what());
  }
}

const HostTensor& SafetensorsFile::get(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw EngineError(ErrorCode::kEngineFile, path_ + ": missing tensor " + name);
  if (!shape.empty() && it->second.shape != shape)
    throw EngineError(ErrorCode::kEngineFile, path_ + ": tensor " + name + " has shape " + shapeStr(it->second.shape) +
                                                  ", expected " + shapeStr(shape));
  return it->second;
}

}  // namespace swin
