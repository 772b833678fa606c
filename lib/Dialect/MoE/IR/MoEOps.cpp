//===- MoEOps.cpp - moe dialect operations and their verifiers -----------===//
//
// Every verifier names the operand and dimension at fault, because model IR
// is usually generated and the author needs to find the bad value quickly.
//
//===----------------------------------------------------------------------===//

#include "laer/Dialect/MoE/IR/MoEOps.h"
#include "laer/Dialect/Utils/OperandChecker.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace laer::moe;
using laer::ElementKind;
using laer::OperandChecker;

namespace {

/// T * k, or dynamic when either factor is.
int64_t rowsFor(int64_t tokens, int64_t topK) {
  if (ShapedType::isDynamic(tokens) || ShapedType::isDynamic(topK))
    return ShapedType::kDynamic;
  return tokens * topK;
}

/// Verifies a gated FFN weight triple: w1, w3 `[E, H, F]` and w2 `[E, F, H]`
/// (with `expertDims` = 1 the leading E dimension is absent).
LogicalResult verifyFfnWeights(OperandChecker &check, Value w1, Value w3,
                               Value w2, StringRef n1, StringRef n3,
                               StringRef n2, int64_t expertDims) {
  int64_t rank = 2 + expertDims;
  unsigned h = expertDims, f = expertDims + 1;
  if (failed(check.tensor(w1, n1, rank, ElementKind::Float)) ||
      failed(check.tensor(w3, n3, rank, ElementKind::Float)) ||
      failed(check.tensor(w2, n2, rank, ElementKind::Float)) ||
      failed(check.sameElementType(w1, n1, w3, n3)) ||
      failed(check.sameElementType(w1, n1, w2, n2)))
    return failure();
  if (expertDims == 1 && (failed(check.sameDim(w1, n1, 0, w3, n3, 0, "E")) ||
                          failed(check.sameDim(w1, n1, 0, w2, n2, 0, "E"))))
    return failure();
  if (failed(check.sameDim(w1, n1, h, w3, n3, h, "H")) ||
      failed(check.sameDim(w1, n1, f, w3, n3, f, "F")) ||
      failed(check.sameDim(w1, n1, f, w2, n2, h, "F")) ||
      failed(check.sameDim(w1, n1, h, w2, n2, f, "H")))
    return failure();
  // The runtime stores the three matrices of every expert together
  // (3 x E x H x F elements, sharded over the ranks): that count must fit
  // a 64-bit size too, not only each tensor's.
  return check.elementsTimesFit(w1, n1, 3, "the experts' parameters");
}

/// The number of router losses `op` returns or takes gradients of.
template <typename Op> unsigned routerLossCount(Op op) {
  return (op.getAuxLoss() ? 1 : 0) + (op.getZLoss() ? 1 : 0);
}

/// The router losses: each a scalar float tensor, as many as asked for.
LogicalResult verifyRouterLosses(Operation *op, ValueRange losses,
                                 unsigned expected, StringRef what) {
  if (losses.size() != expected)
    return op->emitOpError()
           << "has " << losses.size() << " " << what << " but its aux_loss/"
           << "z_loss attributes ask for " << expected;
  for (auto [i, loss] : llvm::enumerate(losses)) {
    auto type = dyn_cast<RankedTensorType>(loss.getType());
    if (!type || type.getRank() != 0 || !isa<FloatType>(type.getElementType()))
      return op->emitOpError()
             << what << " #" << i << " must be a scalar float tensor, got "
             << loss.getType();
  }
  return success();
}

/// The routing variants of a moe.router, moe.layer or moe.layer_grad with
/// E experts (static) and top-k `topK`.
template <typename Op>
LogicalResult verifyRoutingVariant(Op op, OperandChecker &check,
                                   int64_t numExperts, int64_t topK) {
  // The router's expert indices are i32 (and so are the runtime's).
  if (!ShapedType::isDynamic(numExperts) &&
      numExperts > std::numeric_limits<int32_t>::max())
    return op.emitOpError() << "E = " << numExperts
                            << " experts: the router's i32 expert indices "
                               "hold at most "
                            << std::numeric_limits<int32_t>::max();
  if (std::optional<APFloat> scale = op.getScale()) {
    double c = scale->convertToDouble();
    if (!std::isfinite(c) || c <= 0)
      return op.emitOpError() << "scale must be finite and positive, got " << c;
  }
  std::optional<uint64_t> groups = op.getGroups();
  if (groups.has_value() != op.getTopGroups().has_value() ||
      groups.has_value() != static_cast<bool>(op.getGroupScoreAttr()))
    return op.emitOpError() << "groups, top_groups and group_score go together";
  if (groups) {
    int64_t g = static_cast<int64_t>(*groups);
    int64_t m = static_cast<int64_t>(*op.getTopGroups());
    if (g < 1 || numExperts % g != 0)
      return op.emitOpError()
             << "groups = " << g
             << " must be positive and divide E = " << numExperts;
    if (m < 1 || m > g)
      return op.emitOpError()
             << "top_groups = " << m << " must be in [1, groups = " << g << "]";
    if (topK > m * (numExperts / g))
      return op.emitOpError()
             << "top_k = " << topK << " exceeds the " << m << " x "
             << numExperts / g << " experts of the chosen groups";
    if (*op.getGroupScore() == GroupScore::TopTwoSum && numExperts / g < 2)
      return op.emitOpError() << "group_score<top2_sum> needs groups of at "
                                 "least two experts, got "
                              << numExperts / g;
  }
  Value bias = op.getSelectionBias();
  if (bias &&
      (failed(check.tensor(bias, "selection_bias", 1, ElementKind::Float)) ||
       failed(check.dimIs(bias, "selection_bias", 0, numExperts,
                          "the number of experts E"))))
    return failure();
  if (std::optional<APFloat> rate = op.getBiasUpdateRate()) {
    double u = rate->convertToDouble();
    if (!bias)
      return op.emitOpError() << "bias_update_rate needs a selection_bias";
    if (!std::isfinite(u) || u < 0)
      return op.emitOpError()
             << "bias_update_rate must be finite and >= 0, got " << u;
  }
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

int64_t RouterOp::getNumExperts() { return OperandChecker::dim(getGate(), 1); }

LogicalResult RouterOp::verify() {
  OperandChecker check(*this);
  Value input = getInput(), gate = getGate();
  Value indices = getIndices(), weights = getWeights();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.tensor(gate, "gate", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 1, gate, "gate", 0, "H")) ||
      failed(check.dimIs(gate, "gate", 1, ShapedType::kDynamic,
                         "the number of experts E", /*requireStatic=*/true)) ||
      failed(check.topK(getTopK(), getNumExperts())))
    return failure();
  int64_t k = getTopK();
  if (failed(check.tensor(indices, "indices", 2, ElementKind::Integer)) ||
      failed(check.sameDim(input, "input", 0, indices, "indices", 0, "T")) ||
      failed(check.dimIs(indices, "indices", 1, k, "top_k")) ||
      failed(check.tensor(weights, "weights", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 0, weights, "weights", 0, "T")) ||
      failed(check.dimIs(weights, "weights", 1, k, "top_k")))
    return failure();
  if (failed(verifyRoutingVariant(*this, check, getNumExperts(), k)))
    return failure();
  return verifyRouterLosses(*this, getLosses(), routerLossCount(*this),
                            "loss results");
}

