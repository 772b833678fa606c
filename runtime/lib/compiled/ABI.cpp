//===- ABI.cpp - the C ABI compiled training programs call ----------------===//

#include "laer/runtime/compiled/ABI.h"
#include "laer/runtime/AdamW.h"
#include "laer/runtime/Limits.h"
#include "laer/runtime/compiled/CompiledModel.h"
#include "laer/runtime/cpu/DenseKernels.h"
#include "laer/runtime/cpu/Kernels.h"
#include "laer/runtime/cpu/LatentAttentionKernels.h"

#include <algorithm>
#include <limits>

using namespace laer::rt;
using namespace laer::rt::cpu;

namespace {

CompiledModel &model(void *ctx) { return *static_cast<CompiledModel *>(ctx); }

/// `layer` as an index of the model's MoE layers, which it must be.
int moeIndex(CompiledModel &m, std::int64_t layer) {
  m.moeConfig(layer); // validates the index
  return static_cast<int>(layer);
}

/// Checks that `ref` is dense with the given sizes (-1: any) and returns
/// its elements.
template <typename T, int Rank>
std::span<T> check(CompiledModel &m, const char *function, const char *name,
                   const MemRef<T, Rank> *ref,
                   std::initializer_list<std::int64_t> sizes, int layer = -1) {
  if (!ref || !ref->aligned)
    fail(m.where(layer), function, ": ", name, " is null");
  // Sizes are whole and their product fits before any is compared or
  // multiplied (a descriptor is data the program passes).
  std::size_t elements = 1;
  for (int d = 0; d < Rank; ++d) {
    if (ref->sizes[d] < 0)
      fail(m.where(layer), function, ": ", name, " has negative size ",
           ref->sizes[d], " in dimension ", d);
    elements = checkedMultiply(elements, ref->sizes[d], m.where(layer),
                               std::string(function) + ": " + name);
  }
  int i = 0;
  for (std::int64_t size : sizes) {
    // Only -1 means any: an expected size computed past 2^63 is negative.
    if (size < -1)
      fail(m.where(layer), function, ": the expected size of ", name,
           " in dimension ", i, " overflowed (", size, ")");
    if (size >= 0 && ref->sizes[i] != size)
      fail(m.where(layer), function, ": ", name, " has size ", ref->sizes[i],
           " in dimension ", i, ", expected ", size);
    ++i;
  }
  if (!ref->contiguous())
    fail(m.where(layer), function, ": ", name, " is not dense row-major");
  return ref->span();
}

std::span<const float> in(std::span<float> s) { return s; }

/// The element of a 0-d memref.
float &scalar(CompiledModel &m, const char *function, const char *name,
              F32x0 *ref, std::int64_t layer) {
  if (!ref || !ref->aligned)
    fail(m.where(static_cast<int>(layer)), function, ": ", name, " is null");
  return ref->value();
}

} // namespace

