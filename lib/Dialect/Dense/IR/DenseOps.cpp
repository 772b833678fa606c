//===- DenseOps.cpp - dense dialect operations and their verifiers -------===//

#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/Utils/OperandChecker.h"

#include "mlir/IR/Builders.h"

#include <cmath>

using namespace mlir;
using namespace laer::dense;
using laer::ElementKind;
using laer::OperandChecker;

LogicalResult EmbeddingOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getTable(), "table", 2, ElementKind::Float)) ||
      failed(check.tensor(getIds(), "ids", 1, ElementKind::Integer)) ||
      failed(check.tensor(getOutput(), "output", 2, ElementKind::Float)) ||
      failed(
          check.sameDim(getIds(), "ids", 0, getOutput(), "output", 0, "T")) ||
      failed(check.sameDim(getTable(), "table", 1, getOutput(), "output", 1,
                           "H")) ||
      failed(check.sameElementType(getTable(), "table", getOutput(), "output")))
    return failure();
  return success();
}

LogicalResult RMSNormOp::verify() {
  OperandChecker check(*this);
  if (!(getEpsilon().convertToDouble() > 0))
    return emitOpError() << "epsilon must be > 0, got "
                         << getEpsilon().convertToDouble();
  if (failed(check.tensor(getInput(), "input", 2, ElementKind::Float)) ||
      failed(check.tensor(getWeight(), "weight", 1, ElementKind::Float)) ||
      failed(check.sameDim(getInput(), "input", 1, getWeight(), "weight", 0,
                           "H")) ||
      failed(check.sameElementType(getInput(), "input", getWeight(), "weight")))
    return failure();
  if (getOutput().getType() != getInput().getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type " << getInput().getType();
  return success();
}

SmallVector<Value> AttentionOp::getParameters() {
  SmallVector<Value> params{getWq(), getWk(), getWv(), getWo()};
  for (Value v : {getBq(), getBk(), getBv(), getQNorm(), getKNorm()})
    if (v)
      params.push_back(v);
  return params;
}

LogicalResult AttentionOp::verify() {
  OperandChecker check(*this);
  int64_t heads = getHeads(), kvHeads = getKvHeads();
  int64_t sequence = getSequenceLength();
  if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0)
    return emitOpError() << "heads (" << heads
                         << ") must be a positive multiple of kv_heads ("
                         << kvHeads << ")";
  if (sequence < 1)
    return emitOpError() << "sequence_length must be >= 1, got " << sequence;
  if (!(getRopeTheta().convertToDouble() > 0))
    return emitOpError() << "rope_theta must be > 0";
  Value input = getInput();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.dimIs(input, "input", 1, ShapedType::kDynamic,
                         "the hidden size", /*requireStatic=*/true)) ||
      failed(check.tensor(getWq(), "wq", 2, ElementKind::Float)) ||
      failed(check.dimIs(getWq(), "wq", 1, ShapedType::kDynamic,
                         "heads * head size", /*requireStatic=*/true)))
    return failure();
  int64_t hidden = OperandChecker::dim(input, 1);
  int64_t qWidth = OperandChecker::dim(getWq(), 1);
  if (qWidth % heads != 0 || (qWidth / heads) % 2 != 0)
    return emitOpError() << "wq's width " << qWidth << " is not " << heads
                         << " heads of an even head size";
  int64_t headSize = qWidth / heads;
  int64_t kvWidth = kvHeads * headSize;
  int64_t tokens = OperandChecker::dim(input, 0);
  if (!ShapedType::isDynamic(tokens) && tokens % sequence != 0)
    return emitOpError() << tokens << " tokens are not whole sequences of "
                         << sequence;
  struct Weight {
    Value value;
    const char *name;
    int64_t rows, columns;
    const char *rowsAre, *columnsAre;
  };
  for (Weight w : {Weight{getWq(), "wq", hidden, qWidth, "the hidden size",
                          "heads * head size"},
                   Weight{getWk(), "wk", hidden, kvWidth, "the hidden size",
                          "kv_heads * head size"},
                   Weight{getWv(), "wv", hidden, kvWidth, "the hidden size",
                          "kv_heads * head size"},
                   Weight{getWo(), "wo", qWidth, hidden, "heads * head size",
                          "the hidden size"}})
    if (failed(check.tensor(w.value, w.name, 2, ElementKind::Float)) ||
        failed(check.dimIs(w.value, w.name, 0, w.rows, w.rowsAre)) ||
        failed(check.dimIs(w.value, w.name, 1, w.columns, w.columnsAre)) ||
        failed(check.sameElementType(input, "input", w.value, w.name)))
      return failure();

  // A vector parameter of one of the lengths `allowed`.
  auto vector = [&](Value v, const char *name,
                    std::initializer_list<int64_t> allowed,
                    const char *what) -> LogicalResult {
    if (failed(check.tensor(v, name, 1, ElementKind::Float)) ||
        failed(check.sameElementType(input, "input", v, name)))
      return failure();
    int64_t length = OperandChecker::dim(v, 0);
    if (ShapedType::isDynamic(length))
      return emitOpError() << "'" << name << "' must have a static length";
    for (int64_t a : allowed)
      if (length == a)
        return success();
    return emitOpError() << "'" << name << "' has length " << length
                         << ", expected " << what;
  };
  int numBiases = (getBq() ? 1 : 0) + (getBk() ? 1 : 0) + (getBv() ? 1 : 0);
  if (numBiases != 0 && numBiases != 3)
    return emitOpError() << "biases need all three of bq, bk, bv, got "
                         << numBiases;
  if (numBiases == 3 &&
      (failed(vector(getBq(), "bq", {qWidth}, "heads * head size")) ||
       failed(vector(getBk(), "bk", {kvWidth}, "kv_heads * head size")) ||
       failed(vector(getBv(), "bv", {kvWidth}, "kv_heads * head size"))))
    return failure();
  if (static_cast<bool>(getQNorm()) != static_cast<bool>(getKNorm()))
    return emitOpError() << "QK-norm needs both q_norm and k_norm";
  if (static_cast<bool>(getQNorm()) != getQkNormEpsilon().has_value())
    return emitOpError()
           << "qk_norm_epsilon must be given exactly when q_norm and k_norm "
              "are";
  if (getQNorm()) {
    double epsilon = getQkNormEpsilon()->convertToDouble();
    if (!(epsilon > 0))
      return emitOpError() << "qk_norm_epsilon must be > 0, got " << epsilon;
    if (failed(vector(getQNorm(), "q_norm", {headSize, qWidth},
                      "the head size (per head) or heads * head size "
                      "(whole projection)")) ||
        failed(vector(getKNorm(), "k_norm", {headSize, kvWidth},
                      "the head size (per head) or kv_heads * head size "
                      "(whole projection)")))
      return failure();
  }
  if (getOutput().getType() != input.getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type " << input.getType();
  return success();
}

