//===- TrainingState.cpp - what a training run saves and resumes ----------===//

#include "laer/runtime/model/TrainingState.h"
#include "laer/runtime/Limits.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

using namespace laer::rt;

TrainingState::TrainingState(Communicator &comm, Metadata identity)
    : comm(comm), identity(std::move(identity)),
      moeBackend_(makeMoEBackend(*this, {})) {}

void TrainingState::placeMoELayers(const MoEBackendOptions &options) {
  moeBackend_ = makeMoEBackend(*this, options);
}

std::size_t TrainingState::addDense(std::vector<std::int64_t> shape,
                                    TensorName name) {
  std::size_t offset = denseSize();
  std::size_t size = 1;
  for (std::int64_t d : shape)
    size = checkedMultiply(size, d, {comm.rank(), -1, -1},
                           "dense parameter " +
                               std::to_string(denseTensors.size()));
  if (name.empty())
    name.name = "param" + std::to_string(denseTensors.size());
  for (const DenseTensor &other : denseTensors)
    if (other.name.name == name.name)
      fail({comm.rank(), -1, -1}, "two dense parameters are named '", name.name,
           "'");
  denseTensors.push_back({std::move(name), std::move(shape), offset, size});
  return offset;
}

std::size_t TrainingState::denseSize() const {
  return denseTensors.empty()
             ? 0
             : denseTensors.back().offset + denseTensors.back().size;
}

void TrainingState::allocateDense() {
  std::size_t size = denseSize();
  dense.assign(size, 0.0f);
  denseGrad.assign(size, 0.0f);
  denseM.assign(size, 0.0f);
  denseV.assign(size, 0.0f);
}

void TrainingState::initializeDense(std::size_t offset, std::size_t size,
                                    std::int64_t fanIn, std::uint64_t seed) {
  if (fanIn < 0) { // biases
    std::fill_n(dense.begin() + offset, size, 0.0f);
    return;
  }
  double scale = fanIn ? 1.0 / std::sqrt(double(fanIn)) : 0.0;
  for (std::size_t i = offset; i < offset + size; ++i)
    dense[i] = fanIn ? static_cast<float>(
                           scale * (2.0 * uniformAt(seed, 1ull << 44, i) - 1.0))
                     : 1.0f;
}

FsepMoELayer &TrainingState::addMoELayer(const MoELayerConfig &config,
                                         std::uint64_t seed) {
  int l = static_cast<int>(moe.size());
  moe.push_back(std::make_unique<FsepMoELayer>(comm, config, l));
  moeNames.emplace_back();
  moe.back()->initialize(
      seed + 1000 + l,
      static_cast<float>(1.0 / std::sqrt(double(config.shape.hidden))), 0.5f);
  return *moe.back();
}

void TrainingState::zeroGrads() {
  std::fill(denseGrad.begin(), denseGrad.end(), 0.0f);
  moeBackend_->zeroGrads();
}

double TrainingState::gradientNorm(float scale) {
  double dense = 0;
  for (float g : denseGrad)
    dense += static_cast<double>(g) * g;
  double experts = 0;
  for (std::size_t l = 0; l < moe.size(); ++l)
    experts += moeBackend_->gradSquaredNorm(static_cast<int>(l));
  double moeScale = static_cast<double>(moeGradScale);
  return std::abs(static_cast<double>(scale)) *
         std::sqrt(dense + moeScale * moeScale * experts);
}

void TrainingState::optimizerStep(const AdamWConfig &adamw, long adamStep,
                                  float scale) {
  if (scale != 1.0f)
    for (float &g : denseGrad)
      g *= scale;
  adamwStep(dense, denseGrad, denseM, denseV, adamw, adamStep);
  for (std::size_t l = 0; l < moe.size(); ++l)
    moeBackend_->update(static_cast<int>(l), moeGradScale * scale, adamw,
                        adamStep);
}

std::vector<float> TrainingState::gatherParameters() {
  moeBackend_->storeState();
  std::vector<float> all = dense;
  for (auto &layer : moe) {
    std::vector<float> experts = layer->experts().gatherFullParams(comm);
    all.insert(all.end(), experts.begin(), experts.end());
    all.insert(all.end(), layer->gate().begin(), layer->gate().end());
  }
  return all;
}

//===----------------------------------------------------------------------===//
// Checkpoints
//===----------------------------------------------------------------------===//

