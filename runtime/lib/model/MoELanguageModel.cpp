//===- MoELanguageModel.cpp - a MoE transformer LM on the runtime ---------===//

#include "laer/runtime/model/MoELanguageModel.h"
#include "laer/runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace laer::rt;
using namespace laer::rt::cpu;

MoELanguageModel::MoELanguageModel(Communicator &comm,
                                   const LanguageModelConfig &config,
                                   std::uint64_t seed)
    : comm_(comm), config_(config) {
  std::int64_t H = config.hidden, V = config.vocab;
  attention_.hidden = H;
  attention_.heads = config.heads;
  attention_.kvHeads = config.kvHeads;
  attention_.sequenceLength = config.sequence;
  attention_.ropeTheta = config.ropeTheta;
  std::int64_t kv = attention_.kvWidth();

  // Dense parameters in one buffer; norms start at one, matrices uniform
  // with a 1/sqrt(fan-in) scale, all from the seed (same on every rank).
  struct Block {
    std::size_t offset, size;
    std::int64_t fanIn; // 0 for a norm weight
  };
  std::vector<Block> blocks;
  std::size_t offset = 0;
  auto take = [&](std::size_t size, std::int64_t fanIn) {
    blocks.push_back({offset, size, fanIn});
    offset += size;
    return blocks.back().offset;
  };
  embed_ = take(V * H, H);
  for (int l = 0; l < config.layers; ++l) {
    LayerOffsets layer;
    layer.norm1 = take(H, 0);
    layer.wq = take(H * H, H);
    layer.wk = take(H * kv, H);
    layer.wv = take(H * kv, H);
    layer.wo = take(H * H, H);
    layer.norm2 = take(H, 0);
    layers_.push_back(layer);
  }
  finalNorm_ = take(H, 0);
  head_ = take(H * V, H);
  dense_.assign(offset, 0.0f);
  for (const Block &block : blocks) {
    double scale = block.fanIn ? 1.0 / std::sqrt(double(block.fanIn)) : 0.0;
    for (std::size_t i = block.offset; i < block.offset + block.size; ++i)
      dense_[i] = block.fanIn ? static_cast<float>(
                                    scale * (2.0 * uniformAt(seed, 1ull << 44,
                                                             i) - 1.0))
                              : 1.0f;
  }
  denseGrad_.assign(offset, 0.0f);
  denseM_.assign(offset, 0.0f);
  denseV_.assign(offset, 0.0f);

  MoELayerConfig moe;
  moe.shape = {H, config.ffn};
  moe.numExperts = config.experts;
  moe.topK = config.topK;
  moe.slotsPerRank = config.slotsPerRank > 0
                         ? config.slotsPerRank
                         : (config.experts + comm.size() - 1) / comm.size();
  moe.historyWindow = config.historyWindow;
  for (int l = 0; l < config.layers; ++l) {
    moe_.push_back(std::make_unique<FsepMoELayer>(comm, moe, l));
    moe_.back()->initialize(seed + 1000 + l,
                            static_cast<float>(1.0 / std::sqrt(double(H))),
                            0.5f);
  }
}