namespace {

/// The present parameters of a latent attention (or its gradient), in
/// operand order.
template <typename Op> SmallVector<Value> latentAttentionParameters(Op op) {
  SmallVector<Value> params;
  for (Value v : {op.getWq(), op.getWqA(), op.getQANorm(), op.getWqB(),
                  op.getWkvA(), op.getKvANorm(), op.getWkvB(), op.getWo()})
    if (v)
      params.push_back(v);
  return params;
}

/// What dense.latent_attention and its gradient check alike: the head
/// sizes, the query form, every weight's shape and the YaRN attributes.
template <typename Op> LogicalResult verifyLatentAttention(Op op) {
  OperandChecker check(op);
  int64_t heads = op.getHeads(), nope = op.getQkNopeHeadDim(),
          rope = op.getQkRopeHeadDim(), value = op.getVHeadDim();
  if (heads < 1 || nope < 0 || value < 1)
    return op.emitOpError()
           << "heads (" << heads << ") and v_head_dim (" << value
           << ") must be >= 1 and qk_nope_head_dim (" << nope << ") >= 0";
  if (rope < 2 || rope % 2 != 0)
    return op.emitOpError() << "qk_rope_head_dim " << rope
                            << " must be even and >= 2 (the rotation turns "
                               "pairs)";
  // Each at most 2^20 (the runtime's bound): the projections' widths,
  // heads * (nope + rope) and heads * (nope + v), then fit 64 bits.
  constexpr int64_t kMaxHeadSize = int64_t{1} << 20;
  if (heads > kMaxHeadSize || nope > kMaxHeadSize || rope > kMaxHeadSize ||
      value > kMaxHeadSize)
    return op.emitOpError() << "heads and head sizes must be at most "
                            << kMaxHeadSize << ", got " << heads << " heads of "
                            << nope << " + " << rope << " / " << value;
  if (op.getSequenceLength() < 1)
    return op.emitOpError()
           << "sequence_length must be >= 1, got " << op.getSequenceLength();
  if (!(op.getRopeTheta().convertToDouble() > 0))
    return op.emitOpError() << "rope_theta must be > 0";
  double scale = op.getSoftmaxScale().convertToDouble();
  if (!(scale > 0) || !std::isfinite(scale))
    return op.emitOpError() << "softmax_scale must be finite and > 0";
  if (!(op.getEpsilon().convertToDouble() > 0))
    return op.emitOpError() << "epsilon must be > 0";
  int yarn = (op.getYarnFactor() ? 1 : 0) +
             (op.getYarnOriginalMaxPosition() ? 1 : 0) +
             (op.getYarnBetaFast() ? 1 : 0) + (op.getYarnBetaSlow() ? 1 : 0) +
             (op.getYarnAttentionFactor() ? 1 : 0);
  if (yarn != 0 && yarn != 5)
    return op.emitOpError()
           << "YaRN needs all five yarn_* attributes, got " << yarn;
  if (yarn) {
    double factor = op.getYarnFactor()->convertToDouble();
    double fast = op.getYarnBetaFast()->convertToDouble();
    double slow = op.getYarnBetaSlow()->convertToDouble();
    double attention = op.getYarnAttentionFactor()->convertToDouble();
    if (!(factor >= 1) || !std::isfinite(factor))
      return op.emitOpError() << "yarn factor must be finite and >= 1";
    if (*op.getYarnOriginalMaxPosition() < 1)
      return op.emitOpError() << "yarn original_max_position must be >= 1";
    if (!(fast > 0) || !(slow > 0) || !std::isfinite(fast) ||
        !std::isfinite(slow))
      return op.emitOpError() << "yarn beta_fast and beta_slow must be "
                                 "finite and > 0";
    if (!(attention > 0) || !std::isfinite(attention))
      return op.emitOpError() << "yarn attention_factor must be finite and "
                                 "> 0";
  }

  Value input = op.getInput();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.dimIs(input, "input", 1, ShapedType::kDynamic,
                         "the hidden size", /*requireStatic=*/true)))
    return failure();
  int64_t tokens = OperandChecker::dim(input, 0);
  if (!ShapedType::isDynamic(tokens) && tokens % op.getSequenceLength() != 0)
    return op.emitOpError() << tokens << " tokens are not whole sequences of "
                            << op.getSequenceLength();
  int64_t hidden = OperandChecker::dim(input, 1);
  int64_t qWidth = heads * (nope + rope), kvWidth = heads * (nope + value);

  bool direct = static_cast<bool>(op.getWq());
  int lora =
      (op.getWqA() ? 1 : 0) + (op.getQANorm() ? 1 : 0) + (op.getWqB() ? 1 : 0);
  if (direct == (lora == 3) || (lora != 0 && lora != 3))
    return op.emitOpError() << "needs the queries either as q(wq) or as "
                               "q_lora(wq_a, q_a_norm, wq_b)";
  // Rank-2 weights first (the LoRA ranks come from them), then the norms.
  if (failed(check.tensor(op.getWkvA(), "wkv_a", 2, ElementKind::Float)) ||
      failed(check.dimIs(op.getWkvA(), "wkv_a", 1, ShapedType::kDynamic,
                         "kv_lora_rank + qk_rope_head_dim",
                         /*requireStatic=*/true)))
    return failure();
  int64_t kvRank = OperandChecker::dim(op.getWkvA(), 1) - rope;
  if (kvRank < 1)
    return op.emitOpError()
           << "wkv_a's width " << OperandChecker::dim(op.getWkvA(), 1)
           << " leaves no latent (kv_lora_rank) beside qk_rope_head_dim "
           << rope;
  int64_t qRank = 0;
  if (!direct) {
    if (failed(check.tensor(op.getWqA(), "wq_a", 2, ElementKind::Float)) ||
        failed(check.dimIs(op.getWqA(), "wq_a", 1, ShapedType::kDynamic,
                           "q_lora_rank", /*requireStatic=*/true)))
      return failure();
    qRank = OperandChecker::dim(op.getWqA(), 1);
  }
  struct Weight {
    Value value;
    const char *name;
    int64_t rows, columns;
    const char *rowsAre, *columnsAre;
  };
  SmallVector<Weight> weights;
  if (direct)
    weights.push_back({op.getWq(), "wq", hidden, qWidth, "the hidden size",
                       "heads * (qk_nope_head_dim + qk_rope_head_dim)"});
  else
    weights.append(
        {{op.getWqA(), "wq_a", hidden, qRank, "the hidden size", "q_lora_rank"},
         {op.getWqB(), "wq_b", qRank, qWidth, "q_lora_rank",
          "heads * (qk_nope_head_dim + qk_rope_head_dim)"}});
  weights.append({{op.getWkvA(), "wkv_a", hidden, kvRank + rope,
                   "the hidden size", "kv_lora_rank + qk_rope_head_dim"},
                  {op.getWkvB(), "wkv_b", kvRank, kvWidth, "kv_lora_rank",
                   "heads * (qk_nope_head_dim + v_head_dim)"},
                  {op.getWo(), "wo", heads * value, hidden,
                   "heads * v_head_dim", "the hidden size"}});
  for (const Weight &w : weights)
    if (failed(check.tensor(w.value, w.name, 2, ElementKind::Float)) ||
        failed(check.dimIs(w.value, w.name, 0, w.rows, w.rowsAre,
                           /*requireStatic=*/true)) ||
        failed(check.dimIs(w.value, w.name, 1, w.columns, w.columnsAre,
                           /*requireStatic=*/true)) ||
        failed(check.sameElementType(input, "input", w.value, w.name)))
      return failure();
  SmallVector<std::tuple<Value, const char *, int64_t, const char *>> norms{
      {op.getKvANorm(), "kv_a_norm", kvRank, "kv_lora_rank"}};
  if (!direct)
    norms.push_back({op.getQANorm(), "q_a_norm", qRank, "q_lora_rank"});
  for (auto [v, name, length, what] : norms)
    if (failed(check.tensor(v, name, 1, ElementKind::Float)) ||
        failed(check.dimIs(v, name, 0, length, what,
                           /*requireStatic=*/true)) ||
        failed(check.sameElementType(input, "input", v, name)))
      return failure();
  return success();
}

} // namespace

