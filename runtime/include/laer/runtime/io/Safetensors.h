//===- Safetensors.h - read and write .safetensors files --------*- C++ -*-===//
//
// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping tensor names to {dtype, shape, data_offsets} (plus an
// optional "__metadata__" of strings), then the raw little-endian data.
// Only float32 tensors, which is what the runtime checkpoints.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_IO_SAFETENSORS_H
#define LAER_RUNTIME_IO_SAFETENSORS_H

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace laer::rt {

struct Float32Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};

using TensorMap = std::map<std::string, Float32Tensor>;
using Metadata = std::map<std::string, std::string>;

/// Writes `tensors` (and `metadata`) to `path`; throws RuntimeError on
/// I/O failure or a shape that does not match the data.
void writeSafetensors(const std::string &path, const TensorMap &tensors,
                      const Metadata &metadata);
/// Reads a file written by writeSafetensors (float32 tensors only),
/// through SafetensorsFiles' checks.
TensorMap readSafetensors(const std::string &path, Metadata *metadata);

} // namespace laer::rt

#endif // LAER_RUNTIME_IO_SAFETENSORS_H
