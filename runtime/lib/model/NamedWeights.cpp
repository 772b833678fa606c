//===- NamedWeights.cpp - a model's weights in its own files --------------===//

#include "laer/runtime/model/NamedWeights.h"

#include <chrono>

using namespace laer::rt;

namespace {

/// ceil(x / d) for d > 0 and any x.
std::int64_t ceilDiv(std::int64_t x, std::int64_t d) {
  return x >= 0 ? (x + d - 1) / d : -((-x) / d);
}

/// The shape a tensor of the runtime's `shape` has in the files.
std::vector<std::int64_t> fileShape(std::vector<std::int64_t> shape,
                                    bool transposed) {
  if (transposed && shape.size() == 2)
    std::swap(shape[0], shape[1]);
  return shape;
}

/// The ranges of a whole [rows, cols] matrix (or vector: cols 1) at
/// `offset` in memory, as the file orders its elements.
std::vector<ElementRange> wholeRanges(std::int64_t rows, std::int64_t cols,
                                      std::int64_t offset, bool transposed) {
  if (!transposed)
    return {{0, static_cast<std::uint64_t>(rows * cols), offset, 1}};
  // The file holds [cols, rows]: its row j is the runtime's column j.
  std::vector<ElementRange> ranges;
  for (std::int64_t j = 0; j < cols; ++j)
    ranges.push_back({static_cast<std::uint64_t>(j * rows),
                      static_cast<std::uint64_t>(rows), offset + j, cols});
  return ranges;
}

/// The ranges of a whole dense parameter, as the file orders them.
std::vector<ElementRange> denseRanges(const DenseTensor &tensor) {
  return wholeRanges(
      tensor.shape[0], tensor.shape.size() > 1 ? tensor.shape[1] : 1,
      static_cast<std::int64_t>(tensor.offset), tensor.name.transposed);
}

/// The part of one expert matrix ([rows, cols] at `partOffset` in the
/// flattened expert) that this rank's shard [lo, hi) holds, as ranges of
/// the file's tensor with their places in the shard.
std::vector<ElementRange>
matrixShardRanges(std::int64_t lo, std::int64_t hi, std::int64_t partOffset,
                  std::int64_t rows, std::int64_t cols, bool transposed) {
  std::int64_t a = std::max(lo, partOffset) - partOffset;
  std::int64_t b = std::min(hi, partOffset + rows * cols) - partOffset;
  if (a >= b)
    return {};
  std::int64_t toShard = partOffset - lo; // matrix index -> shard index
  if (!transposed)
    return {{static_cast<std::uint64_t>(a), static_cast<std::uint64_t>(b - a),
             a + toShard, 1}};
  // The file holds [cols, rows]; its row c has the runtime's (r, c) for
  // the r with a <= r * cols + c < b.
  std::vector<ElementRange> ranges;
  for (std::int64_t c = 0; c < cols; ++c) {
    std::int64_t r0 = std::max<std::int64_t>(0, ceilDiv(a - c, cols));
    std::int64_t r1 = std::min(rows, ceilDiv(b - c, cols));
    if (r0 < r1)
      ranges.push_back({static_cast<std::uint64_t>(c * rows + r0),
                        static_cast<std::uint64_t>(r1 - r0),
                        r0 * cols + c + toShard, cols});
  }
  return ranges;
}

/// One of an expert's three matrices: its name pattern, place and shape.
struct ExpertPart {
  const TensorName *name;
  std::int64_t offset, rows, cols;
};

std::vector<ExpertPart> expertParts(const MoETensorNames &names,
                                    const ExpertShape &shape) {
  return {{&names.w1, shape.w1Offset(), shape.hidden, shape.ffn},
          {&names.w3, shape.w3Offset(), shape.hidden, shape.ffn},
          {&names.w2, shape.w2Offset(), shape.ffn, shape.hidden}};
}

/// The ranges of `part` this rank's shards hold (the same for every
/// expert).
std::vector<ElementRange> shardRanges(const ExpertShards &shards,
                                      const ExpertPart &part) {
  std::int64_t lo = shards.rank() * shards.shardSize();
  std::int64_t hi =
      std::min(lo + shards.shardSize(), shards.shape().parameters());
  return matrixShardRanges(lo, hi, part.offset, part.rows, part.cols,
                           part.name->transposed);
}

std::string expertName(const TensorName &pattern, int expert) {
  std::string name = pattern.name;
  if (std::size_t star = name.find('*'); star != std::string::npos)
    name.replace(star, 1, std::to_string(expert));
  return name;
}

/// Fails unless MoE layer `l`'s gate and experts are named.
void checkNamed(const TrainingState &state, int l, const char *doing) {
  const MoETensorNames &names = state.moeNames[l];
  if (names.gate.empty() || names.w1.empty() || names.w3.empty() ||
      names.w2.empty())
    fail({state.comm.rank(), l, -1}, "cannot ", doing, " MoE layer ", l,
         ": its gate and expert weights have no names (give them "
         "#moe.parameter in the model IR, as laer-import does)");
}

} // namespace

