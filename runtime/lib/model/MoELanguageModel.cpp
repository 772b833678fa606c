//===- MoELanguageModel.cpp - a MoE transformer LM on the runtime ---------===//

#include "laer/runtime/model/MoELanguageModel.h"

#include <algorithm>

using namespace laer::rt;
using namespace laer::rt::cpu;

namespace {

/// What a checkpoint of this model must match to be loaded.
Metadata identity(const LanguageModelConfig &config) {
  Metadata metadata = {{"vocab", std::to_string(config.vocab)},
                       {"hidden", std::to_string(config.hidden)},
                       {"ffn", std::to_string(config.ffn)},
                       {"experts", std::to_string(config.experts)},
                       {"layers", std::to_string(config.layers)},
                       {"heads", std::to_string(config.heads)},
                       {"kv_heads", std::to_string(config.kvHeads)}};
  if (config.sharedFfn)
    metadata["shared_ffn"] = std::to_string(config.sharedFfn);
  return metadata;
}

} // namespace

MoELanguageModel::MoELanguageModel(Communicator &comm,
                                   const LanguageModelConfig &config,
                                   std::uint64_t seed,
                                   const MoEBackendOptions &backend)
    : comm_(comm), config_(config), state_(comm, identity(config)) {
  std::int64_t H = config.hidden, V = config.vocab;
  attention_.hidden = H;
  attention_.heads = config.heads;
  attention_.kvHeads = config.kvHeads;
  attention_.sequenceLength = config.sequence;
  attention_.ropeTheta = config.ropeTheta;
  std::int64_t kv = attention_.kvWidth();

  // Dense parameters in one buffer; norms start at one, matrices uniform
  // with a 1/sqrt(fan-in) scale, all from the seed (same on every rank).
  std::vector<std::int64_t> fanIns;
  auto take = [&](std::string name, std::vector<std::int64_t> shape,
                  std::int64_t fanIn) {
    fanIns.push_back(fanIn);
    return state_.addDense(std::move(shape), {std::move(name), false});
  };
  embed_ = take("embed", {V, H}, H);
  for (int l = 0; l < config.layers; ++l) {
    std::string prefix = "layers." + std::to_string(l) + ".";
    LayerOffsets layer;
    layer.norm1 = take(prefix + "norm1", {H}, 0);
    layer.wq = take(prefix + "wq", {H, H}, H);
    layer.wk = take(prefix + "wk", {H, kv}, H);
    layer.wv = take(prefix + "wv", {H, kv}, H);
    layer.wo = take(prefix + "wo", {H, H}, H);
    layer.norm2 = take(prefix + "norm2", {H}, 0);
    // In the model IR's argument order: after the (FSEP-owned) experts.
    if (std::int64_t S = config.sharedFfn) {
      layer.shared1 = take(prefix + "shared_w1", {H, S}, H);
      layer.shared3 = take(prefix + "shared_w3", {H, S}, H);
      layer.shared2 = take(prefix + "shared_w2", {S, H}, S);
    }
    layers_.push_back(layer);
  }
  finalNorm_ = take("final_norm", {H}, 0);
  head_ = take("lm_head", {H, V}, H);
  state_.allocateDense();
  for (std::size_t i = 0; i < fanIns.size(); ++i)
    state_.initializeDense(state_.denseTensors[i].offset,
                           state_.denseTensors[i].size, fanIns[i], seed);

  MoELayerConfig moe;
  moe.shape = {H, config.ffn};
  moe.numExperts = config.experts;
  moe.topK = config.topK;
  moe.slotsPerRank = config.slotsPerRank > 0
                         ? config.slotsPerRank
                         : (config.experts + comm.size() - 1) / comm.size();
  moe.historyWindow = config.historyWindow;
  moe.tokenChunks = config.tokenChunks;
  for (int l = 0; l < config.layers; ++l)
    state_.addMoELayer(moe, seed);
  state_.placeMoELayers(backend);
}