namespace {

/// Format 2 names every dense parameter; format 1 kept them in one
/// `dense` tensor (still read).
constexpr const char *kFormat = "laer-checkpoint-2";
constexpr const char *kFormatWithDenseBlob = "laer-checkpoint-1";

/// Numbers of a checkpoint's metadata, separated by ','.
template <typename T> std::string joinNumbers(const std::vector<T> &values) {
  std::string text;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i)
      text += ',';
    text += std::to_string(values[i]);
  }
  return text;
}

/// A whole number of checkpoint `file`'s metadata `key`, in [low, high]:
/// all of `text`, else an error naming both (metadata is not covered by the
/// tensors' checksums, so a wrong digit must not pass as another value).
std::int64_t wholeNumber(const std::string &text, std::int64_t low,
                         std::int64_t high, const ErrorContext &where,
                         const std::string &file, const std::string &key) {
  std::int64_t value = 0;
  auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty())
    fail(where, "checkpoint '", file, "': ", key, " is not a whole number: '",
         text, "'");
  if (value < low || value > high)
    fail(where, "checkpoint '", file, "': ", key, " must be in [", low, ", ",
         high, "], got ", value);
  return value;
}

/// Numbers separated by ',', each in [low, high].
std::vector<std::int64_t> splitNumbers(const std::string &text,
                                       std::int64_t low, std::int64_t high,
                                       const ErrorContext &where,
                                       const std::string &file,
                                       const std::string &key) {
  std::vector<std::int64_t> values;
  std::stringstream stream(text);
  std::string number;
  while (std::getline(stream, number, ','))
    values.push_back(wholeNumber(number, low, high, where, file, key));
  return values;
}

Float32Tensor tensorOf(std::span<const float> data,
                       std::vector<std::int64_t> shape) {
  return Float32Tensor{std::move(shape),
                       std::vector<float>(data.begin(), data.end())};
}

/// The identity plus what says which run wrote a checkpoint.
Metadata describe(const Metadata &identity, int ranks, long step) {
  Metadata metadata = identity;
  metadata["format"] = kFormat;
  metadata["step"] = std::to_string(step);
  metadata["ranks"] = std::to_string(ranks);
  return metadata;
}

void copyInto(const TensorMap &tensors, const std::string &name,
              std::span<float> target, const std::string &file) {
  auto it = tensors.find(name);
  if (it == tensors.end())
    fail({}, "checkpoint file '", file, "' has no tensor '", name, "'");
  if (it->second.data.size() != target.size())
    fail({}, "checkpoint tensor '", name, "' in '", file, "' has ",
         it->second.data.size(), " elements; this model expects ",
         target.size());
  std::copy(it->second.data.begin(), it->second.data.end(), target.begin());
}

} // namespace