laer::rt::LoadStats laer::rt::loadNamedWeights(TrainingState &state,
                                               const std::string &path) {
  auto start = std::chrono::steady_clock::now();
  ErrorContext where{state.comm.rank(), -1, -1};
  for (int l = 0; l < static_cast<int>(state.moe.size()); ++l)
    checkNamed(state, l, "load");
  SafetensorsFiles files(path, where);

  for (const DenseTensor &tensor : state.denseTensors)
    files.read(files.expect(tensor.name.name,
                            fileShape(tensor.shape, tensor.name.transposed)),
               denseRanges(tensor), state.dense);
  for (int l = 0; l < static_cast<int>(state.moe.size()); ++l) {
    FsepMoELayer &layer = *state.moe[l];
    const MoETensorNames &names = state.moeNames[l];
    const MoELayerConfig &config = layer.config();
    std::int64_t H = config.shape.hidden, E = config.numExperts;
    files.read(
        files.expect(names.gate.name, fileShape({H, E}, names.gate.transposed)),
        wholeRanges(H, E, 0, names.gate.transposed), layer.gate());
    if (std::span<float> bias = layer.selectionBias();
        !bias.empty() && !names.selectionBias.empty())
      files.read(files.expect(names.selectionBias.name, {E}),
                 wholeRanges(E, 1, 0, false), bias);
    ExpertShards &shards = layer.experts();
    std::ranges::fill(shards.allParams(), 0.0f); // the padding
    for (const ExpertPart &part : expertParts(names, shards.shape())) {
      std::vector<ElementRange> ranges = shardRanges(shards, part);
      if (ranges.empty())
        continue;
      std::vector<std::int64_t> shape =
          fileShape({part.rows, part.cols}, part.name->transposed);
      for (int e = 0; e < shards.numExperts(); ++e)
        files.read(files.expect(expertName(*part.name, e), shape), ranges,
                   shards.params(e));
    }
  }
  LoadStats stats;
  stats.bytes = files.bytesRead();
  stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  state.comm.barrier();
  state.moeBackend().loadState();
  return stats;
}

void laer::rt::exportNamedWeights(TrainingState &state,
                                  const std::string &directory,
                                  const NamedExportOptions &options) {
  Communicator &comm = state.comm;
  ErrorContext where{comm.rank(), -1, -1};
  for (int l = 0; l < static_cast<int>(state.moe.size()); ++l)
    checkNamed(state, l, "export");
  state.moeBackend().storeState();
  bool grads = options.gradients;

  SafetensorsPlan plan(options.dtype, options.maxFileBytes);
  for (const DenseTensor &tensor : state.denseTensors)
    plan.add(tensor.name.name, fileShape(tensor.shape, tensor.name.transposed));
  for (int l = 0; l < static_cast<int>(state.moe.size()); ++l) {
    const MoETensorNames &names = state.moeNames[l];
    const MoELayerConfig &config = state.moe[l]->config();
    std::int64_t H = config.shape.hidden, E = config.numExperts;
    plan.add(names.gate.name, fileShape({H, E}, names.gate.transposed));
    if (!grads && !state.moe[l]->selectionBias().empty() &&
        !names.selectionBias.empty())
      plan.add(names.selectionBias.name, {E});
    for (int e = 0; e < E; ++e)
      for (const ExpertPart &part :
           expertParts(names, state.moe[l]->experts().shape()))
        plan.add(expertName(*part.name, e),
                 fileShape({part.rows, part.cols}, part.name->transposed));
  }
  plan.finish();
  if (comm.rank() == 0)
    plan.createFiles(directory, where);
  comm.barrier();
  plan.open(directory, where);

  if (comm.rank() == 0) {
    const std::vector<float> &dense = grads ? state.denseGrad : state.dense;
    for (const DenseTensor &tensor : state.denseTensors)
      plan.write(tensor.name.name, denseRanges(tensor), dense, where);
    for (int l = 0; l < static_cast<int>(state.moe.size()); ++l) {
      FsepMoELayer &layer = *state.moe[l];
      const MoETensorNames &names = state.moeNames[l];
      std::int64_t H = layer.config().shape.hidden,
                   E = layer.config().numExperts;
      plan.write(names.gate.name, wholeRanges(H, E, 0, names.gate.transposed),
                 grads ? layer.gateGrad()
                       : std::span<const float>(layer.gate()),
                 where);
      if (!grads && !layer.selectionBias().empty() &&
          !names.selectionBias.empty())
        plan.write(names.selectionBias.name, wholeRanges(E, 1, 0, false),
                   layer.selectionBias(), where);
    }
  }
  for (int l = 0; l < static_cast<int>(state.moe.size()); ++l) {
    const ExpertShards &shards = state.moe[l]->experts();
    for (const ExpertPart &part :
         expertParts(state.moeNames[l], shards.shape())) {
      std::vector<ElementRange> ranges = shardRanges(shards, part);
      if (ranges.empty())
        continue;
      for (int e = 0; e < shards.numExperts(); ++e)
        plan.write(expertName(*part.name, e), ranges,
                   grads ? shards.grads(e) : shards.params(e),
                   {comm.rank(), l, -1});
    }
  }
  comm.barrier();
}