//===----------------------------------------------------------------------===//
// RouterGradOp
//===----------------------------------------------------------------------===//

LogicalResult RouterGradOp::verify() {
  OperandChecker check(*this);
  Value input = getInput(), gate = getGate();
  Value indices = getIndices(), dWeights = getDWeights();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.tensor(gate, "gate", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 1, gate, "gate", 0, "H")) ||
      failed(check.tensor(indices, "indices", 2, ElementKind::Integer)) ||
      failed(check.sameDim(input, "input", 0, indices, "indices", 0, "T")) ||
      failed(check.tensor(dWeights, "d_weights", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 0, dWeights, "d_weights", 0, "T")) ||
      failed(check.sameDim(indices, "indices", 1, dWeights, "d_weights", 1,
                           "top_k")))
    return failure();
  if (getDInput().getType() != input.getType())
    return emitOpError() << "'d_input' has type " << getDInput().getType()
                         << " but 'input' has " << input.getType();
  if (getDGate().getType() != gate.getType())
    return emitOpError() << "'d_gate' has type " << getDGate().getType()
                         << " but 'gate' has " << gate.getType();
  if (std::optional<APFloat> scale = getScale())
    if (!std::isfinite(scale->convertToDouble()) ||
        scale->convertToDouble() <= 0)
      return emitOpError() << "scale must be finite and positive, got "
                           << scale->convertToDouble();
  return verifyRouterLosses(*this, getDLosses(), routerLossCount(*this),
                            "loss gradients");
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  OperandChecker check(*this);
  Value input = getInput(), indices = getIndices();
  Value rows = getRows(), counts = getCounts();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.tensor(indices, "indices", 2, ElementKind::Integer)) ||
      failed(check.sameDim(input, "input", 0, indices, "indices", 0, "T")) ||
      failed(check.tensor(rows, "rows", 2, ElementKind::Float)) ||
      failed(check.sameElementType(input, "input", rows, "rows")) ||
      failed(check.sameDim(input, "input", 1, rows, "rows", 1, "H")) ||
      failed(check.dimIs(rows, "rows", 0,
                         rowsFor(OperandChecker::dim(input, 0),
                                 OperandChecker::dim(indices, 1)),
                         "tokens * top_k")) ||
      failed(check.tensor(counts, "counts", 1, ElementKind::Integer)) ||
      failed(check.dimIs(counts, "counts", 0, ShapedType::kDynamic,
                         "the number of experts E", /*requireStatic=*/true)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertsOp::verify() {
  OperandChecker check(*this);
  Value rows = getRows(), counts = getCounts(), output = getOutput();
  Value w1 = getW1(), w3 = getW3(), w2 = getW2();
  if (failed(check.tensor(rows, "rows", 2, ElementKind::Float)) ||
      failed(check.tensor(counts, "counts", 1, ElementKind::Integer)) ||
      failed(check.dimIs(counts, "counts", 0, ShapedType::kDynamic,
                         "the number of experts E", /*requireStatic=*/true)) ||
      failed(verifyFfnWeights(check, w1, w3, w2, "w1", "w3", "w2",
                              /*expertDims=*/1)) ||
      failed(check.sameDim(counts, "counts", 0, w1, "w1", 0, "E")) ||
      failed(check.sameDim(rows, "rows", 1, w1, "w1", 1, "H")) ||
      failed(check.sameElementType(rows, "rows", w1, "w1")) ||
      failed(check.tensor(output, "output", 2, ElementKind::Float)) ||
      failed(check.sameElementType(rows, "rows", output, "output")) ||
      failed(check.sameDim(rows, "rows", 0, output, "output", 0, "rows")) ||
      failed(check.sameDim(rows, "rows", 1, output, "output", 1, "H")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  OperandChecker check(*this);
  Value rows = getRows(), indices = getIndices(), weights = getWeights();
  Value output = getOutput();
  if (failed(check.tensor(rows, "rows", 2, ElementKind::Float)) ||
      failed(check.tensor(indices, "indices", 2, ElementKind::Integer)) ||
      failed(check.tensor(weights, "weights", 2, ElementKind::Float)) ||
      failed(
          check.sameDim(indices, "indices", 0, weights, "weights", 0, "T")) ||
      failed(check.sameDim(indices, "indices", 1, weights, "weights", 1,
                           "top_k")) ||
      failed(check.dimIs(rows, "rows", 0,
                         rowsFor(OperandChecker::dim(indices, 0),
                                 OperandChecker::dim(indices, 1)),
                         "tokens * top_k")) ||
      failed(check.tensor(output, "output", 2, ElementKind::Float)) ||
      failed(check.sameElementType(rows, "rows", output, "output")) ||
      failed(check.sameDim(indices, "indices", 0, output, "output", 0, "T")) ||
      failed(check.sameDim(rows, "rows", 1, output, "output", 1, "H")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

LogicalResult LayerOp::verify() {
  OperandChecker check(*this);
  Value input = getInput(), gate = getGate(), output = getOutput();
  Value w1 = getW1(), w3 = getW3(), w2 = getW2();
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(check.tensor(gate, "gate", 2, ElementKind::Float)) ||
      failed(check.sameDim(input, "input", 1, gate, "gate", 0, "H")) ||
      failed(check.dimIs(gate, "gate", 1, ShapedType::kDynamic,
                         "the number of experts E", /*requireStatic=*/true)) ||
      failed(check.topK(getTopK(), OperandChecker::dim(gate, 1))) ||
      failed(verifyFfnWeights(check, w1, w3, w2, "w1", "w3", "w2",
                              /*expertDims=*/1)) ||
      failed(check.sameDim(gate, "gate", 1, w1, "w1", 0, "E")) ||
      failed(check.sameDim(input, "input", 1, w1, "w1", 1, "H")) ||
      failed(check.sameElementType(input, "input", w1, "w1")) ||
      failed(check.tensor(output, "output", 2, ElementKind::Float)) ||
      failed(check.sameElementType(input, "input", output, "output")) ||
      failed(check.sameDim(input, "input", 0, output, "output", 0, "T")) ||
      failed(check.sameDim(input, "input", 1, output, "output", 1, "H")) ||
      failed(verifyRoutingVariant(*this, check, OperandChecker::dim(gate, 1),
                                  getTopK())) ||
      failed(verifyRouterLosses(*this, getLosses(), routerLossCount(*this),
                                "loss results")))
    return failure();

  Value s1 = getSharedW1(), s3 = getSharedW3(), s2 = getSharedW2();
  int numShared = (s1 ? 1 : 0) + (s3 ? 1 : 0) + (s2 ? 1 : 0);
  if (numShared == 0 && getSharedGate())
    return emitOpError() << "'shared_gate' needs shared experts";
  if (numShared == 0)
    return success();
  if (numShared != 3)
    return emitOpError() << "shared experts need all three weights "
                            "(shared_w1, shared_w3, shared_w2), got "
                         << numShared;
  if (failed(verifyFfnWeights(check, s1, s3, s2, "shared_w1", "shared_w3",
                              "shared_w2", /*expertDims=*/0)) ||
      failed(check.sameDim(input, "input", 1, s1, "shared_w1", 0, "H")) ||
      failed(check.sameElementType(input, "input", s1, "shared_w1")))
    return failure();
  if (Value sharedGate = getSharedGate())
    if (failed(
            check.tensor(sharedGate, "shared_gate", 2, ElementKind::Float)) ||
        failed(check.sameDim(input, "input", 1, sharedGate, "shared_gate", 0,
                             "H")) ||
        failed(check.dimIs(sharedGate, "shared_gate", 1, 1,
                           "one gate per token")) ||
        failed(
            check.sameElementType(input, "input", sharedGate, "shared_gate")))
      return failure();
  return success();
}

LogicalResult LayerOp::buildGradients(OpBuilder &b, ValueRange grads,
                                      SmallVectorImpl<Value> &out) {
  if (hasSharedExperts())
    return emitOpError("laer-autodiff: run moe-split-shared-experts first "
                       "(it moves the shared experts into a dense.swiglu, "
                       "which has a gradient)");
  SmallVector<Value> dLosses(grads.drop_front());
  for (auto [i, d] : llvm::enumerate(dLosses))
    if (!d)
      return emitOpError() << "laer-autodiff: loss result #" << i
                           << " does not reach the loss";
  auto grad = LayerGradOp::create(
      b, getLoc(),
      TypeRange{getInput().getType(), getGate().getType(), getW1().getType(),
                getW3().getType(), getW2().getType()},
      getInput(), getGate(), getW1(), getW3(), getW2(), grads[0],
      getSelectionBias(), dLosses, getTopKAttr(), getScoreAttr(),
      getRenormalizeAttr(), getActivationAttr(), getScaleAttr(),
      getGroupsAttr(), getTopGroupsAttr(), getGroupScoreAttr(),
      getBiasUpdateRateAttr(), getAuxLossAttr(), getZLossAttr());
  // Operand order: input, gate, w1, w3, w2, then the optional ones (shared
  // experts, shared gate, selection bias), which get no gradient.
  out.assign(grad->result_begin(), grad->result_end());
  out.resize(getNumOperands());
  return success();
}

LogicalResult LayerGradOp::verify() {
  OperandChecker check(*this);
  if (failed(verifyRoutingVariant(
          *this, check, OperandChecker::dim(getGate(), 1), getTopK())) ||
      failed(verifyRouterLosses(*this, getDLosses(), routerLossCount(*this),
                                "loss gradients")))
    return failure();
  if (getDOutput().getType() != getInput().getType())
    return emitOpError() << "'d_output' must have the input's type "
                         << getInput().getType();
  Value operands[] = {getInput(), getGate(), getW1(), getW3(), getW2()};
  for (auto [index, pair] :
       llvm::enumerate(llvm::zip(operands, getResults()))) {
    auto [value, grad] = pair;
    if (value.getType() != grad.getType())
      return emitOpError() << "gradient result #" << index << " has type "
                           << grad.getType() << " but what it differentiates "
                           << "has " << value.getType();
  }
  return success();
}

void laer::moe::copyRoutingAttributes(Operation *from, Operation *to,
                                      bool variants, bool losses) {
  static constexpr StringLiteral kVariant[] = {
      "scale", "groups", "top_groups", "group_score", "bias_update_rate"};
  static constexpr StringLiteral kLosses[] = {"aux_loss", "z_loss"};
  auto copy = [&](ArrayRef<StringLiteral> names) {
    for (StringLiteral name : names)
      if (Attribute value = from->getAttr(name))
        to->setAttr(name, value);
  };
  if (variants)
    copy(kVariant);
  if (losses)
    copy(kLosses);
}

#define GET_OP_CLASSES
#include "laer/Dialect/MoE/IR/MoEOps.cpp.inc"