SmallVector<Value> LatentAttentionOp::getParameters() {
  return latentAttentionParameters(*this);
}

LogicalResult LatentAttentionOp::verify() {
  if (failed(verifyLatentAttention(*this)))
    return failure();
  if (getOutput().getType() != getInput().getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type " << getInput().getType();
  return success();
}

LogicalResult LinearOp::verify() {
  OperandChecker check(*this);
  // A transposed weight is [O, I].
  unsigned in = getTransposed() ? 1 : 0, out = 1 - in;
  if (failed(check.tensor(getInput(), "input", 2, ElementKind::Float)) ||
      failed(check.tensor(getWeight(), "weight", 2, ElementKind::Float)) ||
      failed(check.tensor(getOutput(), "output", 2, ElementKind::Float)) ||
      failed(check.sameDim(getInput(), "input", 1, getWeight(), "weight", in,
                           "input features")) ||
      failed(check.sameDim(getInput(), "input", 0, getOutput(), "output", 0,
                           "T")) ||
      failed(check.sameDim(getWeight(), "weight", out, getOutput(), "output", 1,
                           "output features")) ||
      failed(
          check.sameElementType(getInput(), "input", getWeight(), "weight")) ||
      failed(check.sameElementType(getInput(), "input", getOutput(), "output")))
    return failure();
  return success();
}

LogicalResult SwiGluOp::verify() {
  OperandChecker check(*this);
  Value input = getInput(), w1 = getW1(), w3 = getW3(), w2 = getW2();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.tensor(w1, "w1", 2, ElementKind::Float)) ||
      failed(check.tensor(w3, "w3", 2, ElementKind::Float)) ||
      failed(check.tensor(w2, "w2", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 1, w1, "w1", 0, "H")) ||
      failed(check.sameDim(input, "input", 1, w3, "w3", 0, "H")) ||
      failed(check.sameDim(input, "input", 1, w2, "w2", 1, "H")) ||
      failed(check.sameDim(w1, "w1", 1, w3, "w3", 1, "S")) ||
      failed(check.sameDim(w1, "w1", 1, w2, "w2", 0, "S")))
    return failure();
  for (auto [value, name] :
       {std::pair{w1, "w1"}, std::pair{w3, "w3"}, std::pair{w2, "w2"}})
    if (failed(check.sameElementType(input, "input", value, name)))
      return failure();
  if (Value gate = getGate())
    if (failed(check.tensor(gate, "gate", 2, ElementKind::Float)) ||
        failed(check.sameDim(input, "input", 1, gate, "gate", 0, "H")) ||
        failed(check.dimIs(gate, "gate", 1, 1, "one gate per token")) ||
        failed(check.sameElementType(input, "input", gate, "gate")))
      return failure();
  if (getOutput().getType() != input.getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type " << input.getType();
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getLogits(), "logits", 2, ElementKind::Float)) ||
      failed(check.tensor(getTargets(), "targets", 1, ElementKind::Integer)) ||
      failed(check.sameDim(getLogits(), "logits", 0, getTargets(), "targets", 0,
                           "T")) ||
      failed(check.tensor(getLoss(), "loss", 0, ElementKind::Float)) ||
      failed(check.sameElementType(getLogits(), "logits", getLoss(), "loss")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Gradients
//===----------------------------------------------------------------------===//

namespace {
/// Each gradient has the type of what it differentiates.
LogicalResult verifyGradients(Operation *op,
                              ArrayRef<std::pair<Value, Value>> pairs) {
  for (auto [value, gradient] : pairs)
    if (value.getType() != gradient.getType())
      return op->emitOpError()
             << "gradient result #"
             << cast<OpResult>(gradient).getResultNumber() << " has type "
             << gradient.getType() << " but what it differentiates has "
             << value.getType();
  return success();
}
} // namespace

LogicalResult EmbeddingGradOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getIds(), "ids", 1, ElementKind::Integer)) ||
      failed(check.tensor(getDOutput(), "d_output", 2, ElementKind::Float)) ||
      failed(check.tensor(getDTable(), "d_table", 2, ElementKind::Float)) ||
      failed(check.sameDim(getIds(), "ids", 0, getDOutput(), "d_output", 0,
                           "T")) ||
      failed(check.sameDim(getDOutput(), "d_output", 1, getDTable(), "d_table",
                           1, "H")) ||
      failed(check.dimIs(getDTable(), "d_table", 0, ShapedType::kDynamic,
                         "the vocabulary", /*requireStatic=*/true)))
    return failure();
  return success();
}