extern "C" {

void _mlir_ciface_laerrt_declare_model(void *ctx, std::int64_t vocab,
                                       std::int64_t sequence) {
  model(ctx).declareModel(vocab, sequence);
}

void _mlir_ciface_laerrt_declare_dense(void *ctx, std::int64_t index,
                                       std::int64_t d0, std::int64_t d1,
                                       std::int64_t fanIn) {
  std::vector<std::int64_t> shape{d0};
  if (d1 != 0)
    shape.push_back(d1);
  model(ctx).declareDense(index, std::move(shape), fanIn);
}

void _mlir_ciface_laerrt_name_dense(void *ctx, std::int64_t index,
                                    std::int64_t transposed, I8x1 *name) {
  CompiledModel &m = model(ctx);
  std::span<std::int8_t> text =
      check(m, "laerrt_name_dense", "name", name, {-1});
  m.nameDense(index, {std::string(text.begin(), text.end()), transposed != 0});
}

void _mlir_ciface_laerrt_name_moe(void *ctx, std::int64_t layer,
                                  std::int64_t part, std::int64_t transposed,
                                  I8x1 *name) {
  CompiledModel &m = model(ctx);
  std::span<std::int8_t> text =
      check(m, "laerrt_name_moe", "name", name, {-1}, static_cast<int>(layer));
  m.nameMoE(layer, part,
            {std::string(text.begin(), text.end()), transposed != 0});
}

void _mlir_ciface_laerrt_declare_moe(
    void *ctx, std::int64_t layer, std::int64_t experts, std::int64_t hidden,
    std::int64_t ffn, std::int64_t topK, std::int64_t score,
    std::int64_t renormalize, double scale, std::int64_t groups,
    std::int64_t topGroups, std::int64_t groupScore, std::int64_t selectionBias,
    double biasUpdateRate, std::int64_t auxLoss, std::int64_t zLoss,
    std::int64_t activation, std::int64_t ranks, std::int64_t slots) {
  CompiledModel &m = model(ctx);
  auto flag = [](std::int64_t v) { return v == 0 || v == 1; };
  auto inInt = [](std::int64_t v) {
    return v >= 1 && v <= std::numeric_limits<int>::max();
  };
  if (score < 0 || score > 1 || activation < 0 || activation > 2 ||
      groupScore < 0 || groupScore > 1 || auxLoss < 0 || auxLoss > 3 ||
      !flag(renormalize) || !flag(selectionBias) || !flag(zLoss) ||
      !inInt(experts) || !inInt(topK) || !inInt(groups) || !inInt(topGroups))
    fail(m.where(static_cast<int>(layer)),
         "laerrt_declare_moe: an enum, flag or count is out of range (score ",
         score, ", activation ", activation, ", group score ", groupScore,
         ", aux loss ", auxLoss, ", experts ", experts, ", top_k ", topK,
         ", groups ", groups, ", top groups ", topGroups, ")");
  MoELayerConfig config;
  config.shape = {hidden, ffn};
  config.numExperts = static_cast<int>(experts);
  config.topK = static_cast<int>(topK);
  RoutingConfig &routing = config.routing;
  routing.score = static_cast<ScoreFunction>(score);
  routing.renormalize = renormalize != 0;
  routing.scale = scale;
  routing.groups = static_cast<int>(groups);
  routing.topGroups = static_cast<int>(topGroups);
  routing.groupScore = static_cast<GroupScore>(groupScore);
  routing.selectionBias = selectionBias != 0;
  config.biasUpdateRate = biasUpdateRate;
  config.losses.aux = static_cast<AuxLoss>(auxLoss);
  config.losses.z = zLoss != 0;
  config.activation = static_cast<Activation>(activation);
  // 0 slots and 0 ranks: the runtime chooses (a program compiled without
  // --ranks).
  ErrorContext where = m.where(static_cast<int>(
      std::clamp<std::int64_t>(layer, -1, std::numeric_limits<int>::max())));
  config.slotsPerRank = checkedInt(slots, 0, kMaxSlotsPerRank, where,
                                   "laerrt_declare_moe: slots per rank");
  m.declareMoE(
      layer, config,
      checkedInt(ranks, 0, kMaxRanks, where, "laerrt_declare_moe: ranks"));
}

void _mlir_ciface_laerrt_dense_parameter(F32x1 *result, void *ctx,
                                         std::int64_t index) {
  std::span<float> param = model(ctx).denseParameter(index);
  *result = F32x1{param.data(),
                  param.data(),
                  0,
                  {static_cast<std::int64_t>(param.size())},
                  {1}};
}

void _mlir_ciface_laerrt_embedding(void *ctx, F32x2 *table, I32x1 *ids,
                                   F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_embedding";
  auto t = check(m, f, "table", table, {-1, -1});
  std::int64_t V = table->sizes[0], H = table->sizes[1];
  auto i = check(m, f, "ids", ids, {-1});
  auto o = check(m, f, "output", out, {ids->sizes[0], H});
  embeddingForward<float>(in(t), i, V, H, o);
}

void _mlir_ciface_laerrt_embedding_grad(void *ctx, I32x1 *ids, F32x2 *dOut,
                                        F32x2 *dTable) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_embedding_grad";
  auto i = check(m, f, "ids", ids, {-1});
  auto dt = check(m, f, "d_table", dTable, {-1, -1});
  std::int64_t V = dTable->sizes[0], H = dTable->sizes[1];
  auto d = check(m, f, "d_output", dOut, {ids->sizes[0], H});
  std::fill(dt.begin(), dt.end(), 0.0f);
  embeddingBackward<float>(i, in(d), V, H, dt);
}

void _mlir_ciface_laerrt_rms_norm(void *ctx, F32x2 *x, F32x1 *weight,
                                  double epsilon, F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_rms_norm";
  auto xs = check(m, f, "input", x, {-1, -1});
  std::int64_t T = x->sizes[0], H = x->sizes[1];
  auto w = check(m, f, "weight", weight, {H});
  auto o = check(m, f, "output", out, {T, H});
  std::vector<float> invRms(T);
  rmsNormForward<float>(in(xs), in(w), T, H, epsilon, o, invRms);
}

void _mlir_ciface_laerrt_rms_norm_grad(void *ctx, F32x2 *x, F32x1 *weight,
                                       F32x2 *dOut, double epsilon, F32x2 *dX,
                                       F32x1 *dWeight) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_rms_norm_grad";
  auto xs = check(m, f, "input", x, {-1, -1});
  std::int64_t T = x->sizes[0], H = x->sizes[1];
  auto w = check(m, f, "weight", weight, {H});
  auto d = check(m, f, "d_output", dOut, {T, H});
  auto dx = check(m, f, "d_input", dX, {T, H});
  auto dw = check(m, f, "d_weight", dWeight, {H});
  std::vector<float> invRms(T), scratch(T * H);
  rmsNormForward<float>(in(xs), in(w), T, H, epsilon, scratch, invRms);
  std::fill(dw.begin(), dw.end(), 0.0f);
  rmsNormBackward<float>(in(xs), in(w), invRms, in(d), T, H, dx, dw);
}