StepResult MoELanguageModel::trainStep(std::span<const std::int32_t> ids,
                                       std::span<const std::int32_t> targets,
                                       long step, RelayoutHook &hook,
                                       const AdamWConfig &adamw) {
  std::int64_t H = config_.hidden, V = config_.vocab;
  std::int64_t T = static_cast<std::int64_t>(ids.size());
  std::int64_t kv = attention_.kvWidth();
  if (targets.size() != ids.size() || T % config_.sequence != 0)
    fail({comm_.rank(), -1, step}, "training batch has ", ids.size(),
         " ids and ", targets.size(), " targets; both must be whole "
         "sequences of ", config_.sequence);
  attention_.tokens = T;
  std::fill(denseGrad_.begin(), denseGrad_.end(), 0.0f);
  for (auto &moe : moe_)
    moe->zeroGrads();

  // Forward, keeping what backward needs.
  struct Saved {
    std::vector<float> x, n1, r, n2, invRms1, invRms2;
    AttentionSaved<float> attention;
  };
  std::vector<Saved> saved(config_.layers);
  std::vector<float> x(T * H);
  embeddingForward<float>(param(embed_, V * H), ids, V, H, x);
  StepResult result;
  for (int l = 0; l < config_.layers; ++l) {
    const LayerOffsets &o = layers_[l];
    Saved &s = saved[l];
    s.x = x;
    s.n1.resize(T * H);
    s.invRms1.resize(T);
    rmsNormForward<float>(s.x, param(o.norm1, H), T, H, 1e-5, s.n1,
                          s.invRms1);
    std::vector<float> a(T * H);
    attentionForward<float>(s.n1, param(o.wq, H * H), param(o.wk, H * kv),
                            param(o.wv, H * kv), param(o.wo, H * H),
                            attention_, a, s.attention);
    s.r.resize(T * H);
    for (std::int64_t i = 0; i < T * H; ++i)
      s.r[i] = s.x[i] + a[i];
    s.n2.resize(T * H);
    s.invRms2.resize(T);
    rmsNormForward<float>(s.r, param(o.norm2, H), T, H, 1e-5, s.n2,
                          s.invRms2);
    std::vector<float> m = moe_[l]->forward(s.n2, step, hook);
    for (std::int64_t i = 0; i < T * H; ++i)
      x[i] = s.r[i] + m[i];
    // Load balance of the layer this step: expert rows per rank.
    result.maxOverMean.push_back(
        maxOverMeanRows(rowsPerRank(moe_[l]->lastPlan())));
  }
  std::vector<float> nf(T * H), invRmsF(T), logits(T * V), probs(T * V);
  rmsNormForward<float>(x, param(finalNorm_, H), T, H, 1e-5, nf, invRmsF);
  gemmT<float>(false, false, T, V, H, 1, nf.data(), param(head_, H * V).data(),
               0, logits.data());
  double loss = crossEntropyForward<float>(logits, targets, T, V, probs);
  comm_.allReduceSum(std::span<double>(&loss, 1));
  result.loss = loss / comm_.size();

  // Backward of the mean over all ranks' tokens: each rank's mean enters
  // with weight 1/N, so summed gradients need no further scaling.
  std::vector<float> dLogits(T * V), dnf(T * H), dx(T * H);
  crossEntropyBackward<float>(probs, targets, T, V,
                              1.0f / static_cast<float>(comm_.size()),
                              dLogits);
  gemmT<float>(true, false, H, V, T, 1, nf.data(), dLogits.data(), 1,
               grad(head_, H * V).data());
  gemmT<float>(false, true, T, H, V, 1, dLogits.data(),
               param(head_, H * V).data(), 0, dnf.data());
  rmsNormBackward<float>(x, param(finalNorm_, H), invRmsF, dnf, T, H, dx,
                         grad(finalNorm_, H));
  for (int l = config_.layers - 1; l >= 0; --l) {
    const LayerOffsets &o = layers_[l];
    Saved &s = saved[l];
    std::vector<float> dn2 = moe_[l]->backward(dx);
    std::vector<float> dr(T * H);
    rmsNormBackward<float>(s.r, param(o.norm2, H), s.invRms2, dn2, T, H, dr,
                           grad(o.norm2, H));
    for (std::int64_t i = 0; i < T * H; ++i)
      dr[i] += dx[i];
    std::vector<float> dn1(T * H);
    attentionBackward<float>(s.n1, param(o.wq, H * H), param(o.wk, H * kv),
                             param(o.wv, H * kv), param(o.wo, H * H),
                             attention_, s.attention, dr, dn1,
                             grad(o.wq, H * H), grad(o.wk, H * kv),
                             grad(o.wv, H * kv), grad(o.wo, H * H));
    rmsNormBackward<float>(s.x, param(o.norm1, H), s.invRms1, dn1, T, H, dx,
                           grad(o.norm1, H));
    for (std::int64_t i = 0; i < T * H; ++i)
      dx[i] += dr[i];
  }
  embeddingBackward<float>(ids, dx, V, H, grad(embed_, V * H));

  // Replicated dense parameters: sum the gradients, step identically.
  comm_.allReduceSum(std::span<float>(denseGrad_));
  adamwStep(dense_, denseGrad_, denseM_, denseV_, adamw, step + 1);
  for (auto &moe : moe_)
    moe->applyAdamW(adamw, step + 1);
  return result;
}