LogicalResult RMSNormGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  return verifyGradients(
      *this, {{getInput(), getDInput()}, {getWeight(), getDWeight()}});
}

LogicalResult AttentionGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  SmallVector<Value> optional;
  for (Value v : {getBq(), getBk(), getBv(), getQNorm(), getKNorm()})
    if (v)
      optional.push_back(v);
  if (getDOptional().size() != optional.size())
    return emitOpError() << "has " << getDOptional().size()
                         << " gradients of optional parameters for "
                         << optional.size() << " optional parameters";
  SmallVector<std::pair<Value, Value>> pairs{{getInput(), getDInput()},
                                             {getWq(), getDWq()},
                                             {getWk(), getDWk()},
                                             {getWv(), getDWv()},
                                             {getWo(), getDWo()}};
  for (auto [value, gradient] : llvm::zip(optional, getDOptional()))
    pairs.push_back({value, gradient});
  return verifyGradients(*this, pairs);
}

LogicalResult LatentAttentionGradOp::verify() {
  if (failed(verifyLatentAttention(*this)))
    return failure();
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  SmallVector<Value> params = latentAttentionParameters(*this);
  if (getDParameters().size() != params.size())
    return emitOpError() << "has " << getDParameters().size()
                         << " parameter gradients for " << params.size()
                         << " parameters";
  SmallVector<std::pair<Value, Value>> pairs{{getInput(), getDInput()}};
  for (auto [value, gradient] : llvm::zip(params, getDParameters()))
    pairs.push_back({value, gradient});
  return verifyGradients(*this, pairs);
}

