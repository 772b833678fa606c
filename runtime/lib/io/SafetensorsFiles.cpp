//===- SafetensorsFiles.cpp - tensors of safetensors files by range -------===//

#include "laer/runtime/io/SafetensorsFiles.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

using namespace laer::rt;
namespace fs = std::filesystem;

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

FileDType laer::rt::parseFileDType(const std::string &text,
                                   const std::string &what) {
  if (text == "F32")
    return FileDType::F32;
  if (text == "BF16")
    return FileDType::BF16;
  if (text == "F16")
    return FileDType::F16;
  fail({}, what, ": element type '", text,
       "' is not one laer reads and writes (F32, BF16, F16)");
}

const char *laer::rt::fileDTypeName(FileDType dtype) {
  switch (dtype) {
  case FileDType::F32:
    return "F32";
  case FileDType::BF16:
    return "BF16";
  case FileDType::F16:
    return "F16";
  }
  return "?";
}

std::int64_t laer::rt::fileDTypeBytes(FileDType dtype) {
  return dtype == FileDType::F32 ? 4 : 2;
}

namespace {

float halfToFloat(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  std::uint32_t bits;
  if (exponent == 0x1f) { // inf, NaN
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) { // normal
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) { // zero
    bits = sign;
  } else { // subnormal: mantissa * 2^-24
    float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t floatToHalf(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) // NaN
    return sign | 0x7e00;
  if (magnitude >= 0x477ff000u) // rounds to >= 65520: inf
    return sign | 0x7c00;
  if (magnitude < 0x38800000u) { // below 2^-14: subnormal or zero
    // The value in units of 2^-24, rounded to nearest even.
    float scaled = std::ldexp(std::bit_cast<float>(magnitude), 24);
    return sign | static_cast<std::uint16_t>(std::nearbyint(scaled));
  }
  // Normal: rebias the exponent, round the 13 dropped bits to nearest even.
  std::uint32_t rebased = magnitude - (112u << 23);
  std::uint32_t rounded = rebased + 0xfff + ((rebased >> 13) & 1);
  return sign | static_cast<std::uint16_t>(rounded >> 13);
}

std::uint16_t floatToBFloat16(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet
    return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<std::uint16_t>(bits >> 16);
}

/// Little-endian 16-bit element i of `bytes`.
std::uint16_t load16(const unsigned char *bytes, std::size_t i) {
  return static_cast<std::uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
}

void store16(unsigned char *bytes, std::size_t i, std::uint16_t value) {
  bytes[2 * i] = static_cast<unsigned char>(value);
  bytes[2 * i + 1] = static_cast<unsigned char>(value >> 8);
}

} // namespace

void laer::rt::decodeElements(FileDType dtype, const unsigned char *bytes,
                              std::span<float> out) {
  static_assert(std::endian::native == std::endian::little);
  switch (dtype) {
  case FileDType::F32:
    std::memcpy(out.data(), bytes, out.size() * sizeof(float));
    return;
  case FileDType::BF16:
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = std::bit_cast<float>(std::uint32_t(load16(bytes, i)) << 16);
    return;
  case FileDType::F16:
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = halfToFloat(load16(bytes, i));
    return;
  }
}

void laer::rt::encodeElements(FileDType dtype, std::span<const float> in,
                              unsigned char *bytes) {
  switch (dtype) {
  case FileDType::F32:
    std::memcpy(bytes, in.data(), in.size() * sizeof(float));
    return;
  case FileDType::BF16:
    for (std::size_t i = 0; i < in.size(); ++i)
      store16(bytes, i, floatToBFloat16(in[i]));
    return;
  case FileDType::F16:
    for (std::size_t i = 0; i < in.size(); ++i)
      store16(bytes, i, floatToHalf(in[i]));
    return;
  }
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

FileHandle &FileHandle::operator=(FileHandle &&other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0)
    ::close(fd_);
}

namespace {

void readAt(int fd, unsigned char *data, std::uint64_t size,
            std::uint64_t offset, const ErrorContext &where,
            const std::string &path) {
  while (size > 0) {
    ssize_t got = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      fail(where, "cannot read ", size, " bytes at offset ", offset, " of '",
           path,
           "': ", got == 0 ? "the file ends there" : std::strerror(errno));
    data += got;
    size -= static_cast<std::uint64_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
}

void writeAt(int fd, const unsigned char *data, std::uint64_t size,
             std::uint64_t offset, const ErrorContext &where,
             const std::string &path) {
  while (size > 0) {
    ssize_t put = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (put < 0 && errno == EINTR)
      continue;
    if (put <= 0)
      fail(where, "cannot write ", size, " bytes at offset ", offset, " of '",
           path, "': ", std::strerror(errno));
    data += put;
    size -= static_cast<std::uint64_t>(put);
    offset += static_cast<std::uint64_t>(put);
  }
}

/// The most bytes one merged read or write moves.
constexpr std::uint64_t kMaxTransfer = 4ull << 20;

/// Groups `ranges` into runs adjacent in the file (at most kMaxTransfer
/// bytes each) and calls `transfer(firstRange, endRange, beginElement,
/// elements)` per run.
template <typename Transfer>
void forEachRun(std::span<const ElementRange> ranges, std::int64_t elementBytes,
                Transfer transfer) {
  std::size_t i = 0;
  while (i < ranges.size()) {
    std::size_t j = i + 1;
    std::uint64_t elements = ranges[i].count;
    while (j < ranges.size() &&
           ranges[j].begin == ranges[j - 1].begin + ranges[j - 1].count &&
           (elements + ranges[j].count) * elementBytes <= kMaxTransfer) {
      elements += ranges[j].count;
      ++j;
    }
    transfer(i, j, ranges[i].begin, elements);
    i = j;
  }
}

/// Moves the elements of ranges [first, last) of one run between `memory`
/// and `values`, the run's elements back to back as in the file (value k is
/// its k-th element): into memory with `ToMemory`, else out of it. False
/// when a range leaves memory (nothing moved then). A run of equal ranges
/// whose starts step evenly (a transposed matrix: file rows that are memory
/// columns) goes in 32 x 32 tiles, so neither side strides through memory
/// element by element.
template <bool ToMemory, typename Memory, typename Values>
bool moveRun(std::span<const ElementRange> ranges, std::size_t first,
             std::size_t last, Memory *memory, std::size_t memorySize,
             Values *values) {
  for (std::size_t r = first; r < last; ++r) {
    const ElementRange &range = ranges[r];
    if (range.count == 0)
      continue;
    std::int64_t end =
        range.first + static_cast<std::int64_t>(range.count - 1) * range.stride;
    if (range.first < 0 || end < 0 ||
        static_cast<std::size_t>(std::max(range.first, end)) >= memorySize)
      return false;
  }
  auto move = [](Memory &m, Values &v) {
    if constexpr (ToMemory)
      m = v;
    else
      v = m;
  };
  const ElementRange &head = ranges[first];
  std::int64_t step =
      last - first > 1 ? ranges[first + 1].first - head.first : 0;
  bool tiled = last - first > 1 && head.stride != 1;
  for (std::size_t r = first + 1; tiled && r < last; ++r)
    tiled = ranges[r].count == head.count && ranges[r].stride == head.stride &&
            ranges[r].first - ranges[r - 1].first == step;
  if (tiled) {
    constexpr std::uint64_t kTile = 32;
    const std::uint64_t rows = last - first, columns = head.count;
    for (std::uint64_t r0 = 0; r0 < rows; r0 += kTile) {
      const std::uint64_t r1 = std::min(r0 + kTile, rows);
      for (std::uint64_t i0 = 0; i0 < columns; i0 += kTile) {
        const std::uint64_t i1 = std::min(i0 + kTile, columns);
        for (std::uint64_t i = i0; i < i1; ++i) {
          Memory *m = memory + head.first +
                      static_cast<std::int64_t>(i) * head.stride +
                      static_cast<std::int64_t>(r0) * step;
          Values *v = values + r0 * columns + i;
          for (std::uint64_t r = r0; r < r1; ++r, m += step, v += columns)
            move(*m, *v);
        }
      }
    }
    return true;
  }
  for (std::size_t r = first; r < last; ++r) {
    Memory *m = memory + ranges[r].first;
    for (std::uint64_t i = 0; i < ranges[r].count; ++i, m += ranges[r].stride)
      move(*m, *values++);
  }
  return true;
}

std::uint64_t littleEndian64(const unsigned char *bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<std::uint64_t>(bytes[i]) << (8 * i);
  return value;
}

} // namespace

SafetensorsFiles::SafetensorsFiles(const std::string &path,
                                   const ErrorContext &where)
    : where_(where) {
  std::error_code error;
  if (!fs::is_directory(path, error)) {
    openFile(path, path);
    return;
  }
  fs::path folder(path);
  fs::path index = folder / "model.safetensors.index.json";
  if (!fs::exists(index, error)) {
    if (!fs::exists(folder / "model.safetensors", error))
      fail(where, "'", path,
           "' holds neither model.safetensors nor "
           "model.safetensors.index.json");
    openFile((folder / "model.safetensors").string(),
             (folder / "model.safetensors").string());
    return;
  }
  std::ifstream in(index);
  nlohmann::json json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded() || !json.is_object() ||
      !json.contains("weight_map") || !json["weight_map"].is_object())
    fail(where, "'", index.string(),
         "' is not a safetensors index (a JSON "
         "object with a \"weight_map\" of tensor names to files)");
  std::map<std::string, std::string> weightMap;
  std::set<std::string> shards;
  for (auto &[name, file] : json["weight_map"].items()) {
    if (!file.is_string() ||
        file.get<std::string>().find('/') != std::string::npos)
      fail(where, "'", index.string(), "' maps '", name, "' to ", file.dump(),
           ", not a file name in its folder");
    weightMap[name] = file.get<std::string>();
    shards.insert(file.get<std::string>());
  }
  for (const std::string &shard : shards)
    openFile((folder / shard).string(), (folder / shard).string());
  for (const auto &[name, file] : weightMap) {
    auto it = tensors_.find(name);
    if (it == tensors_.end() ||
        paths_[it->second.file] != (folder / file).string())
      fail(where, "'", index.string(), "' puts '", name, "' in '", file,
           "', which does not hold it");
  }
}

void SafetensorsFiles::openFile(const std::string &path,
                                const std::string &shown) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(where_, "cannot open '", shown, "': ", std::strerror(errno));
  FileHandle handle(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    fail(where_, "cannot stat '", shown, "': ", std::strerror(errno));
  auto size = static_cast<std::uint64_t>(info.st_size);
  if (size < 8)
    fail(where_, "'", shown, "' is ", size,
         " bytes long: not a safetensors "
         "file (truncated?)");
  unsigned char prefix[8];
  readAt(fd, prefix, 8, 0, where_, shown);
  std::uint64_t length = littleEndian64(prefix);
  if (length > size - 8 || length > (100ull << 20))
    fail(where_, "'", shown, "' claims a ", length, "-byte header but is ",
         size, " bytes long: truncated, or not a safetensors file");
  std::string text(length, '\0');
  readAt(fd, reinterpret_cast<unsigned char *>(text.data()), length, 8, where_,
         shown);
  nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  if (header.is_discarded() || !header.is_object())
    fail(where_, "'", shown, "' has a malformed header");
  int file = static_cast<int>(paths_.size());
  std::uint64_t dataStart = 8 + length;
  for (auto &[name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail(where_, "'", shown, "' has a __metadata__ that is not an object");
      for (auto &[key, value] : entry.items()) {
        if (!value.is_string())
          fail(where_, "'", shown, "' has metadata '", key,
               "' that is not a string");
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string &why) {
      fail(where_, "tensor '", name, "' in '", shown, "': ", why);
    };
    if (!entry.is_object() || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("data_offsets") ||
        !entry["dtype"].is_string() || !entry["shape"].is_array() ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      bad("needs \"dtype\", \"shape\" and two \"data_offsets\"");
    Tensor tensor;
    tensor.file = file;
    std::string dtype = entry["dtype"].get<std::string>();
    std::uint64_t elements = 1;
    for (const nlohmann::json &d : entry["shape"]) {
      if (!d.is_number_unsigned())
        bad("has a dimension " + d.dump());
      auto dim = d.get<std::uint64_t>();
      if (dim > (1ull << 40) ||
          __builtin_mul_overflow(elements, dim, &elements))
        bad("has a shape too large");
      tensor.shape.push_back(static_cast<std::int64_t>(dim));
    }
    for (const nlohmann::json &o : entry["data_offsets"])
      if (!o.is_number_unsigned())
        bad("has a data offset " + o.dump());
    auto begin = entry["data_offsets"][0].get<std::uint64_t>();
    auto end = entry["data_offsets"][1].get<std::uint64_t>();
    if (end < begin || end > size - dataStart)
      bad("its data [" + std::to_string(begin) + ", " + std::to_string(end) +
          ") lies outside the file's " + std::to_string(size - dataStart) +
          " data bytes (truncated?)");
    // Tensors of other element types (integer buffers) are listed but
    // refused when expected.
    if (dtype == "F32" || dtype == "BF16" || dtype == "F16") {
      tensor.dtype = parseFileDType(dtype, "");
      if (end - begin != elements * fileDTypeBytes(tensor.dtype))
        bad("its " + std::to_string(end - begin) + " data bytes do not hold " +
            std::to_string(elements) + " " + dtype + " elements");
    } else {
      tensor.unsupportedType = dtype;
    }
    tensor.offset = dataStart + begin;
    tensor.elements = elements;
    if (!tensors_.emplace(name, std::move(tensor)).second)
      fail(where_, "tensor '", name, "' is in '", shown, "' and in '",
           paths_[tensors_[name].file], "'");
  }
  paths_.push_back(shown);
  files_.push_back(std::move(handle));
}

const SafetensorsFiles::Tensor *
SafetensorsFiles::find(const std::string &name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const SafetensorsFiles::Tensor &
SafetensorsFiles::expect(const std::string &name,
                         const std::vector<std::int64_t> &shape) const {
  auto show = [](const std::vector<std::int64_t> &dims) {
    std::string text = "[";
    for (std::size_t i = 0; i < dims.size(); ++i)
      text += (i ? ", " : "") + std::to_string(dims[i]);
    return text + "]";
  };
  const Tensor *tensor = find(name);
  if (!tensor)
    fail(where_, "the checkpoint has no tensor '", name, "' (", tensors_.size(),
         " tensors in ", paths_.size(), " file", paths_.size() == 1 ? "" : "s",
         ")");
  if (!tensor->unsupportedType.empty())
    fail(where_, "tensor '", name, "' in '", paths_[tensor->file],
         "' has element type ", tensor->unsupportedType,
         "; laer reads F32, BF16 and F16");
  if (tensor->shape != shape)
    fail(where_, "tensor '", name, "' in '", paths_[tensor->file],
         "' has shape ", show(tensor->shape), "; the model expects ",
         show(shape));
  return *tensor;
}

void SafetensorsFiles::read(const Tensor &tensor,
                            std::span<const ElementRange> ranges,
                            std::span<float> memory) const {
  std::int64_t bytes = fileDTypeBytes(tensor.dtype);
  std::vector<unsigned char> staging;
  std::vector<float> values;
  forEachRun(ranges, bytes,
             [&](std::size_t first, std::size_t last, std::uint64_t begin,
                 std::uint64_t count) {
               if (begin + count > tensor.elements)
                 fail(where_, "reading elements [", begin, ", ", begin + count,
                      ") of a tensor of ", tensor.elements);
               values.resize(count);
               std::uint64_t offset = tensor.offset + begin * bytes;
               if (tensor.dtype ==
                   FileDType::F32) { // little-endian floats as is
                 readAt(files_[tensor.file].get(),
                        reinterpret_cast<unsigned char *>(values.data()),
                        count * bytes, offset, where_, paths_[tensor.file]);
               } else {
                 staging.resize(count * bytes);
                 readAt(files_[tensor.file].get(), staging.data(),
                        staging.size(), offset, where_, paths_[tensor.file]);
                 decodeElements(tensor.dtype, staging.data(), values);
               }
               bytesRead_ += count * bytes;
               if (!moveRun<true>(ranges, first, last, memory.data(),
                                  memory.size(), values.data()))
                 fail(where_, "a read range lands outside its memory");
             });
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

void SafetensorsPlan::add(const std::string &name,
                          std::vector<std::int64_t> shape) {
  if (!byName_.emplace(name, tensors_.size()).second)
    fail({}, "two tensors to export are named '", name, "'");
  tensors_.push_back({name, std::move(shape), 0, 0});
}

void SafetensorsPlan::finish(const std::string &singleFile) {
  std::int64_t bytes = fileDTypeBytes(dtype_);
  // Files: consecutive tensors up to maxFileBytes_ of data each.
  std::vector<std::vector<std::size_t>> files(1);
  std::uint64_t filled = 0;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    std::uint64_t size = bytes;
    for (std::int64_t d : tensors_[i].shape)
      size = checkedMultiply(size, d, {}, "tensor " + tensors_[i].name);
    if (filled > 0 && filled + size > maxFileBytes_ && singleFile.empty()) {
      files.emplace_back();
      filled = 0;
    }
    files.back().push_back(i);
    filled += size;
  }
  int count = static_cast<int>(files.size());
  for (int f = 0; f < count; ++f) {
    char name[64];
    if (count == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", f + 1,
                    count);
    nlohmann::ordered_json header;
    nlohmann::ordered_json metadata = {{"format", "pt"}};
    for (const auto &[key, value] : metadata_)
      metadata[key] = value;
    header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (std::size_t i : files[f]) {
      std::uint64_t size = bytes;
      for (std::int64_t d : tensors_[i].shape)
        size *= static_cast<std::uint64_t>(d);
      header[tensors_[i].name] = {{"dtype", fileDTypeName(dtype_)},
                                  {"shape", tensors_[i].shape},
                                  {"data_offsets", {offset, offset + size}}};
      tensors_[i].file = f;
      tensors_[i].offset = offset; // made absolute below
      offset += size;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    for (std::size_t i : files[f])
      tensors_[i].offset += 8 + text.size();
    fileNames_.push_back(singleFile.empty() ? std::string(name) : singleFile);
    headers_.push_back(std::move(text));
    fileBytes_.push_back(8 + headers_.back().size() + offset);
  }
}

const SafetensorsPlan::Tensor &
SafetensorsPlan::tensor(const std::string &name) const {
  auto it = byName_.find(name);
  if (it == byName_.end())
    fail({}, "no tensor '", name, "' to export");
  return tensors_[it->second];
}

void SafetensorsPlan::createFiles(const std::string &directory,
                                  const ErrorContext &where) const {
  std::error_code error;
  fs::create_directories(directory, error);
  if (!fs::is_directory(directory, error))
    fail(where, "cannot create the export folder '", directory, "'");
  for (int f = 0; f < numFiles(); ++f) {
    std::string path = directory + "/" + fileNames_[f];
    FileHandle file(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (file.get() < 0)
      fail(where, "cannot create '", path, "': ", std::strerror(errno));
    unsigned char prefix[8];
    std::uint64_t length = headers_[f].size();
    for (int i = 0; i < 8; ++i)
      prefix[i] = static_cast<unsigned char>(length >> (8 * i));
    writeAt(file.get(), prefix, 8, 0, where, path);
    writeAt(file.get(),
            reinterpret_cast<const unsigned char *>(headers_[f].data()), length,
            8, where, path);
    if (::ftruncate(file.get(), static_cast<off_t>(fileBytes_[f])) != 0)
      fail(where, "cannot size '", path, "' to ", fileBytes_[f],
           " bytes: ", std::strerror(errno));
  }
  if (numFiles() > 1) {
    nlohmann::ordered_json index;
    std::uint64_t total = 0;
    for (int f = 0; f < numFiles(); ++f)
      total += fileBytes_[f] - 8 - headers_[f].size();
    index["metadata"] = {{"total_size", total}};
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const Tensor &t : tensors_)
      map[t.name] = fileNames_[t.file];
    index["weight_map"] = map;
    std::string path = directory + "/model.safetensors.index.json";
    std::ofstream out(path);
    out << index.dump(2) << "\n";
    if (!out.flush())
      fail(where, "cannot write '", path, "'");
  }
}

void SafetensorsPlan::open(const std::string &directory,
                           const ErrorContext &where) {
  openPaths_.clear();
  openFiles_.clear();
  for (const std::string &fileName : fileNames_) {
    std::string path = directory + "/" + fileName;
    FileHandle file(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (file.get() < 0)
      fail(where, "cannot open '", path, "' to write: ", std::strerror(errno));
    openPaths_.push_back(path);
    openFiles_.push_back(std::move(file));
  }
}

void SafetensorsPlan::write(const std::string &name,
                            std::span<const ElementRange> ranges,
                            std::span<const float> memory,
                            const ErrorContext &where) const {
  const Tensor &t = tensor(name);
  if (static_cast<std::size_t>(t.file) >= openFiles_.size())
    fail(where, "writing '", name, "' before the files were opened");
  const std::string &path = openPaths_[t.file];
  std::int64_t bytes = fileDTypeBytes(dtype_);
  std::vector<float> values;
  std::vector<unsigned char> staging;
  forEachRun(ranges, bytes,
             [&](std::size_t first, std::size_t last, std::uint64_t begin,
                 std::uint64_t count) {
               values.resize(count);
               if (!moveRun<false>(ranges, first, last, memory.data(),
                                   memory.size(), values.data()))
                 fail(where, "a write range of '", name,
                      "' reads outside its memory");
               staging.resize(count * bytes);
               encodeElements(dtype_, values, staging.data());
               writeAt(openFiles_[t.file].get(), staging.data(), staging.size(),
                       t.offset + begin * bytes, where, path);
             });
}