void TrainingState::save(const std::string &directory, long step) {
  namespace fs = std::filesystem;
  std::string staging = directory + ".tmp";
  ErrorContext where{comm.rank(), -1, step};
  moeBackend_->storeState();
  if (comm.rank() == 0) {
    std::error_code error;
    fs::remove_all(staging, error);
    if (!fs::create_directories(staging, error))
      fail(where, "cannot create checkpoint directory '", staging, "'");
  }
  comm.barrier();

  TensorMap tensors;
  for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
    ExpertShards &shards = moe[l]->experts();
    std::vector<std::int64_t> shape = {shards.numExperts(), shards.shardSize()};
    std::string prefix = "layer" + std::to_string(l) + ".experts";
    tensors[prefix] = tensorOf(shards.allParams(), shape);
    tensors[prefix + ".adam_m"] = tensorOf(shards.firstMoments(), shape);
    tensors[prefix + ".adam_v"] = tensorOf(shards.secondMoments(), shape);
  }
  if (comm.rank() == 0) {
    for (const DenseTensor &tensor : denseTensors) {
      auto part = [&](const std::vector<float> &buffer) {
        return tensorOf(
            std::span<const float>(buffer).subspan(tensor.offset, tensor.size),
            tensor.shape);
      };
      tensors[tensor.name.name] = part(dense);
      tensors[tensor.name.name + ".adam_m"] = part(denseM);
      tensors[tensor.name.name + ".adam_v"] = part(denseV);
    }
    for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
      std::string prefix = "layer" + std::to_string(l) + ".gate";
      std::vector<std::int64_t> shape = {moe[l]->config().shape.hidden,
                                         moe[l]->config().numExperts};
      tensors[prefix] = tensorOf(moe[l]->gate(), shape);
      tensors[prefix + ".adam_m"] = tensorOf(moe[l]->gateFirstMoment(), shape);
      tensors[prefix + ".adam_v"] = tensorOf(moe[l]->gateSecondMoment(), shape);
      if (std::span<float> bias = moe[l]->selectionBias(); !bias.empty())
        tensors["layer" + std::to_string(l) + ".selection_bias"] =
            tensorOf(bias, {static_cast<std::int64_t>(bias.size())});
    }
  }
  Metadata metadata = describe(identity, comm.size(), step);
  metadata["rank"] = std::to_string(comm.rank());
  // The planner's load history (the same on every rank): steps separated
  // by ';', counts by ','.
  for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
    std::string text;
    for (const std::vector<std::int64_t> &counts : moe[l]->loadHistory()) {
      if (!text.empty())
        text += ';';
      text += joinNumbers(counts);
    }
    metadata["layer" + std::to_string(l) + ".load_history"] = text;
  }
  for (const auto &[layer, slots] : keptLayouts)
    metadata["layer" + std::to_string(layer) + ".kept_layout"] =
        joinNumbers(slots);
  writeSafetensors(staging + "/rank" + std::to_string(comm.rank()) +
                       ".safetensors",
                   tensors, metadata);
  comm.barrier();
  if (comm.rank() == 0) {
    nlohmann::json index = describe(identity, comm.size(), step);
    std::vector<std::string> files;
    for (int rank = 0; rank < comm.size(); ++rank)
      files.push_back("rank" + std::to_string(rank) + ".safetensors");
    index["files"] = files;
    std::ofstream(staging + "/index.json") << index.dump(2) << "\n";
    std::error_code error;
    fs::remove_all(directory, error);
    fs::rename(staging, directory, error);
    if (error)
      fail(where, "cannot move checkpoint '", staging, "' to '", directory,
           "': ", error.message());
  }
  comm.barrier();
}