namespace {

/// An optional vector operand: empty when absent (a memref of size 0),
/// else of one of the lengths `allowed`.
std::span<float> optionalVector(CompiledModel &m, const char *f,
                                const char *name, F32x1 *ref,
                                std::initializer_list<std::int64_t> allowed) {
  if (!ref || ref->sizes[0] == 0)
    return {};
  std::span<float> v = check(m, f, name, ref, {-1});
  for (std::int64_t length : allowed)
    if (ref->sizes[0] == length)
      return v;
  fail(m.where(), f, ": ", name, " has ", ref->sizes[0],
       " elements, which fits no form of it");
}

/// The checked operands every attention function takes.
struct AttentionOperands {
  AttentionShape shape;
  std::span<float> x;
  AttentionParams<float> params;
};

AttentionOperands checkAttention(CompiledModel &m, const char *f, F32x2 *x,
                                 F32x2 *wq, F32x2 *wk, F32x2 *wv, F32x2 *wo,
                                 F32x1 *bq, F32x1 *bk, F32x1 *bv, F32x1 *qNorm,
                                 F32x1 *kNorm, std::int64_t heads,
                                 std::int64_t kvHeads, std::int64_t sequence,
                                 double ropeTheta, double qkNormEpsilon) {
  AttentionOperands a;
  a.x = check(m, f, "input", x, {-1, -1});
  std::int64_t H = x->sizes[1];
  auto q = check(m, f, "wq", wq, {H, -1});
  AttentionShape &shape = a.shape;
  shape.tokens = x->sizes[0];
  shape.hidden = H;
  shape.heads = heads;
  shape.kvHeads = kvHeads;
  shape.sequenceLength = sequence;
  shape.ropeTheta = ropeTheta;
  std::int64_t qWidth = wq->sizes[1];
  if (heads <= 0 || kvHeads <= 0 || sequence <= 0 || qWidth % heads != 0 ||
      heads % kvHeads != 0 || shape.tokens % sequence != 0)
    fail(m.where(), f, ": ", heads, " heads, ", kvHeads, " KV heads, ",
         shape.tokens, " tokens in sequences of ", sequence,
         " and Q projection width ", qWidth, " do not fit together");
  shape.headDim = qWidth / heads;
  std::int64_t kv = shape.kvWidth(), d = shape.headSize();
  AttentionParams<float> &p = a.params;
  p.wq = q;
  p.wk = check(m, f, "wk", wk, {H, kv});
  p.wv = check(m, f, "wv", wv, {H, kv});
  p.wo = check(m, f, "wo", wo, {qWidth, H});
  p.bq = optionalVector(m, f, "bq", bq, {qWidth});
  p.bk = optionalVector(m, f, "bk", bk, {kv});
  p.bv = optionalVector(m, f, "bv", bv, {kv});
  p.qNorm = optionalVector(m, f, "q_norm", qNorm, {d, qWidth});
  p.kNorm = optionalVector(m, f, "k_norm", kNorm, {d, kv});
  if (!p.qNorm.empty() && !(qkNormEpsilon > 0))
    fail(m.where(), f, ": QK-norm epsilon ", qkNormEpsilon, " must be > 0");
  shape.qkNormEpsilon = qkNormEpsilon;
  return a;
}

/// A gradient of an optional parameter: given exactly when the parameter
/// is, with its size.
extern "C++" template <int Rank>
std::span<float> optionalGrad(CompiledModel &m, const char *f, const char *name,
                              MemRef<float, Rank> *ref,
                              std::span<const float> param) {
  std::int64_t size = 1;
  for (int i = 0; i < Rank; ++i)
    size *= ref ? ref->sizes[i] : 0;
  if (size != static_cast<std::int64_t>(param.size()))
    fail(m.where(), f, ": ", name, " has ", size, " elements, expected ",
         param.size());
  if (size == 0)
    return {};
  std::span<float> g = check(m, f, name, ref, {});
  std::fill(g.begin(), g.end(), 0.0f);
  return g;
}

} // namespace

void _mlir_ciface_laerrt_attention(void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wk,
                                   F32x2 *wv, F32x2 *wo, F32x1 *bq, F32x1 *bk,
                                   F32x1 *bv, F32x1 *qNorm, F32x1 *kNorm,
                                   std::int64_t heads, std::int64_t kvHeads,
                                   std::int64_t sequence, double ropeTheta,
                                   double qkNormEpsilon, F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_attention";
  AttentionOperands a =
      checkAttention(m, f, x, wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm, heads,
                     kvHeads, sequence, ropeTheta, qkNormEpsilon);
  auto y = check(m, f, "output", out, {x->sizes[0], x->sizes[1]});
  AttentionSaved<float> saved;
  attentionForward<float>(in(a.x), a.params, a.shape, y, saved);
}

void _mlir_ciface_laerrt_attention_grad(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wk, F32x2 *wv, F32x2 *wo, F32x1 *bq,
    F32x1 *bk, F32x1 *bv, F32x1 *qNorm, F32x1 *kNorm, F32x2 *dOut,
    std::int64_t heads, std::int64_t kvHeads, std::int64_t sequence,
    double ropeTheta, double qkNormEpsilon, F32x2 *dX, F32x2 *dWq, F32x2 *dWk,
    F32x2 *dWv, F32x2 *dWo, F32x1 *dBq, F32x1 *dBk, F32x1 *dBv, F32x1 *dQNorm,
    F32x1 *dKNorm) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_attention_grad";
  AttentionOperands a =
      checkAttention(m, f, x, wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm, heads,
                     kvHeads, sequence, ropeTheta, qkNormEpsilon);
  std::int64_t T = x->sizes[0], H = x->sizes[1], kv = a.shape.kvWidth();
  std::int64_t qWidth = a.shape.qWidth();
  auto d = check(m, f, "d_output", dOut, {T, H});
  auto dx = check(m, f, "d_input", dX, {T, H});
  AttentionGrads<float> grads;
  grads.wq = check(m, f, "d_wq", dWq, {H, qWidth});
  grads.wk = check(m, f, "d_wk", dWk, {H, kv});
  grads.wv = check(m, f, "d_wv", dWv, {H, kv});
  grads.wo = check(m, f, "d_wo", dWo, {qWidth, H});
  for (std::span<float> g : {grads.wq, grads.wk, grads.wv, grads.wo})
    std::fill(g.begin(), g.end(), 0.0f);
  const AttentionParams<float> &p = a.params;
  grads.bq = optionalGrad(m, f, "d_bq", dBq, p.bq);
  grads.bk = optionalGrad(m, f, "d_bk", dBk, p.bk);
  grads.bv = optionalGrad(m, f, "d_bv", dBv, p.bv);
  grads.qNorm = optionalGrad(m, f, "d_q_norm", dQNorm, p.qNorm);
  grads.kNorm = optionalGrad(m, f, "d_k_norm", dKNorm, p.kNorm);
  AttentionSaved<float> saved;
  std::vector<float> y(T * H);
  attentionForward<float>(in(a.x), p, a.shape, y, saved);
  attentionBackward<float>(in(a.x), p, a.shape, saved, in(d), dx, grads);
}

