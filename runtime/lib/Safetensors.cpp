//===- Safetensors.cpp - read and write .safetensors files ----------------===//

#include "laer/runtime/Safetensors.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/SafetensorsFiles.h"

#include <filesystem>
#include <numeric>

using namespace laer::rt;

void laer::rt::writeSafetensors(const std::string &path,
                                const TensorMap &tensors,
                                const Metadata &metadata) {
  SafetensorsPlan plan(FileDType::F32, ~std::uint64_t{0});
  for (const auto &[name, tensor] : tensors) {
    std::int64_t elements =
        std::accumulate(tensor.shape.begin(), tensor.shape.end(),
                        std::int64_t{1}, std::multiplies<>());
    if (elements != static_cast<std::int64_t>(tensor.data.size()))
      fail({}, "safetensors: tensor '", name, "' has ", tensor.data.size(),
           " elements but its shape holds ", elements);
    plan.add(name, tensor.shape);
  }
  plan.setMetadata(metadata);
  std::filesystem::path file(path);
  std::string directory =
      file.has_parent_path() ? file.parent_path().string() : ".";
  plan.finish(file.filename().string());
  plan.createFiles(directory, {});
  plan.open(directory, {});
  for (const auto &[name, tensor] : tensors) {
    std::int64_t size = static_cast<std::int64_t>(tensor.data.size());
    ElementRange whole{0, static_cast<std::uint64_t>(size), 0, 1};
    plan.write(name, std::span<const ElementRange>(&whole, 1), tensor.data, {});
  }
}

TensorMap laer::rt::readSafetensors(const std::string &path,
                                    Metadata *metadata) {
  SafetensorsFiles file(path, {});
  TensorMap tensors;
  for (const auto &[name, entry] : file.tensors()) {
    if (entry.dtype != FileDType::F32 || !entry.unsupportedType.empty())
      fail({}, "safetensors: tensor '", name, "' in '", path, "' is not F32");
    Float32Tensor tensor;
    tensor.shape = entry.shape;
    tensor.data.resize(entry.elements);
    file.read(entry, std::vector<ElementRange>{{0, entry.elements, 0, 1}},
              tensor.data);
    tensors.emplace(name, std::move(tensor));
  }
  if (metadata)
    *metadata = file.metadata();
  return tensors;
}