long TrainingState::load(const std::string &directory) {
  ErrorContext where{comm.rank(), -1, -1};
  std::ifstream in(directory + "/index.json");
  if (!in)
    fail(where, "no checkpoint at '", directory, "' (index.json missing)");
  nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
  std::string format = index.is_discarded() ? "" : index.value("format", "");
  if (format != kFormat && format != kFormatWithDenseBlob)
    fail(where, "'", directory, "/index.json' is not a ", kFormat, " index");
  Metadata expected = describe(identity, comm.size(), 0);
  for (const auto &[key, value] : expected) {
    if (key == "step" || key == "ranks" || key == "format")
      continue;
    // Run settings (run.*): only where the checkpoint recorded them, and
    // not at all when a change is allowed.
    bool runSetting = key.starts_with("run.");
    if (runSetting && (allowChangedRun || !index.contains(key)))
      continue;
    std::string found = index.value(key, "");
    if (found != value)
      fail(where, "checkpoint '", directory, "' has ", key, " = ", found,
           runSetting ? " but this run has " : " but this model has ", value,
           runSetting ? " (--allow-changed-run resumes anyway)" : "");
  }
  if (!index.contains("ranks"))
    fail(where, "checkpoint '", directory,
         "' does not say how many ranks "
         "wrote it");
  long step = static_cast<long>(wholeNumber(
      index.value("step", "-1"), -1, std::numeric_limits<long>::max() - 1,
      where, directory, "step"));
  int savedRanks = static_cast<int>(wholeNumber(
      index.value("ranks", "0"), 1, kMaxRanks, where, directory, "ranks"));
  auto file = [&](int rank) {
    return directory + "/rank" + std::to_string(rank) + ".safetensors";
  };

  TensorMap shards;
  if (savedRanks == comm.size()) {
    // Same sharding: this rank's file holds exactly its shards, and the
    // planner history still describes these ranks.
    std::string mine = file(comm.rank());
    Metadata metadata;
    shards = readSafetensors(mine, &metadata);
    for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
      std::deque<std::vector<std::int64_t>> history;
      std::stringstream steps(
          metadata["layer" + std::to_string(l) + ".load_history"]);
      std::string entry;
      while (std::getline(steps, entry, ';'))
        history.push_back(splitNumbers(
            entry, 0, std::numeric_limits<std::int64_t>::max(), where, mine,
            "layer" + std::to_string(l) + ".load_history"));
      moe[l]->setLoadHistory(std::move(history));
    }
    keptLayouts.clear();
    for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
      auto kept = metadata.find("layer" + std::to_string(l) + ".kept_layout");
      if (kept == metadata.end())
        continue;
      // Expert indices, or Layout::kEmpty.
      std::vector<std::int64_t> slots = splitNumbers(
          kept->second, rt::Layout::kEmpty, moe[l]->config().numExperts - 1,
          where, mine, kept->first);
      keptLayouts[l].assign(slots.begin(), slots.end());
    }
    for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
      ExpertShards &experts = moe[l]->experts();
      std::string prefix = "layer" + std::to_string(l) + ".experts";
      copyInto(shards, prefix, experts.allParams(), mine);
      copyInto(shards, prefix + ".adam_m", experts.firstMoments(), mine);
      copyInto(shards, prefix + ".adam_v", experts.secondMoments(), mine);
    }
  } else {
    // Re-shard: assemble every expert from the old ranks' shards and cut
    // this rank's. The load history counted per old rank and the layouts
    // of the old ranks are dropped.
    keptLayouts.clear();
    std::vector<TensorMap> old;
    for (int rank = 0; rank < savedRanks; ++rank)
      old.push_back(readSafetensors(file(rank), nullptr));
    for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
      ExpertShards &experts = moe[l]->experts();
      std::int64_t P = experts.shape().parameters();
      std::int64_t E = experts.numExperts();
      std::int64_t oldShard = (P + savedRanks - 1) / savedRanks;
      std::string prefix = "layer" + std::to_string(l) + ".experts";
      std::vector<std::vector<float>> full(3, std::vector<float>(E * P));
      const char *suffixes[] = {"", ".adam_m", ".adam_v"};
      for (int part = 0; part < 3; ++part)
        for (int rank = 0; rank < savedRanks; ++rank) {
          std::vector<float> piece(E * oldShard);
          copyInto(old[rank], prefix + suffixes[part], piece, file(rank));
          std::int64_t begin = rank * oldShard;
          std::int64_t end = std::min(begin + oldShard, P);
          for (std::int64_t e = 0; e < E; ++e)
            for (std::int64_t i = begin; i < end; ++i)
              full[part][e * P + i] = piece[e * oldShard + i - begin];
        }
      experts.loadFull(full[0], where);
      experts.loadFullMoments(full[1], full[2], where);
      moe[l]->setLoadHistory({});
    }
    shards = std::move(old[0]);
  }
  std::string first = file(0);
  // Replicated state is stored once, by rank 0.
  TensorMap replicated = (comm.rank() == 0 || savedRanks != comm.size())
                             ? std::move(shards)
                             : readSafetensors(first, nullptr);
  if (format == kFormatWithDenseBlob) {
    copyInto(replicated, "dense", dense, first);
    copyInto(replicated, "dense.adam_m", denseM, first);
    copyInto(replicated, "dense.adam_v", denseV, first);
  } else {
    for (const DenseTensor &tensor : denseTensors) {
      auto part = [&](std::vector<float> &buffer) {
        return std::span<float>(buffer).subspan(tensor.offset, tensor.size);
      };
      copyInto(replicated, tensor.name.name, part(dense), first);
      copyInto(replicated, tensor.name.name + ".adam_m", part(denseM), first);
      copyInto(replicated, tensor.name.name + ".adam_v", part(denseV), first);
    }
  }
  for (int l = 0; l < static_cast<int>(moe.size()); ++l) {
    std::string prefix = "layer" + std::to_string(l) + ".gate";
    copyInto(replicated, prefix, moe[l]->gate(), first);
    copyInto(replicated, prefix + ".adam_m", moe[l]->gateFirstMoment(), first);
    copyInto(replicated, prefix + ".adam_v", moe[l]->gateSecondMoment(), first);
    if (std::span<float> bias = moe[l]->selectionBias(); !bias.empty())
      copyInto(replicated, "layer" + std::to_string(l) + ".selection_bias",
               bias, first);
  }
  comm.barrier();
  moeBackend_->loadState();
  return step;
}