LogicalResult LinearGradOp::verify() {
  return verifyGradients(
      *this, {{getInput(), getDInput()}, {getWeight(), getDWeight()}});
}

LogicalResult SwiGluGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  if (static_cast<bool>(getGate()) != static_cast<bool>(getDGate()))
    return emitOpError() << "has a gate gradient exactly when it has a gate";
  SmallVector<std::pair<Value, Value>> pairs{{getInput(), getDInput()},
                                             {getW1(), getDW1()},
                                             {getW3(), getDW3()},
                                             {getW2(), getDW2()}};
  if (getGate())
    pairs.push_back({getGate(), getDGate()});
  return verifyGradients(*this, pairs);
}

LogicalResult CrossEntropyGradOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getDLoss(), "d_loss", 0, ElementKind::Float)))
    return failure();
  return verifyGradients(*this, {{getLogits(), getDLogits()}});
}

LogicalResult EmbeddingOp::buildGradients(OpBuilder &b, ValueRange grads,
                                          SmallVectorImpl<Value> &out) {
  out.assign({EmbeddingGradOp::create(b, getLoc(), getTable().getType(),
                                      getIds(), grads[0]),
              Value()});
  return success();
}

LogicalResult RMSNormOp::buildGradients(OpBuilder &b, ValueRange grads,
                                        SmallVectorImpl<Value> &out) {
  auto grad = RMSNormGradOp::create(b, getLoc(), getInput().getType(),
                                    getWeight().getType(), getInput(),
                                    getWeight(), grads[0], getEpsilonAttr());
  out.assign({grad.getDInput(), grad.getDWeight()});
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &b, ValueRange grads,
                                          SmallVectorImpl<Value> &out) {
  SmallVector<Type> types{getInput().getType()};
  for (Value param : getParameters())
    types.push_back(param.getType());
  auto grad = AttentionGradOp::create(
      b, getLoc(), types, getInput(), getWq(), getWk(), getWv(), getWo(),
      getBq(), getBk(), getBv(), getQNorm(), getKNorm(), grads[0],
      getQkNormEpsilonAttr(), getHeadsAttr(), getKvHeadsAttr(),
      getSequenceLengthAttr(), getRopeThetaAttr());
  // One gradient per operand, in operand order (absent optionals have no
  // operand).
  out.assign(grad->result_begin(), grad->result_end());
  return success();
}

