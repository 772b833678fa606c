//===- DenseOps.cpp - dense dialect operations and their verifiers -------===//

#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/Utils/OperandChecker.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace laer::dense;
using laer::ElementKind;
using laer::OperandChecker;

LogicalResult EmbeddingOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getTable(), "table", 2, ElementKind::Float)) ||
      failed(check.tensor(getIds(), "ids", 1, ElementKind::Integer)) ||
      failed(check.tensor(getOutput(), "output", 2, ElementKind::Float)) ||
      failed(check.sameDim(getIds(), "ids", 0, getOutput(), "output", 0, "T")) ||
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
      failed(check.sameElementType(getInput(), "input", getWeight(),
                                   "weight")))
    return failure();
  if (getOutput().getType() != getInput().getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type "
                         << getInput().getType();
  return success();
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
                         "the hidden size", /*requireStatic=*/true)))
    return failure();
  int64_t hidden = OperandChecker::dim(input, 1);
  if (hidden % heads != 0)
    return emitOpError() << "hidden size " << hidden
                         << " is not divisible by heads = " << heads;
  int64_t kvWidth = kvHeads * (hidden / heads);
  int64_t tokens = OperandChecker::dim(input, 0);
  if (!ShapedType::isDynamic(tokens) && tokens % sequence != 0)
    return emitOpError() << tokens << " tokens are not whole sequences of "
                         << sequence;
  struct Weight {
    Value value;
    const char *name;
    int64_t columns;
  };
  for (Weight w : {Weight{getWq(), "wq", hidden}, Weight{getWk(), "wk", kvWidth},
                   Weight{getWv(), "wv", kvWidth}, Weight{getWo(), "wo", hidden}})
    if (failed(check.tensor(w.value, w.name, 2, ElementKind::Float)) ||
        failed(check.dimIs(w.value, w.name, 0, hidden, "the hidden size")) ||
        failed(check.dimIs(w.value, w.name, 1, w.columns,
                           w.columns == hidden ? "the hidden size"
                                               : "kv_heads * head size")) ||
        failed(check.sameElementType(input, "input", w.value, w.name)))
      return failure();
  if (getOutput().getType() != input.getType())
    return emitOpError() << "output type " << getOutput().getType()
                         << " differs from input type " << input.getType();
  return success();
}

LogicalResult LinearOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getInput(), "input", 2, ElementKind::Float)) ||
      failed(check.tensor(getWeight(), "weight", 2, ElementKind::Float)) ||
      failed(check.tensor(getOutput(), "output", 2, ElementKind::Float)) ||
      failed(check.sameDim(getInput(), "input", 1, getWeight(), "weight", 0,
                           "input features")) ||
      failed(check.sameDim(getInput(), "input", 0, getOutput(), "output", 0,
                           "T")) ||
      failed(check.sameDim(getWeight(), "weight", 1, getOutput(), "output", 1,
                           "output features")) ||
      failed(check.sameElementType(getInput(), "input", getWeight(),
                                   "weight")) ||
      failed(check.sameElementType(getInput(), "input", getOutput(),
                                   "output")))
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
  for (auto [value, name] : {std::pair{w1, "w1"}, std::pair{w3, "w3"},
                             std::pair{w2, "w2"}})
    if (failed(check.sameElementType(input, "input", value, name)))
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
      failed(check.sameDim(getLogits(), "logits", 0, getTargets(), "targets",
                           0, "T")) ||
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
      failed(check.sameDim(getDOutput(), "d_output", 1, getDTable(),
                           "d_table", 1, "H")) ||
      failed(check.dimIs(getDTable(), "d_table", 0, ShapedType::kDynamic,
                         "the vocabulary", /*requireStatic=*/true)))
    return failure();
  return success();
}

LogicalResult RMSNormGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  return verifyGradients(*this, {{getInput(), getDInput()},
                                 {getWeight(), getDWeight()}});
}

LogicalResult AttentionGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  return verifyGradients(*this, {{getInput(), getDInput()},
                                 {getWq(), getDWq()},
                                 {getWk(), getDWk()},
                                 {getWv(), getDWv()},
                                 {getWo(), getDWo()}});
}

LogicalResult LinearGradOp::verify() {
  return verifyGradients(*this, {{getInput(), getDInput()},
                                 {getWeight(), getDWeight()}});
}

LogicalResult SwiGluGradOp::verify() {
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  return verifyGradients(*this, {{getInput(), getDInput()},
                                 {getW1(), getDW1()},
                                 {getW3(), getDW3()},
                                 {getW2(), getDW2()}});
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
  auto grad = RMSNormGradOp::create(
      b, getLoc(), getInput().getType(), getWeight().getType(), getInput(),
      getWeight(), grads[0], getEpsilonAttr());
  out.assign({grad.getDInput(), grad.getDWeight()});
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &b, ValueRange grads,
                                          SmallVectorImpl<Value> &out) {
  auto grad = AttentionGradOp::create(
      b, getLoc(),
      TypeRange{getInput().getType(), getWq().getType(), getWk().getType(),
                getWv().getType(), getWo().getType()},
      getInput(), getWq(), getWk(), getWv(), getWo(), grads[0],
      getHeadsAttr(), getKvHeadsAttr(), getSequenceLengthAttr(),
      getRopeThetaAttr());
  out.assign(grad->result_begin(), grad->result_end());
  return success();
}

LogicalResult LinearOp::buildGradients(OpBuilder &b, ValueRange grads,
                                       SmallVectorImpl<Value> &out) {
  auto grad = LinearGradOp::create(b, getLoc(), getInput().getType(),
                                   getWeight().getType(), getInput(),
                                   getWeight(), grads[0]);
  out.assign({grad.getDInput(), grad.getDWeight()});
  return success();
}

LogicalResult SwiGluOp::buildGradients(OpBuilder &b, ValueRange grads,
                                       SmallVectorImpl<Value> &out) {
  auto grad = SwiGluGradOp::create(
      b, getLoc(),
      TypeRange{getInput().getType(), getW1().getType(), getW3().getType(),
                getW2().getType()},
      getInput(), getW1(), getW3(), getW2(), grads[0]);
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