namespace {

/// An optional matrix operand or gradient: empty when absent (a memref of
/// size 0), else of the given sizes.
std::span<float> optionalMatrix(CompiledModel &m, const char *f,
                                const char *name, F32x2 *ref, std::int64_t rows,
                                std::int64_t columns) {
  if (!ref || ref->sizes[0] * ref->sizes[1] == 0)
    return {};
  return check(m, f, name, ref, {rows, columns});
}

/// The checked operands of latent_attention and its gradient.
struct LatentAttentionOperands {
  LatentAttentionShape shape;
  std::span<float> x;
  LatentAttentionParams<float> params;
  std::int64_t qRank = 0, kvRank = 0;
};

LatentAttentionOperands
checkLatentAttention(CompiledModel &m, const char *f, F32x2 *x, F32x2 *wq,
                     F32x2 *wqA, F32x1 *qANorm, F32x2 *wqB, F32x2 *wkvA,
                     F32x1 *kvANorm, F32x2 *wkvB, F32x2 *wo, std::int64_t heads,
                     std::int64_t nope, std::int64_t rope, std::int64_t value,
                     std::int64_t sequence, double ropeTheta,
                     double softmaxScale, double epsilon, double yarnFactor,
                     std::int64_t yarnOriginal, double betaFast,
                     double betaSlow, double attentionFactor) {
  LatentAttentionOperands a;
  a.x = check(m, f, "input", x, {-1, -1});
  LatentAttentionShape &s = a.shape;
  s.tokens = x->sizes[0];
  s.hidden = x->sizes[1];
  s.heads = heads;
  s.nopeDim = nope;
  s.ropeDim = rope;
  s.valueDim = value;
  s.sequenceLength = sequence;
  s.ropeTheta = ropeTheta;
  s.softmaxScale = softmaxScale;
  s.epsilon = epsilon;
  // Each head count and size at most 2^20, so their products (the
  // projections' widths) fit.
  constexpr std::int64_t kMaxHeadSize = std::int64_t{1} << 20;
  if (heads < 1 || nope < 0 || rope < 2 || rope % 2 || value < 1 ||
      heads > kMaxHeadSize || nope > kMaxHeadSize || rope > kMaxHeadSize ||
      value > kMaxHeadSize || sequence < 1 || s.tokens % sequence ||
      !(softmaxScale > 0) || !(epsilon > 0))
    fail(m.where(), f, ": ", heads, " heads of nope/rope/v sizes ", nope, "/",
         rope, "/", value, ", ", s.tokens, " tokens in sequences of ", sequence,
         ", softmax scale ", softmaxScale, " and epsilon ", epsilon,
         " do not fit together");
  if (yarnFactor != 0)
    s.yarn = YarnScaling{yarnFactor, yarnOriginal, betaFast, betaSlow,
                         attentionFactor};
  std::int64_t H = s.hidden;
  auto kvNorm = check(m, f, "kv_a_norm", kvANorm, {-1});
  a.kvRank = kvANorm->sizes[0];
  LatentAttentionParams<float> &p = a.params;
  p.kvANorm = kvNorm;
  p.wq = optionalMatrix(m, f, "wq", wq, H, s.qWidth());
  if (p.wq.empty()) {
    auto qNorm = check(m, f, "q_a_norm", qANorm, {-1});
    a.qRank = qANorm->sizes[0];
    p.qANorm = qNorm;
    p.wqA = check(m, f, "wq_a", wqA, {H, a.qRank});
    p.wqB = check(m, f, "wq_b", wqB, {a.qRank, s.qWidth()});
  }
  p.wkvA = check(m, f, "wkv_a", wkvA, {H, a.kvRank + rope});
  p.wkvB = check(m, f, "wkv_b", wkvB, {a.kvRank, s.kvWidth()});
  p.wo = check(m, f, "wo", wo, {heads * value, H});
  return a;
}

} // namespace

void _mlir_ciface_laerrt_latent_attention(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wqA, F32x1 *qANorm, F32x2 *wqB,
    F32x2 *wkvA, F32x1 *kvANorm, F32x2 *wkvB, F32x2 *wo, std::int64_t heads,
    std::int64_t nope, std::int64_t rope, std::int64_t value,
    std::int64_t sequence, double ropeTheta, double softmaxScale,
    double epsilon, double yarnFactor, std::int64_t yarnOriginal,
    double betaFast, double betaSlow, double attentionFactor, F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_latent_attention";
  LatentAttentionOperands a = checkLatentAttention(
      m, f, x, wq, wqA, qANorm, wqB, wkvA, kvANorm, wkvB, wo, heads, nope, rope,
      value, sequence, ropeTheta, softmaxScale, epsilon, yarnFactor,
      yarnOriginal, betaFast, betaSlow, attentionFactor);
  auto y = check(m, f, "output", out, {x->sizes[0], x->sizes[1]});
  LatentAttentionSaved<float> saved;
  latentAttentionForward<float>(in(a.x), a.params, a.shape, y, saved);
}