std::vector<float> MoELanguageModel::gatherParameters() {
  std::vector<float> all = dense_;
  for (auto &moe : moe_) {
    std::vector<float> experts = moe->experts().gatherFullParams(comm_);
    all.insert(all.end(), experts.begin(), experts.end());
    all.insert(all.end(), moe->gate().begin(), moe->gate().end());
  }
  return all;
}

//===----------------------------------------------------------------------===//
// Checkpoints
//===----------------------------------------------------------------------===//

namespace {

constexpr const char *kFormat = "laer-checkpoint-1";

Float32Tensor tensorOf(std::span<const float> data,
                       std::vector<std::int64_t> shape) {
  return Float32Tensor{std::move(shape),
                       std::vector<float>(data.begin(), data.end())};
}

/// The configuration a checkpoint must match to be loaded.
Metadata describe(const LanguageModelConfig &config, int ranks, long step) {
  return {{"format", kFormat},
          {"step", std::to_string(step)},
          {"ranks", std::to_string(ranks)},
          {"vocab", std::to_string(config.vocab)},
          {"hidden", std::to_string(config.hidden)},
          {"ffn", std::to_string(config.ffn)},
          {"experts", std::to_string(config.experts)},
          {"layers", std::to_string(config.layers)},
          {"heads", std::to_string(config.heads)},
          {"kv_heads", std::to_string(config.kvHeads)}};
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

void MoELanguageModel::saveCheckpoint(const std::string &directory,
                                      long step) {
  namespace fs = std::filesystem;
  std::string staging = directory + ".tmp";
  ErrorContext where{comm_.rank(), -1, step};
  if (comm_.rank() == 0) {
    std::error_code error;
    fs::remove_all(staging, error);
    if (!fs::create_directories(staging, error))
      fail(where, "cannot create checkpoint directory '", staging, "'");
  }
  comm_.barrier();

  TensorMap tensors;
  for (int l = 0; l < config_.layers; ++l) {
    ExpertShards &shards = moe_[l]->experts();
    std::vector<std::int64_t> shape = {shards.numExperts(),
                                       shards.shardSize()};
    std::string prefix = "layer" + std::to_string(l) + ".experts";
    tensors[prefix] = tensorOf(shards.allParams(), shape);
    tensors[prefix + ".adam_m"] = tensorOf(shards.firstMoments(), shape);
    tensors[prefix + ".adam_v"] = tensorOf(shards.secondMoments(), shape);
  }
  if (comm_.rank() == 0) {
    auto n = static_cast<std::int64_t>(dense_.size());
    tensors["dense"] = tensorOf(dense_, {n});
    tensors["dense.adam_m"] = tensorOf(denseM_, {n});
    tensors["dense.adam_v"] = tensorOf(denseV_, {n});
    for (int l = 0; l < config_.layers; ++l) {
      std::string prefix = "layer" + std::to_string(l) + ".gate";
      std::vector<std::int64_t> shape = {config_.hidden, config_.experts};
      tensors[prefix] = tensorOf(moe_[l]->gate(), shape);
      tensors[prefix + ".adam_m"] =
          tensorOf(moe_[l]->gateFirstMoment(), shape);
      tensors[prefix + ".adam_v"] =
          tensorOf(moe_[l]->gateSecondMoment(), shape);
    }
  }
  Metadata metadata = describe(config_, comm_.size(), step);
  metadata["rank"] = std::to_string(comm_.rank());
  // The planner's load history (the same on every rank): steps separated
  // by ';', counts by ','.
  for (int l = 0; l < config_.layers; ++l) {
    std::string text;
    for (const std::vector<std::int64_t> &counts : moe_[l]->loadHistory()) {
      if (!text.empty())
        text += ';';
      for (std::size_t i = 0; i < counts.size(); ++i)
        text += (i ? "," : "") + std::to_string(counts[i]);
    }
    metadata["layer" + std::to_string(l) + ".load_history"] = text;
  }
  writeSafetensors(staging + "/rank" + std::to_string(comm_.rank()) +
                       ".safetensors",
                   tensors, metadata);
  comm_.barrier();
  if (comm_.rank() == 0) {
    nlohmann::json index = describe(config_, comm_.size(), step);
    std::vector<std::string> files;
    for (int rank = 0; rank < comm_.size(); ++rank)
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
  comm_.barrier();
}

long MoELanguageModel::loadCheckpoint(const std::string &directory) {
  ErrorContext where{comm_.rank(), -1, -1};
  std::ifstream in(directory + "/index.json");
  if (!in)
    fail(where, "no checkpoint at '", directory, "' (index.json missing)");
  nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded() || index.value("format", "") != kFormat)
    fail(where, "'", directory, "/index.json' is not a ", kFormat, " index");
  Metadata expected = describe(config_, comm_.size(), 0);
  for (const auto &[key, value] : expected) {
    if (key == "step" || key == "ranks")
      continue;
    std::string found = index.value(key, "");
    if (found != value)
      fail(where, "checkpoint '", directory, "' has ", key, " = ", found,
           " but this model has ", value);
  }
  long step = std::stol(index.value("step", "-1"));
  int savedRanks = std::stoi(index.value("ranks", "0"));
  if (savedRanks < 1)
    fail(where, "checkpoint '", directory, "' does not say how many ranks "
                "wrote it");
  auto file = [&](int rank) {
    return directory + "/rank" + std::to_string(rank) + ".safetensors";
  };

  TensorMap shards;
  if (savedRanks == comm_.size()) {
    // Same sharding: this rank's file holds exactly its shards, and the
    // planner history still describes these ranks.
    std::string mine = file(comm_.rank());
    Metadata metadata;
    shards = readSafetensors(mine, &metadata);
    for (int l = 0; l < config_.layers; ++l) {
      std::deque<std::vector<std::int64_t>> history;
      std::stringstream steps(metadata["layer" + std::to_string(l) +
                                       ".load_history"]);
      std::string entry, count;
      while (std::getline(steps, entry, ';')) {
        std::stringstream counts(entry);
        history.emplace_back();
        while (std::getline(counts, count, ','))
          history.back().push_back(std::stoll(count));
      }
      moe_[l]->setLoadHistory(std::move(history));
    }
    for (int l = 0; l < config_.layers; ++l) {
      ExpertShards &experts = moe_[l]->experts();
      std::string prefix = "layer" + std::to_string(l) + ".experts";
      copyInto(shards, prefix, experts.allParams(), mine);
      copyInto(shards, prefix + ".adam_m", experts.firstMoments(), mine);
      copyInto(shards, prefix + ".adam_v", experts.secondMoments(), mine);
    }
  } else {
    // Re-shard: assemble every expert from the old ranks' shards and cut
    // this rank's. The load history counted per old rank is dropped.
    std::vector<TensorMap> old;
    for (int rank = 0; rank < savedRanks; ++rank)
      old.push_back(readSafetensors(file(rank), nullptr));
    for (int l = 0; l < config_.layers; ++l) {
      ExpertShards &experts = moe_[l]->experts();
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
      moe_[l]->setLoadHistory({});
    }
    shards = std::move(old[0]);
  }
  std::string first = file(0);
  // Replicated state is stored once, by rank 0.
  TensorMap replicated = (comm_.rank() == 0 || savedRanks != comm_.size())
                             ? std::move(shards)
                             : readSafetensors(first, nullptr);
  copyInto(replicated, "dense", dense_, first);
  copyInto(replicated, "dense.adam_m", denseM_, first);
  copyInto(replicated, "dense.adam_v", denseV_, first);
  for (int l = 0; l < config_.layers; ++l) {
    std::string prefix = "layer" + std::to_string(l) + ".gate";
    copyInto(replicated, prefix, moe_[l]->gate(), first);
    copyInto(replicated, prefix + ".adam_m", moe_[l]->gateFirstMoment(),
             first);
    copyInto(replicated, prefix + ".adam_v", moe_[l]->gateSecondMoment(),
             first);
  }
  comm_.barrier();
  return step;
}
