#include "safetensors.h"

#include <cstring>
#include <fstream>

#include "../src/engine.h"
#include "json.h"

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
  if (!f) throw EngineError("ERR_ENGINE_FILE", "cannot open engine file " + path);
  const std::streamsize size = f.tellg();
  if (size < 8) throw EngineError("ERR_ENGINE_FILE", path + ": too short to be a safetensors file");
  bytes_.resize(static_cast<size_t>(size));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(bytes_.data()), size))
    throw EngineError("ERR_ENGINE_FILE", path + ": read failed");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | bytes_[static_cast<size_t>(i)];
  if (headerLen == 0 || headerLen > bytes_.size() - 8)
    throw EngineError("ERR_ENGINE_FILE", path + ": bad safetensors header length " + std::to_string(headerLen));
  const std::string header(reinterpret_cast<const char*>(bytes_.data() + 8), static_cast<size_t>(headerLen));
  const uint8_t* base = bytes_.data() + 8 + headerLen;
  const size_t dataBytes = bytes_.size() - 8 - headerLen;
  try {
    const json::Value root = json::parse(header);
    if (root.kind != json::Value::Object) throw std::runtime_error("header is not an object");
    for (const auto& kv : root.obj) {
      if (kv.first == "__metadata__") {
        for (const auto& m : kv.second.obj) metadata_[m.first] = m.second.string();
        continue;
      }
      HostTensor t;
      t.dtype = kv.second.at("dtype").string();
      for (const auto& d : kv.second.at("shape").arr) t.shape.push_back(static_cast<int64_t>(d.number()));
      const auto& off = kv.second.at("data_offsets");
      const size_t b = static_cast<size_t>(off.at(0).number()), e = static_cast<size_t>(off.at(1).number());
      const size_t es = dtypeSize(t.dtype);
      if (es == 0) throw std::runtime_error("tensor " + kv.first + " has unsupported dtype " + t.dtype);
      if (e < b || e > dataBytes || (e - b) != static_cast<size_t>(t.numel()) * es)
        throw std::runtime_error("tensor " + kv.first + " has inconsistent offsets");
      t.data = base + b;
      t.nbytes = e - b;
      tensors_[kv.first] = t;
    }
  } catch (const std::runtime_error& e) {
    throw EngineError("ERR_ENGINE_FILE", path + ": corrupt safetensors header: " + e.what());
  }
}

const HostTensor& SafetensorsFile::get(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw EngineError("ERR_ENGINE_FILE", path_ + ": missing tensor " + name);
  if (!shape.empty() && it->second.shape != shape)
    throw EngineError("ERR_ENGINE_FILE", path_ + ": tensor " + name + " has shape " + shapeStr(it->second.shape) +
                                             ", expected " + shapeStr(shape));
  return it->second;
}

}  // namespace swin