LogicalResult LatentAttentionOp::buildGradients(OpBuilder &b, ValueRange grads,
                                                SmallVectorImpl<Value> &out) {
  SmallVector<Type> types{getInput().getType()};
  for (Value param : getParameters())
    types.push_back(param.getType());
  auto grad = LatentAttentionGradOp::create(
      b, getLoc(), types, getInput(), getWq(), getWqA(), getQANorm(), getWqB(),
      getWkvA(), getKvANorm(), getWkvB(), getWo(), grads[0], getHeadsAttr(),
      getQkNopeHeadDimAttr(), getQkRopeHeadDimAttr(), getVHeadDimAttr(),
      getSequenceLengthAttr(), getRopeThetaAttr(), getSoftmaxScaleAttr(),
      getEpsilonAttr(), getYarnFactorAttr(), getYarnOriginalMaxPositionAttr(),
      getYarnBetaFastAttr(), getYarnBetaSlowAttr(),
      getYarnAttentionFactorAttr());
  // One gradient per operand, in operand order (absent optionals have no
  // operand).
  out.assign(grad->result_begin(), grad->result_end());
  return success();
}

LogicalResult LinearOp::buildGradients(OpBuilder &b, ValueRange grads,
                                       SmallVectorImpl<Value> &out) {
  auto grad = LinearGradOp::create(b, getLoc(), getInput().getType(),
                                   getWeight().getType(), getInput(),
                                   getWeight(), grads[0], getTransposedAttr());
  out.assign({grad.getDInput(), grad.getDWeight()});
  return success();
}

LogicalResult SwiGluOp::buildGradients(OpBuilder &b, ValueRange grads,
                                       SmallVectorImpl<Value> &out) {
  SmallVector<Type> types{getInput().getType(), getW1().getType(),
                          getW3().getType(), getW2().getType()};
  if (getGate())
    types.push_back(getGate().getType());
  auto grad = SwiGluGradOp::create(b, getLoc(), types, getInput(), getW1(),
                                   getW3(), getW2(), grads[0], getGate());
  out.assign(grad->result_begin(), grad->result_end());
  return success();
}

LogicalResult CrossEntropyOp::buildGradients(OpBuilder &b, ValueRange grads,
                                             SmallVectorImpl<Value> &out) {
  out.assign({CrossEntropyGradOp::create(b, getLoc(), getLogits().getType(),
                                         getLogits(), getTargets(), grads[0]),
              Value()});
  return success();
}

#define GET_OP_CLASSES
#include "laer/Dialect/Dense/IR/DenseOps.cpp.inc"