void _mlir_ciface_laerrt_latent_attention_grad(
    void *ctx, F32x2 *x, F32x2 *wq, F32x2 *wqA, F32x1 *qANorm, F32x2 *wqB,
    F32x2 *wkvA, F32x1 *kvANorm, F32x2 *wkvB, F32x2 *wo, F32x2 *dOut,
    std::int64_t heads, std::int64_t nope, std::int64_t rope,
    std::int64_t value, std::int64_t sequence, double ropeTheta,
    double softmaxScale, double epsilon, double yarnFactor,
    std::int64_t yarnOriginal, double betaFast, double betaSlow,
    double attentionFactor, F32x2 *dX, F32x2 *dWq, F32x2 *dWqA, F32x1 *dQANorm,
    F32x2 *dWqB, F32x2 *dWkvA, F32x1 *dKvANorm, F32x2 *dWkvB, F32x2 *dWo) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_latent_attention_grad";
  LatentAttentionOperands a = checkLatentAttention(
      m, f, x, wq, wqA, qANorm, wqB, wkvA, kvANorm, wkvB, wo, heads, nope, rope,
      value, sequence, ropeTheta, softmaxScale, epsilon, yarnFactor,
      yarnOriginal, betaFast, betaSlow, attentionFactor);
  std::int64_t T = x->sizes[0], H = x->sizes[1];
  auto d = check(m, f, "d_output", dOut, {T, H});
  auto dx = check(m, f, "d_input", dX, {T, H});
  const LatentAttentionParams<float> &p = a.params;
  LatentAttentionGrads<float> g;
  g.wq = optionalGrad(m, f, "d_wq", dWq, p.wq);
  g.wqA = optionalGrad(m, f, "d_wq_a", dWqA, p.wqA);
  g.qANorm = optionalGrad(m, f, "d_q_a_norm", dQANorm, p.qANorm);
  g.wqB = optionalGrad(m, f, "d_wq_b", dWqB, p.wqB);
  g.wkvA = optionalGrad(m, f, "d_wkv_a", dWkvA, p.wkvA);
  g.kvANorm = optionalGrad(m, f, "d_kv_a_norm", dKvANorm, p.kvANorm);
  g.wkvB = optionalGrad(m, f, "d_wkv_b", dWkvB, p.wkvB);
  g.wo = optionalGrad(m, f, "d_wo", dWo, p.wo);
  LatentAttentionSaved<float> saved;
  std::vector<float> y(T * H);
  latentAttentionForward<float>(in(a.x), p, a.shape, y, saved);
  latentAttentionBackward<float>(in(a.x), p, a.shape, saved, in(d), dx, g);
}

namespace {

/// The operands linear and linear_grad share: x [T, K] and weight [K, N]
/// ([N, K] when transposed).
struct LinearOperands {
  std::span<float> x, weight;
  std::int64_t T, K, N;
  bool transposed;
};

LinearOperands checkLinear(CompiledModel &m, const char *f, F32x2 *x,
                           F32x2 *weight, std::int64_t transposed) {
  if (transposed != 0 && transposed != 1)
    fail(m.where(), f, ": transposed is ", transposed, ", expected 0 or 1");
  LinearOperands l;
  l.transposed = transposed != 0;
  l.x = check(m, f, "input", x, {-1, -1});
  l.T = x->sizes[0];
  l.K = x->sizes[1];
  if (l.transposed) {
    l.weight = check(m, f, "weight", weight, {-1, l.K});
    l.N = weight->sizes[0];
  } else {
    l.weight = check(m, f, "weight", weight, {l.K, -1});
    l.N = weight->sizes[1];
  }
  return l;
}

} // namespace

void _mlir_ciface_laerrt_linear(void *ctx, F32x2 *x, F32x2 *weight,
                                std::int64_t transposed, F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_linear";
  LinearOperands l = checkLinear(m, f, x, weight, transposed);
  auto y = check(m, f, "output", out, {l.T, l.N});
  gemmT<float>(false, l.transposed, l.T, l.N, l.K, 1, l.x.data(),
               l.weight.data(), 0, y.data());
}

void _mlir_ciface_laerrt_linear_grad(void *ctx, F32x2 *x, F32x2 *weight,
                                     F32x2 *dOut, std::int64_t transposed,
                                     F32x2 *dX, F32x2 *dWeight) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_linear_grad";
  LinearOperands l = checkLinear(m, f, x, weight, transposed);
  auto d = check(m, f, "d_output", dOut, {l.T, l.N});
  auto dx = check(m, f, "d_input", dX, {l.T, l.K});
  if (l.transposed) {
    // y = x w^T: dw [N, K] = d^T x.
    auto dw = check(m, f, "d_weight", dWeight, {l.N, l.K});
    gemmT<float>(true, false, l.N, l.K, l.T, 1, d.data(), l.x.data(), 0,
                 dw.data());
  } else {
    auto dw = check(m, f, "d_weight", dWeight, {l.K, l.N});
    gemmT<float>(true, false, l.K, l.N, l.T, 1, l.x.data(), d.data(), 0,
                 dw.data());
  }
  // dx = d w^T, or d w when w is stored transposed.
  gemmT<float>(false, !l.transposed, l.T, l.K, l.N, 1, d.data(),
               l.weight.data(), 0, dx.data());
}