StepResult
MoELanguageModel::accumulateGradients(std::span<const std::int32_t> ids,
                                      std::span<const std::int32_t> targets,
                                      long step, RelayoutHook &hook) {
  std::int64_t H = config_.hidden, V = config_.vocab;
  std::int64_t T = static_cast<std::int64_t>(ids.size());
  std::int64_t kv = attention_.kvWidth();
  if (targets.size() != ids.size() || T % config_.sequence != 0)
    fail({comm_.rank(), -1, step}, "training batch has ", ids.size(),
         " ids and ", targets.size(),
         " targets; both must be whole "
         "sequences of ",
         config_.sequence);
  attention_.tokens = T;
  // This batch's dense gradients, summed over ranks into the state's after
  // the backward (the state's may hold earlier micro-batches').
  batchGrad_.assign(state_.denseGrad.size(), 0.0f);

  // Forward, keeping what backward needs.
  struct Saved {
    std::vector<float> x, n1, r, n2, invRms1, invRms2;
    AttentionSaved<float> attention;
    GatedFfnSaved<float> shared;
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
    rmsNormForward<float>(s.x, param(o.norm1, H), T, H, 1e-5, s.n1, s.invRms1);
    std::vector<float> a(T * H);
    AttentionParams<float> ap{.wq = param(o.wq, H * H),
                              .wk = param(o.wk, H * kv),
                              .wv = param(o.wv, H * kv),
                              .wo = param(o.wo, H * H)};
    attentionForward<float>(s.n1, ap, attention_, a, s.attention);
    s.r.resize(T * H);
    for (std::int64_t i = 0; i < T * H; ++i)
      s.r[i] = s.x[i] + a[i];
    s.n2.resize(T * H);
    s.invRms2.resize(T);
    rmsNormForward<float>(s.r, param(o.norm2, H), T, H, 1e-5, s.n2, s.invRms2);
    std::vector<float> m = state_.moeBackend().forward(l, s.n2, step, hook);
    if (std::int64_t S = config_.sharedFfn) {
      std::vector<float> shared(T * H);
      gatedFfnForward<float>(s.n2, param(o.shared1, H * S).data(),
                             param(o.shared3, H * S).data(),
                             param(o.shared2, S * H).data(), T, H, S,
                             Activation::Silu, shared, s.shared);
      for (std::int64_t i = 0; i < T * H; ++i)
        m[i] += shared[i];
    }
    for (std::int64_t i = 0; i < T * H; ++i)
      x[i] = s.r[i] + m[i];
    // Load balance of the layer this step: expert rows per rank.
    result.maxOverMean.push_back(
        maxOverMeanRows(rowsPerRank(state_.moeBackend().lastPlan(l))));
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
                              1.0f / static_cast<float>(comm_.size()), dLogits);
  gemmT<float>(true, false, H, V, T, 1, nf.data(), dLogits.data(), 1,
               grad(head_, H * V).data());
  gemmT<float>(false, true, T, H, V, 1, dLogits.data(),
               param(head_, H * V).data(), 0, dnf.data());
  rmsNormBackward<float>(x, param(finalNorm_, H), invRmsF, dnf, T, H, dx,
                         grad(finalNorm_, H));
  for (int l = config_.layers - 1; l >= 0; --l) {
    const LayerOffsets &o = layers_[l];
    Saved &s = saved[l];
    std::vector<float> dn2 = state_.moeBackend().backward(l, dx);
    if (std::int64_t S = config_.sharedFfn) {
      std::vector<float> dShared(T * H);
      gatedFfnBackward<float>(
          s.n2, param(o.shared1, H * S).data(), param(o.shared3, H * S).data(),
          param(o.shared2, S * H).data(), s.shared, dx, T, H, S,
          Activation::Silu, dShared, grad(o.shared1, H * S).data(),
          grad(o.shared3, H * S).data(), grad(o.shared2, S * H).data(),
          /*accumulate=*/true);
      for (std::int64_t i = 0; i < T * H; ++i)
        dn2[i] += dShared[i];
    }
    std::vector<float> dr(T * H);
    rmsNormBackward<float>(s.r, param(o.norm2, H), s.invRms2, dn2, T, H, dr,
                           grad(o.norm2, H));
    for (std::int64_t i = 0; i < T * H; ++i)
      dr[i] += dx[i];
    std::vector<float> dn1(T * H);
    AttentionParams<float> ap{.wq = param(o.wq, H * H),
                              .wk = param(o.wk, H * kv),
                              .wv = param(o.wv, H * kv),
                              .wo = param(o.wo, H * H)};
    AttentionGrads<float> ag{.wq = grad(o.wq, H * H),
                             .wk = grad(o.wk, H * kv),
                             .wv = grad(o.wv, H * kv),
                             .wo = grad(o.wo, H * H)};
    attentionBackward<float>(s.n1, ap, attention_, s.attention, dr, dn1, ag);
    rmsNormBackward<float>(s.x, param(o.norm1, H), s.invRms1, dn1, T, H, dx,
                           grad(o.norm1, H));
    for (std::int64_t i = 0; i < T * H; ++i)
      dx[i] += dr[i];
  }
  embeddingBackward<float>(ids, dx, V, H, grad(embed_, V * H));

  // Replicated dense parameters: the gradients summed over ranks (each
  // rank's loss entered with weight 1/N: their mean).
  comm_.allReduceSum(std::span<float>(batchGrad_));
  for (std::size_t i = 0; i < batchGrad_.size(); ++i)
    state_.denseGrad[i] += batchGrad_[i];
  return result;
}
