//===- SafetensorsFiles.h - tensors of safetensors files by range -*- C++
//-*-===//
//
// Model checkpoints as Hugging Face and PyTorch keep them: one
// `.safetensors` file, or a folder holding `model.safetensors` or shards
// listed by `model.safetensors.index.json` ({"weight_map": {name: file}}).
// Opening reads only the headers; tensors are read, and written, by element
// ranges, so a rank touches only the bytes it owns. Elements are F32, BF16
// or F16 in the files and float in memory.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_IO_SAFETENSORSFILES_H
#define LAER_RUNTIME_IO_SAFETENSORSFILES_H

#include "laer/runtime/Error.h"

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace laer::rt {

enum class FileDType { F32, BF16, F16 };

/// "F32", "BF16", "F16" (safetensors' spelling); fails naming `what`.
FileDType parseFileDType(const std::string &text, const std::string &what);
const char *fileDTypeName(FileDType dtype);
std::int64_t fileDTypeBytes(FileDType dtype);

/// Converts between float and a file's element type (round to nearest
/// even when narrowing; NaN stays NaN).
void decodeElements(FileDType dtype, const unsigned char *bytes,
                    std::span<float> out);
void encodeElements(FileDType dtype, std::span<const float> in,
                    unsigned char *bytes);

/// An element range of a tensor, and where its elements live in memory:
/// element k of the range is `memory[first + k * stride]`.
struct ElementRange {
  std::uint64_t begin = 0, count = 0; // in the tensor, row-major
  std::int64_t first = 0, stride = 1; // in memory
};

/// An open file descriptor, closed on destruction.
class FileHandle {
public:
  FileHandle() = default;
  explicit FileHandle(int fd) : fd_(fd) {}
  FileHandle(FileHandle &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileHandle &operator=(FileHandle &&other) noexcept;
  FileHandle(const FileHandle &) = delete;
  FileHandle &operator=(const FileHandle &) = delete;
  ~FileHandle();
  int get() const { return fd_; }

private:
  int fd_ = -1;
};

class SafetensorsFiles {
public:
  struct Tensor {
    int file = 0;
    FileDType dtype = FileDType::F32;
    std::vector<std::int64_t> shape;
    std::uint64_t offset = 0; // of element 0 in the file
    std::uint64_t elements = 0;
    /// An element type laer does not read (e.g. an integer buffer), or "".
    std::string unsupportedType;
  };

  /// Opens `path` (a file or a folder, see above) and reads every header;
  /// fails naming the file and the fault for a truncated file, a malformed
  /// header or index, an unknown element type, or data offsets that do not
  /// match the shape or lie outside the file.
  SafetensorsFiles(const std::string &path, const ErrorContext &where);

  /// The tensor `name`, or null.
  const Tensor *find(const std::string &name) const;
  /// The tensor `name` with exactly `shape`; fails naming both otherwise.
  const Tensor &expect(const std::string &name,
                       const std::vector<std::int64_t> &shape) const;
  const std::string &fileName(int file) const { return paths_[file]; }
  const std::map<std::string, Tensor> &tensors() const { return tensors_; }
  /// The files' `__metadata__` (string values), merged.
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }

  /// Reads `ranges` of `tensor` into `memory` (ranges adjacent in the file
  /// are read by one call).
  void read(const Tensor &tensor, std::span<const ElementRange> ranges,
            std::span<float> memory) const;
  /// Bytes of tensor data read so far.
  std::uint64_t bytesRead() const { return bytesRead_; }

private:
  void openFile(const std::string &path, const std::string &shown);

  ErrorContext where_;
  std::vector<std::string> paths_;
  std::vector<FileHandle> files_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  mutable std::uint64_t bytesRead_ = 0;
};

/// The layout of a checkpoint to write: tensors (name, type, shape) in
/// order, cut into files of at most `maxFileBytes` (a tensor never split).
/// Every rank computes the same plan, creates nothing and writes its own
/// ranges; rank 0 creates the files first (createFiles).
class SafetensorsPlan {
public:
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> shape;
    int file = 0;
    std::uint64_t offset = 0; // of element 0 in the file
  };

  SafetensorsPlan(FileDType dtype, std::uint64_t maxFileBytes)
      : dtype_(dtype), maxFileBytes_(maxFileBytes) {}
  void add(const std::string &name, std::vector<std::int64_t> shape);
  /// String metadata of every file, beside (or replacing) `format: pt`.
  void setMetadata(std::map<std::string, std::string> metadata) {
    metadata_ = std::move(metadata);
  }
  /// Lays the tensors out in files named `model.safetensors`, or
  /// `model-0000i-of-0000n.safetensors` when more than one; with
  /// `singleFile`, in one file of that name whatever its size.
  void finish(const std::string &singleFile = "");

  const Tensor &tensor(const std::string &name) const;
  int numFiles() const { return static_cast<int>(fileNames_.size()); }
  const std::string &fileName(int file) const { return fileNames_[file]; }

  /// Creates the files in `directory` (their headers written, their data
  /// sized) and, for more than one, `model.safetensors.index.json`.
  void createFiles(const std::string &directory,
                   const ErrorContext &where) const;
  /// Opens the files createFiles made in `directory` (on any rank) for
  /// write.
  void open(const std::string &directory, const ErrorContext &where);
  /// Writes `ranges` of tensor `name` from `memory` into the opened files.
  void write(const std::string &name, std::span<const ElementRange> ranges,
             std::span<const float> memory, const ErrorContext &where) const;

private:
  FileDType dtype_;
  std::uint64_t maxFileBytes_;
  std::map<std::string, std::string> metadata_;
  std::vector<Tensor> tensors_;
  std::map<std::string, std::size_t> byName_;
  std::vector<std::string> fileNames_, headers_;
  std::vector<std::uint64_t> fileBytes_;
  std::vector<std::string> openPaths_;
  std::vector<FileHandle> openFiles_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_IO_SAFETENSORSFILES_H