namespace {

/// The operands swiglu and swiglu_grad share: x [T, H], w1 and w3 [H, S],
/// w2 [S, H].
struct SwiGluOperands {
  std::span<float> x, w1, w3, w2;
  std::int64_t T, H, S;
};

SwiGluOperands checkSwiGlu(CompiledModel &m, const char *f, F32x2 *x, F32x2 *w1,
                           F32x2 *w3, F32x2 *w2) {
  SwiGluOperands o;
  o.x = check(m, f, "input", x, {-1, -1});
  o.T = x->sizes[0];
  o.H = x->sizes[1];
  o.w1 = check(m, f, "w1", w1, {o.H, -1});
  o.S = w1->sizes[1];
  o.w3 = check(m, f, "w3", w3, {o.H, o.S});
  o.w2 = check(m, f, "w2", w2, {o.S, o.H});
  return o;
}

/// An optional [H, 1] gate (or its gradient): empty when absent (a memref
/// of size 0).
std::span<float> optionalGate(CompiledModel &m, const char *f, const char *name,
                              F32x2 *gate, std::int64_t H) {
  if (!gate || gate->sizes[0] * gate->sizes[1] == 0)
    return {};
  return check(m, f, name, gate, {H, 1});
}

} // namespace

void _mlir_ciface_laerrt_swiglu(void *ctx, F32x2 *x, F32x2 *w1, F32x2 *w3,
                                F32x2 *w2, F32x2 *gate, F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_swiglu";
  SwiGluOperands o = checkSwiGlu(m, f, x, w1, w3, w2);
  auto y = check(m, f, "output", out, {o.T, o.H});
  SwiGluSaved saved;
  gatedFfnForward<float>(in(o.x), o.w1.data(), o.w3.data(), o.w2.data(), o.T,
                         o.H, o.S, Activation::Silu, y, saved);
  if (std::span<float> g = optionalGate(m, f, "gate", gate, o.H); !g.empty()) {
    std::vector<float> gateValues(o.T);
    sigmoidGateForward<float>(in(o.x), in(g), o.T, o.H, y, gateValues);
  }
}

void _mlir_ciface_laerrt_swiglu_grad(void *ctx, F32x2 *x, F32x2 *w1, F32x2 *w3,
                                     F32x2 *w2, F32x2 *gate, F32x2 *dOut,
                                     F32x2 *dX, F32x2 *dW1, F32x2 *dW3,
                                     F32x2 *dW2, F32x2 *dGate) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_swiglu_grad";
  SwiGluOperands o = checkSwiGlu(m, f, x, w1, w3, w2);
  auto d = check(m, f, "d_output", dOut, {o.T, o.H});
  auto dx = check(m, f, "d_input", dX, {o.T, o.H});
  auto d1 = check(m, f, "d_w1", dW1, {o.H, o.S});
  auto d3 = check(m, f, "d_w3", dW3, {o.H, o.S});
  auto d2 = check(m, f, "d_w2", dW2, {o.S, o.H});
  std::span<float> g = optionalGate(m, f, "gate", gate, o.H);
  std::span<float> dg =
      optionalGate(m, f, "d_gate", dGate, g.empty() ? 0 : o.H);
  if (g.empty() != dg.empty())
    fail(m.where(), f, ": gate and d_gate must both be given or both empty");
  // Recomputes the projections of the forward (like the other gradients).
  std::vector<float> y(o.T * o.H);
  SwiGluSaved saved;
  gatedFfnForward<float>(in(o.x), o.w1.data(), o.w3.data(), o.w2.data(), o.T,
                         o.H, o.S, Activation::Silu, y, saved);
  // With a gate, the FFN's output gradient is the gated one scaled back,
  // and d_input gets the gate's share after the FFN's backward writes it.
  std::span<const float> dUngated = in(d);
  std::vector<float> dUngatedBuffer, dxGate;
  if (!g.empty()) {
    std::vector<float> gated = y, gateValues(o.T);
    sigmoidGateForward<float>(in(o.x), in(g), o.T, o.H, gated, gateValues);
    dUngatedBuffer.resize(o.T * o.H);
    dxGate.assign(o.T * o.H, 0.0f);
    std::fill(dg.begin(), dg.end(), 0.0f);
    sigmoidGateBackward<float>(in(o.x), in(g), y, gateValues, in(d), o.T, o.H,
                               dUngatedBuffer, dxGate, dg);
    dUngated = dUngatedBuffer;
  }
  gatedFfnBackward<float>(in(o.x), o.w1.data(), o.w3.data(), o.w2.data(), saved,
                          dUngated, o.T, o.H, o.S, Activation::Silu, dx,
                          d1.data(), d3.data(), d2.data(),
                          /*accumulate=*/false);
  for (std::size_t i = 0; i < dxGate.size(); ++i)
    dx[i] += dxGate[i];
}

