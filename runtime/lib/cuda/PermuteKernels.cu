//===- PermuteKernels.cu - dispatch permutation, gather and combine ------===//

#include "Precision.cuh"

#include "laer/runtime/Error.h"

#include <cub/block/block_reduce.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>

namespace laer::rt::cuda {
using namespace detail;

namespace {

__global__ void iotaKernel(std::int32_t *out, std::int64_t n) {
  for (std::int64_t i =
           blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<std::int32_t>(i);
}

/// Rows per bucket; keys outside [0, buckets) are counted in counts[buckets]
/// so the host can report them instead of reading out of bounds.
__global__ void histogramKernel(const std::int32_t *keys, std::int64_t n,
                                int buckets, unsigned long long *counts) {
  for (std::int64_t i =
           blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    int key = keys[i];
    atomicAdd(&counts[key >= 0 && key < buckets ? key : buckets], 1ull);
  }
}

__global__ void inverseKernel(const std::int32_t *order, std::int64_t n,
                              std::int32_t *position) {
  for (std::int64_t i =
           blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    position[order[i]] = static_cast<std::int32_t>(i);
}

/// One block per destination row (grid-stride); 16-byte copies when the
/// row size and both pointers allow, elements otherwise.
template <typename T>
__global__ void gatherKernel(const T *src, T *dst, std::int64_t width,
                             const std::int32_t *sourceRow, std::int64_t rows,
                             int divisor, bool vectorized) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    std::int64_t from = sourceRow[r] / divisor;
    if (vectorized) {
      auto in = reinterpret_cast<const uint4 *>(src + from * width);
      auto out = reinterpret_cast<uint4 *>(dst + r * width);
      std::int64_t vectors = width * sizeof(T) / sizeof(uint4);
      for (std::int64_t c = threadIdx.x; c < vectors; c += blockDim.x)
        out[c] = in[c];
    } else {
      for (std::int64_t c = threadIdx.x; c < width; c += blockDim.x)
        dst[r * width + c] = src[from * width + c];
    }
  }
}

template <typename T>
__global__ void combineKernel(const T *rows, T *out, std::int64_t width,
                              const std::int32_t *position,
                              const float *weights, std::int64_t tokens,
                              int topK, bool accumulate) {
  for (std::int64_t t = blockIdx.x; t < tokens; t += gridDim.x)
    for (std::int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      float sum = accumulate ? load(out, t * width + c) : 0.0f;
      for (int j = 0; j < topK; ++j)
        sum += weights[t * topK + j] *
               load(rows, position[t * topK + j] * width + c);
      store(out, t * width + c, sum);
    }
}

template <typename T, int Threads>
__global__ void
combineBackwardKernel(const T *rows, const T *dOut, T *dRows, float *dWeights,
                      std::int64_t width, const std::int32_t *position,
                      const float *weights, std::int64_t tokens, int topK) {
  using Reduce = cub::BlockReduce<float, Threads>;
  __shared__ typename Reduce::TempStorage scratch;
  for (std::int64_t t = blockIdx.x; t < tokens; t += gridDim.x)
    for (int j = 0; j < topK; ++j) {
      std::int64_t row = position[t * topK + j];
      float w = weights[t * topK + j], dot = 0.0f;
      for (std::int64_t c = threadIdx.x; c < width; c += Threads) {
        float d = load(dOut, t * width + c);
        store(dRows, row * width + c, w * d);
        dot += d * load(rows, row * width + c);
      }
      float total = Reduce(scratch).Sum(dot);
      if (threadIdx.x == 0)
        dWeights[t * topK + j] = total;
      __syncthreads(); // the scratch is reused by the next reduction
    }
}

int bitsFor(int buckets) {
  int bits = 1;
  while ((1 << bits) < buckets)
    ++bits;
  return bits;
}

} // namespace

RowPermutation::RowPermutation(std::int64_t maxRows, int maxBuckets)
    : maxRows_(maxRows), maxBuckets_(maxBuckets), iota_(maxRows),
      sortedKeys_(maxRows), order_(maxRows), position_(maxRows),
      counts_(maxBuckets + 1), offsets_(maxBuckets) {
  if (maxRows < 1 || maxBuckets < 1 || maxRows > INT32_MAX)
    fail({}, "RowPermutation: ", maxRows, " rows and ", maxBuckets,
         " buckets (need 1 <= rows <= 2^31 - 1, buckets >= 1)");
  std::size_t sortBytes = 0, scanBytes = 0;
  check(cub::DeviceRadixSort::SortPairs(
            nullptr, sortBytes, sortedKeys_.data(), sortedKeys_.data(),
            iota_.data(), order_.data(), static_cast<int>(maxRows), 0,
            bitsFor(maxBuckets)),
        "cub::DeviceRadixSort::SortPairs (size query)");
  check(cub::DeviceScan::ExclusiveSum(nullptr, scanBytes, counts_.data(),
                                      offsets_.data(), maxBuckets),
        "cub::DeviceScan::ExclusiveSum (size query)");
  scratch_ = DeviceBuffer<std::uint8_t>(std::max(sortBytes, scanBytes));
  iotaKernel<<<blocksFor(maxRows, 256), 256>>>(iota_.data(), maxRows);
  check(cudaGetLastError(), "RowPermutation iota launch");
  check(cudaDeviceSynchronize(), "RowPermutation setup");
}

void RowPermutation::compute(const std::int32_t *keys, std::int64_t rows,
                             int buckets, cudaStream_t stream) {
  if (rows > maxRows_ || buckets > maxBuckets_ || buckets < 1)
    fail({}, "RowPermutation: ", rows, " rows into ", buckets,
         " buckets exceed the ", maxRows_, " rows and ", maxBuckets_,
         " buckets it was sized for");
  check(cudaMemsetAsync(counts_.data(), 0, (buckets + 1) * sizeof(std::int64_t),
                        stream),
        "cudaMemsetAsync");
  if (rows > 0) {
    std::size_t bytes = scratch_.size();
    check(cub::DeviceRadixSort::SortPairs(scratch_.data(), bytes, keys,
                                          sortedKeys_.data(), iota_.data(),
                                          order_.data(), static_cast<int>(rows),
                                          0, bitsFor(buckets), stream),
          "cub::DeviceRadixSort::SortPairs");
    histogramKernel<<<blocksFor(rows, 256), 256, 0, stream>>>(
        keys, rows, buckets,
        reinterpret_cast<unsigned long long *>(counts_.data()));
    check(cudaGetLastError(), "histogram launch");
    inverseKernel<<<blocksFor(rows, 256), 256, 0, stream>>>(order_.data(), rows,
                                                            position_.data());
    check(cudaGetLastError(), "inverse permutation launch");
  }
  std::size_t bytes = scratch_.size();
  check(cub::DeviceScan::ExclusiveSum(scratch_.data(), bytes, counts_.data(),
                                      offsets_.data(), buckets, stream),
        "cub::DeviceScan::ExclusiveSum");
}

std::int64_t RowPermutation::invalidRows(int buckets,
                                         cudaStream_t stream) const {
  std::int64_t invalid = 0;
  check(cudaMemcpyAsync(&invalid, counts_.data() + buckets, sizeof invalid,
                        cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return invalid;
}

void gatherRows(const void *src, void *dst, Precision precision,
                std::int64_t width, const std::int32_t *sourceRow,
                std::int64_t rows, int divisor, cudaStream_t stream) {
  if (rows == 0 || width == 0)
    return;
  std::size_t rowBytes = width * bytesOf(precision);
  bool vectorized = rowBytes % sizeof(uint4) == 0 &&
                    reinterpret_cast<std::uintptr_t>(src) % 16 == 0 &&
                    reinterpret_cast<std::uintptr_t>(dst) % 16 == 0;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    gatherKernel<T><<<blocksFor(rows, 1), 128, 0, stream>>>(
        static_cast<const T *>(src), static_cast<T *>(dst), width, sourceRow,
        rows, divisor, vectorized);
  });
  check(cudaGetLastError(), "gatherRows launch");
}

void combineRows(const void *rows, void *out, Precision precision,
                 std::int64_t width, const std::int32_t *position,
                 const float *weights, std::int64_t tokens, int topK,
                 bool accumulate, cudaStream_t stream) {
  if (tokens == 0 || width == 0)
    return;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    combineKernel<T><<<blocksFor(tokens, 1), 128, 0, stream>>>(
        static_cast<const T *>(rows), static_cast<T *>(out), width, position,
        weights, tokens, topK, accumulate);
  });
  check(cudaGetLastError(), "combineRows launch");
}

void combineRowsBackward(const void *rows, const void *dOut, void *dRows,
                         float *dWeights, Precision precision,
                         std::int64_t width, const std::int32_t *position,
                         const float *weights, std::int64_t tokens, int topK,
                         cudaStream_t stream) {
  if (tokens == 0)
    return;
  constexpr int kThreads = 128;
  withStorage(precision, [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    combineBackwardKernel<T, kThreads>
        <<<blocksFor(tokens, 1), kThreads, 0, stream>>>(
            static_cast<const T *>(rows), static_cast<const T *>(dOut),
            static_cast<T *>(dRows), dWeights, width, position, weights, tokens,
            topK);
  });
  check(cudaGetLastError(), "combineRowsBackward launch");
}

} // namespace laer::rt::cuda
