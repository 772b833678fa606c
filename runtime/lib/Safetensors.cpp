//===- Safetensors.cpp - read and write .safetensors files ----------------===//

#include "laer/runtime/Safetensors.h"
#include "laer/runtime/Error.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <numeric>

using namespace laer::rt;

void laer::rt::writeSafetensors(const std::string &path,
                                const TensorMap &tensors,
                                const Metadata &metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto &[name, tensor] : tensors) {
    std::int64_t elements =
        std::accumulate(tensor.shape.begin(), tensor.shape.end(),
                        std::int64_t{1}, std::multiplies<>());
    if (elements != static_cast<std::int64_t>(tensor.data.size()))
      fail({}, "safetensors: tensor '", name, "' has ", tensor.data.size(),
           " elements but its shape holds ", elements);
    std::uint64_t bytes = tensor.data.size() * sizeof(float);
    header[name] = {{"dtype", "F32"},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  std::uint64_t length = text.size();
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<unsigned char>(length >> (8 * i));
  out.write(reinterpret_cast<const char *>(prefix), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto &[name, tensor] : tensors)
    out.write(reinterpret_cast<const char *>(tensor.data.data()),
              static_cast<std::streamsize>(tensor.data.size() * sizeof(float)));
  if (!out.flush())
    fail({}, "safetensors: cannot write '", path, "'");
}

TensorMap laer::rt::readSafetensors(const std::string &path,
                                    Metadata *metadata) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail({}, "safetensors: cannot open '", path, "'");
  unsigned char prefix[8];
  if (!in.read(reinterpret_cast<char *>(prefix), 8))
    fail({}, "safetensors: '", path, "' is shorter than its header length");
  std::uint64_t length = 0;
  for (int i = 0; i < 8; ++i)
    length |= static_cast<std::uint64_t>(prefix[i]) << (8 * i);
  if (length > (1ull << 30))
    fail({}, "safetensors: '", path, "' claims a ", length,
         "-byte header; not a safetensors file?");
  std::string text(length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length)))
    fail({}, "safetensors: '", path, "' ends inside its header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &error) {
    fail({}, "safetensors: '", path, "' has a malformed header: ",
         error.what());
  }
  std::vector<char> data((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  TensorMap tensors;
  for (auto &[name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata)
        *metadata = entry.get<Metadata>();
      continue;
    }
    if (entry.value("dtype", "") != "F32")
      fail({}, "safetensors: tensor '", name, "' in '", path,
           "' is not F32");
    auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
    Float32Tensor tensor;
    tensor.shape = entry.at("shape").get<std::vector<std::int64_t>>();
    if (offsets.size() != 2 || offsets[1] < offsets[0] ||
        offsets[1] > data.size() || (offsets[1] - offsets[0]) % 4)
      fail({}, "safetensors: tensor '", name, "' in '", path,
           "' has bad data offsets");
    tensor.data.resize((offsets[1] - offsets[0]) / sizeof(float));
    std::memcpy(tensor.data.data(), data.data() + offsets[0],
                offsets[1] - offsets[0]);
    tensors.emplace(name, std::move(tensor));
  }
  return tensors;
}