void _mlir_ciface_laerrt_cross_entropy(void *ctx, F32x2 *logits, I32x1 *targets,
                                       F32x0 *loss) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_cross_entropy";
  auto l = check(m, f, "logits", logits, {-1, -1});
  std::int64_t T = logits->sizes[0], V = logits->sizes[1];
  auto t = check(m, f, "targets", targets, {T});
  std::vector<float> probs(T * V);
  loss->value() = crossEntropyForward<float>(in(l), t, T, V, probs);
}

void _mlir_ciface_laerrt_cross_entropy_grad(void *ctx, F32x2 *logits,
                                            I32x1 *targets, F32x0 *dLoss,
                                            F32x2 *dLogits) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_cross_entropy_grad";
  auto l = check(m, f, "logits", logits, {-1, -1});
  std::int64_t T = logits->sizes[0], V = logits->sizes[1];
  auto t = check(m, f, "targets", targets, {T});
  auto dl = check(m, f, "d_logits", dLogits, {T, V});
  std::vector<float> probs(T * V);
  crossEntropyForward<float>(in(l), t, T, V, probs);
  crossEntropyBackward<float>(probs, t, T, V, dLoss->value(), dl);
}

void _mlir_ciface_laerrt_moe_forward(void *ctx, std::int64_t layer, F32x2 *x,
                                     F32x2 *out) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_moe_forward";
  int l = static_cast<int>(layer);
  std::int64_t H = m.moeConfig(layer).shape.hidden;
  auto xs = check(m, f, "input", x, {-1, H}, l);
  auto y = check(m, f, "output", out, {x->sizes[0], H}, l);
  std::vector<float> result =
      m.moeBackend().forward(l, in(xs), m.step(), m.hook());
  std::copy(result.begin(), result.end(), y.begin());
}

void _mlir_ciface_laerrt_moe_backward(void *ctx, std::int64_t layer,
                                      F32x2 *dOut, F32x2 *dX) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_moe_backward";
  int l = static_cast<int>(layer);
  std::int64_t H = m.moeConfig(layer).shape.hidden;
  auto d = check(m, f, "d_output", dOut, {-1, H}, l);
  auto dx = check(m, f, "d_input", dX, {dOut->sizes[0], H}, l);
  std::vector<float> result = m.moeBackend().backward(l, in(d));
  std::copy(result.begin(), result.end(), dx.begin());
}

void _mlir_ciface_laerrt_moe_aux_loss(void *ctx, std::int64_t layer,
                                      F32x0 *out) {
  CompiledModel &m = model(ctx);
  scalar(m, "laerrt_moe_aux_loss", "output", out, layer) =
      static_cast<float>(m.moeBackend().routerLosses(moeIndex(m, layer)).aux);
}

void _mlir_ciface_laerrt_moe_z_loss(void *ctx, std::int64_t layer, F32x0 *out) {
  CompiledModel &m = model(ctx);
  scalar(m, "laerrt_moe_z_loss", "output", out, layer) =
      static_cast<float>(m.moeBackend().routerLosses(moeIndex(m, layer)).z);
}

void _mlir_ciface_laerrt_moe_aux_loss_grad(void *ctx, std::int64_t layer,
                                           F32x0 *dAux) {
  CompiledModel &m = model(ctx);
  m.moeBackend().setAuxLossGradient(
      moeIndex(m, layer),
      scalar(m, "laerrt_moe_aux_loss_grad", "d_aux", dAux, layer));
}

void _mlir_ciface_laerrt_moe_z_loss_grad(void *ctx, std::int64_t layer,
                                         F32x0 *dZ) {
  CompiledModel &m = model(ctx);
  m.moeBackend().setZLossGradient(
      moeIndex(m, layer),
      scalar(m, "laerrt_moe_z_loss_grad", "d_z", dZ, layer));
}

namespace {

/// A [T, H] memref of layer `layer`'s tokens, zeroed: the phases add their
/// chunk's share to it.
std::span<float> tokenOutput(CompiledModel &m, const char *function,
                             std::int64_t layer, F32x2 *ref) {
  FsepMoELayer &moe = m.moeLayer(layer);
  auto out =
      check(m, function, "output", ref,
            {moe.tokens(), moe.config().shape.hidden}, static_cast<int>(layer));
  std::fill(out.begin(), out.end(), 0.0f);
  return out;
}

/// A chunk index or count of an fsep op of layer `layer`: in range before
/// the narrowing (the layer then checks it against its own chunks).
int chunkOf(void *ctx, std::int64_t layer, std::int64_t chunk) {
  return checkedInt(chunk, 0, kMaxTokenChunks,
                    model(ctx).where(static_cast<int>(std::clamp<std::int64_t>(
                        layer, -1, std::numeric_limits<int>::max()))),
                    "an fsep op's chunk");
}

} // namespace

void _mlir_ciface_laerrt_fsep_route(void *ctx, std::int64_t layer, F32x2 *x) {
  CompiledModel &m = model(ctx);
  FsepMoELayer &moe = m.moeLayer(layer);
  auto xs = check(m, "laerrt_fsep_route", "input", x,
                  {-1, moe.config().shape.hidden}, static_cast<int>(layer));
  moe.route(in(xs), m.step());
}

void _mlir_ciface_laerrt_fsep_relayout(void *ctx, std::int64_t layer) {
  CompiledModel &m = model(ctx);
  m.moeLayer(layer).relayout(m.hook());
}

void _mlir_ciface_laerrt_fsep_restore(void *ctx, std::int64_t layer) {
  model(ctx).moeLayer(layer).startRestore();
}

