//===- SafetensorsFilesTest.cpp - safetensors by range, element types -----===//

#include "laer/runtime/io/SafetensorsFiles.h"
#include "laer/runtime/io/Safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <unistd.h>

using namespace laer::rt;

namespace {

std::uint16_t encode16(FileDType dtype, float value) {
  unsigned char bytes[2];
  encodeElements(dtype, std::span<const float>(&value, 1), bytes);
  return static_cast<std::uint16_t>(bytes[0] | (bytes[1] << 8));
}

float decode16(FileDType dtype, std::uint16_t bits) {
  unsigned char bytes[2] = {static_cast<unsigned char>(bits),
                            static_cast<unsigned char>(bits >> 8)};
  float value;
  decodeElements(dtype, bytes, std::span<float>(&value, 1));
  return value;
}

// Bit patterns from IEEE 754 binary16 and bfloat16, rounding to nearest
// even (ties: 1 + half an ulp stays 1, 1 + 3 half ulps rounds up).
TEST(SafetensorsFiles, HalfPrecisionRoundsToNearestEven) {
  const FileDType F16 = FileDType::F16;
  EXPECT_EQ(encode16(F16, 1.0f), 0x3C00);
  EXPECT_EQ(encode16(F16, -2.0f), 0xC000);
  EXPECT_EQ(encode16(F16, 65504.0f), 0x7BFF);              // largest finite
  EXPECT_EQ(encode16(F16, 65520.0f), 0x7C00);              // rounds to inf
  EXPECT_EQ(encode16(F16, std::ldexp(1.0f, -24)), 0x0001); // subnormal
  EXPECT_EQ(encode16(F16, std::ldexp(1.0f, -25)), 0x0000); // tie to even
  EXPECT_EQ(encode16(F16, std::ldexp(3.0f, -25)), 0x0002); // tie to even
  EXPECT_EQ(encode16(F16, std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  EXPECT_EQ(encode16(F16, 1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(encode16(F16, 1.0f + std::ldexp(3.0f, -11)), 0x3C02);
  EXPECT_EQ(encode16(F16, -0.0f), 0x8000);
  EXPECT_EQ(encode16(F16, std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(
      decode16(F16, encode16(F16, std::numeric_limits<float>::quiet_NaN()))));
  // Every finite half decodes to a float that encodes back to it.
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    if ((bits & 0x7C00) == 0x7C00)
      continue;
    float value = decode16(F16, static_cast<std::uint16_t>(bits));
    ASSERT_EQ(encode16(F16, value), bits) << value;
  }
  EXPECT_EQ(decode16(F16, 0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(decode16(F16, 0x3555), 0.333251953125f);
}

TEST(SafetensorsFiles, BFloat16RoundsToNearestEven) {
  const FileDType BF16 = FileDType::BF16;
  EXPECT_EQ(encode16(BF16, 1.0f), 0x3F80);
  EXPECT_EQ(encode16(BF16, 1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(encode16(BF16, 1.0f + std::ldexp(3.0f, -8)), 0x3F82);
  EXPECT_EQ(encode16(BF16, -3.0f), 0xC040);
  EXPECT_TRUE(std::isnan(
      decode16(BF16, encode16(BF16, std::numeric_limits<float>::quiet_NaN()))));
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    if ((bits & 0x7F80) == 0x7F80)
      continue;
    ASSERT_EQ(encode16(BF16, decode16(BF16, static_cast<std::uint16_t>(bits))),
              bits);
  }
}

// A plan of several files (each at most 64 bytes of data) and its index,
// written by ranges from two "ranks" (odd and even elements), reads back
// through SafetensorsFiles: whole, strided, and by ranges.
TEST(SafetensorsFiles, ShardedFilesRoundTripByRanges) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() /
                 ("laer-safetensors-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::vector<float> a(12), b(20), c(5);
  for (std::size_t i = 0; i < a.size(); ++i)
    a[i] = 0.5f * i;
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = -1.25f * i;
  for (std::size_t i = 0; i < c.size(); ++i)
    c[i] = 100.0f + i;
  SafetensorsPlan plan(FileDType::F32, 64);
  plan.add("a", {3, 4});
  plan.add("b", {4, 5});
  plan.add("c", {5});
  plan.finish();
  ASSERT_EQ(plan.numFiles(), 3);
  EXPECT_EQ(plan.fileName(1), "model-00002-of-00003.safetensors");
  plan.createFiles(dir.string(), {});
  plan.open(dir.string(), {});
  for (int parity = 0; parity < 2; ++parity) {
    // Element k of a range goes to tensor element begin + k: one range per
    // element for the strided halves.
    for (auto [name, data] :
         {std::pair{"a", &a}, std::pair{"b", &b}, std::pair{"c", &c}}) {
      std::vector<ElementRange> ranges;
      for (std::size_t i = parity; i < data->size(); i += 2)
        ranges.push_back({i, 1, static_cast<std::int64_t>(i), 1});
      plan.write(name, ranges, *data, {});
    }
  }
  SafetensorsFiles files(dir.string(), {});
  ASSERT_EQ(files.tensors().size(), 3u);
  std::vector<float> back(20, 0.0f);
  const auto &tb = files.expect("b", {4, 5});
  files.read(tb, std::vector<ElementRange>{{0, 20, 0, 1}}, back);
  EXPECT_EQ(back, b);
  // Column 2 of b, read as a strided range per row, lands contiguously.
  std::vector<float> column(4);
  std::vector<ElementRange> rows;
  for (int r = 0; r < 4; ++r)
    rows.push_back({static_cast<std::uint64_t>(r * 5 + 2), 1, r, 1});
  files.read(tb, rows, column);
  for (int r = 0; r < 4; ++r)
    EXPECT_EQ(column[r], b[r * 5 + 2]);
  // The transpose of a through a strided target.
  std::vector<float> transposed(12);
  files.read(
      files.expect("a", {3, 4}),
      std::vector<ElementRange>{{0, 4, 0, 3}, {4, 4, 1, 3}, {8, 4, 2, 3}},
      transposed);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(transposed[j * 3 + i], a[i * 4 + j]);
  EXPECT_THROW(files.expect("b", {5, 4}), RuntimeError);
  EXPECT_THROW(files.expect("missing", {1}), RuntimeError);

  // A truncated file is refused when opened, naming it.
  fs::path last = dir / "model-00003-of-00003.safetensors";
  fs::resize_file(last, fs::file_size(last) - 4);
  try {
    SafetensorsFiles broken(dir.string(), {});
    FAIL() << "a truncated file opened";
  } catch (const RuntimeError &error) {
    EXPECT_NE(std::string(error.what()).find("model-00003-of-00003"),
              std::string::npos)
        << error.what();
  }
  fs::remove_all(dir);
}

} // namespace

namespace {

// laer checkpoints carry a CRC-32 per tensor: one flipped data byte is an
// error naming the tensor, the metadata the caller sees has no checksums.
TEST(Safetensors, CheckpointTensorsFailTheirChecksumWhenCorrupt) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() /
                 ("laer-checksum-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string path = (dir / "rank0.safetensors").string();
  TensorMap tensors;
  tensors["a"] = {{2, 3}, {1, 2, 3, 4, 5, 6}};
  tensors["b"] = {{4}, {-1, -2, -3, -4}};
  writeSafetensors(path, tensors, {{"step", "7"}});
  Metadata metadata;
  TensorMap read = readSafetensors(path, &metadata);
  EXPECT_EQ(read["a"].data, tensors["a"].data);
  EXPECT_EQ(metadata.at("step"), "7");
  for (const auto &[key, value] : metadata)
    EXPECT_FALSE(key.starts_with("crc32.")) << key;

  // Flip one bit of the last byte (tensor b's data).
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-1, std::ios::end);
    char last = 0;
    file.get(last);
    file.seekp(-1, std::ios::end);
    file.put(static_cast<char>(last ^ 0x10));
  }
  try {
    readSafetensors(path, nullptr);
    ADD_FAILURE() << "a corrupt tensor loaded";
  } catch (const RuntimeError &error) {
    EXPECT_NE(std::string(error.what()).find("tensor 'b'"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("fails its CRC-32 check"),
              std::string::npos)
        << error.what();
  }
  fs::remove_all(dir);
}

} // namespace