void _mlir_ciface_laerrt_fsep_restore_wait(void *ctx, std::int64_t layer) {
  model(ctx).moeLayer(layer).finishRestore();
}

void _mlir_ciface_laerrt_fsep_dispatch(void *ctx, std::int64_t layer,
                                       std::int64_t chunk,
                                       std::int64_t chunks) {
  model(ctx).moeLayer(layer).startDispatch(chunkOf(ctx, layer, chunk),
                                           chunkOf(ctx, layer, chunks));
}

void _mlir_ciface_laerrt_fsep_dispatch_wait(void *ctx, std::int64_t layer,
                                            std::int64_t chunk) {
  model(ctx).moeLayer(layer).finishDispatch(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_expert_compute(void *ctx, std::int64_t layer,
                                             std::int64_t chunk) {
  model(ctx).moeLayer(layer).computeExperts(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_combine(void *ctx, std::int64_t layer,
                                      std::int64_t chunk) {
  model(ctx).moeLayer(layer).startCombine(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_combine_wait(void *ctx, std::int64_t layer,
                                           std::int64_t chunk, F32x2 *out) {
  CompiledModel &m = model(ctx);
  std::span<float> o = tokenOutput(m, "laerrt_fsep_combine_wait", layer, out);
  m.moeLayer(layer).finishCombine(chunkOf(ctx, layer, chunk), o);
}

void _mlir_ciface_laerrt_fsep_combine_backward(void *ctx, std::int64_t layer,
                                               std::int64_t chunk,
                                               F32x2 *dOut) {
  CompiledModel &m = model(ctx);
  FsepMoELayer &moe = m.moeLayer(layer);
  auto d =
      check(m, "laerrt_fsep_combine_backward", "d_output", dOut,
            {moe.tokens(), moe.config().shape.hidden}, static_cast<int>(layer));
  moe.startCombineBackward(chunkOf(ctx, layer, chunk), in(d));
}

void _mlir_ciface_laerrt_fsep_combine_backward_wait(void *ctx,
                                                    std::int64_t layer,
                                                    std::int64_t chunk) {
  model(ctx).moeLayer(layer).finishCombineBackward(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_expert_compute_backward(void *ctx,
                                                      std::int64_t layer,
                                                      std::int64_t chunk) {
  model(ctx).moeLayer(layer).computeExpertsBackward(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_dispatch_backward(void *ctx, std::int64_t layer,
                                                std::int64_t chunk) {
  model(ctx).moeLayer(layer).startDispatchBackward(chunkOf(ctx, layer, chunk));
}

void _mlir_ciface_laerrt_fsep_dispatch_backward_wait(void *ctx,
                                                     std::int64_t layer,
                                                     std::int64_t chunk,
                                                     F32x2 *dX) {
  CompiledModel &m = model(ctx);
  std::span<float> dx =
      tokenOutput(m, "laerrt_fsep_dispatch_backward_wait", layer, dX);
  m.moeLayer(layer).finishDispatchBackward(chunkOf(ctx, layer, chunk), dx);
}

void _mlir_ciface_laerrt_fsep_grad_reduce(void *ctx, std::int64_t layer) {
  model(ctx).moeLayer(layer).startGradReduce();
}

void _mlir_ciface_laerrt_fsep_grad_reduce_wait(void *ctx, std::int64_t layer) {
  model(ctx).moeLayer(layer).finishGradReduce();
}

void _mlir_ciface_laerrt_fsep_router_backward(void *ctx, std::int64_t layer,
                                              F32x2 *dX) {
  CompiledModel &m = model(ctx);
  std::span<float> dx =
      tokenOutput(m, "laerrt_fsep_router_backward", layer, dX);
  m.moeLayer(layer).routerBackward(dx);
}

void _mlir_ciface_laerrt_allreduce_mean(void *ctx, F32x1 *grad) {
  CompiledModel &m = model(ctx);
  auto g = check(m, "laerrt_allreduce_mean", "gradient", grad, {-1});
  m.comm().allReduceSum(g);
  float scale = 1.0f / static_cast<float>(m.comm().size());
  for (float &value : g)
    value *= scale;
}

// The program's optimizer calls hand the step's gradients to the runtime;
// the training loop applies AdamW once every micro-batch's are in (with
// gradient clipping and accumulation), so a call records, and updates
// nothing yet.
void _mlir_ciface_laerrt_adamw(void *ctx, std::int64_t index, F32x1 *param,
                               F32x1 *grad) {
  CompiledModel &m = model(ctx);
  const char *f = "laerrt_adamw";
  std::span<float> owned = m.denseParameter(index);
  auto p = check(m, f, "parameter", param,
                 {static_cast<std::int64_t>(owned.size())});
  if (p.data() != owned.data())
    fail(m.where(), f, ": parameter ", index,
         " is not the runtime's buffer for it");
  auto g = check(m, f, "gradient", grad, {param->sizes[0]});
  // The (averaged) gradient adds to the state's, as the experts' do.
  std::span<float> kept = m.denseGradient(index);
  for (std::size_t i = 0; i < g.size(); ++i)
    kept[i] += g[i];
}

void _mlir_ciface_laerrt_moe_update(void *ctx, std::int64_t layer) {
  CompiledModel &m = model(ctx);
  // The layer's gradients are in its shards (sums over ranks:
  // TrainingState::moeGradScale makes them the mean at the update).
  m.moeConfig(layer); // validates the index
}

} // extern "C"
