//===- FSEPOps.cpp - fsep dialect operations and their verifiers ---------===//

#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/Utils/OperandChecker.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"

using namespace mlir;
using namespace laer::fsep;
using laer::ElementKind;
using laer::OperandChecker;

namespace {

/// The value type inside `!fsep.async<T>`, or `type` itself.
Type awaited(Type type) {
  if (auto async = dyn_cast<AsyncType>(type))
    return async.getValueType();
  return type;
}

/// Rules every transfer follows when it runs asynchronously: all results
/// or none are `!fsep.async`; an async result is only used by fsep.wait;
/// and no destination-style op updates one of the transfer's tensor
/// operands in place before the transfer's first wait in the block.
LogicalResult verifyTransfer(Operation *op) {
  unsigned async = 0;
  for (Type type : op->getResultTypes())
    async += isa<AsyncType>(type);
  if (async == 0)
    return success();
  if (async != op->getNumResults())
    return op->emitOpError()
           << "results of a transfer are either all !fsep.async or none; "
           << async << " of " << op->getNumResults() << " are";
  Operation *firstWait = nullptr;
  for (OpResult result : op->getResults()) {
    for (Operation *user : result.getUsers()) {
      if (!isa<WaitOp>(user)) {
        InFlightDiagnostic diag = op->emitOpError()
                                  << "async result #"
                                  << result.getResultNumber() << " is used by '"
                                  << user->getName() << "' before an fsep.wait";
        diag.attachNote(user->getLoc()) << "used here";
        return diag;
      }
      if (user->getBlock() == op->getBlock() &&
          (!firstWait || user->isBeforeInBlock(firstWait)))
        firstWait = user;
    }
  }
  // In-flight reads: the transfer's tensor operands must stay unchanged
  // until it completes.
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<RankedTensorType>(operand.get().getType()))
      continue;
    for (OpOperand &use : operand.get().getUses()) {
      Operation *user = use.getOwner();
      auto dps = dyn_cast<DestinationStyleOpInterface>(user);
      if (!dps || !dps.isDpsInit(&use) || user->getBlock() != op->getBlock() ||
          !op->isBeforeInBlock(user) ||
          (firstWait && firstWait->isBeforeInBlock(user)))
        continue;
      InFlightDiagnostic diag =
          op->emitOpError() << "operand #" << operand.getOperandNumber()
                            << " is still being sent, but '" << user->getName()
                            << "' updates it in place before the fsep.wait";
      diag.attachNote(user->getLoc()) << "updated here";
      return diag;
    }
  }
  return success();
}

/// The gated-FFN weight triple of C slots: w1, w3 [C, H, F], w2 [C, F, H].
LogicalResult verifySlotWeights(OperandChecker &check, Type w1, Type w3,
                                Type w2) {
  if (failed(check.tensor(w1, "w1", 3, ElementKind::Float)) ||
      failed(check.tensor(w3, "w3", 3, ElementKind::Float)) ||
      failed(check.tensor(w2, "w2", 3, ElementKind::Float)) ||
      failed(check.sameElementType(w1, "w1", w3, "w3")) ||
      failed(check.sameElementType(w1, "w1", w2, "w2")) ||
      failed(check.sameDim(w1, "w1", 0, w3, "w3", 0, "C")) ||
      failed(check.sameDim(w1, "w1", 0, w2, "w2", 0, "C")) ||
      failed(check.sameDim(w1, "w1", 1, w3, "w3", 1, "H")) ||
      failed(check.sameDim(w1, "w1", 2, w3, "w3", 2, "F")) ||
      failed(check.sameDim(w1, "w1", 2, w2, "w2", 1, "F")) ||
      failed(check.sameDim(w1, "w1", 1, w2, "w2", 2, "H")))
    return failure();
  return success();
}

/// `chunk` and `chunks` come together, with 0 <= chunk < chunks.
LogicalResult verifyChunk(Operation *op, std::optional<int64_t> chunk,
                          std::optional<int64_t> chunks) {
  if (!chunk && !chunks)
    return success();
  if (!chunk || !chunks)
    return op->emitOpError() << "'chunk' and 'chunks' go together";
  if (*chunks < 1 || *chunk < 0 || *chunk >= *chunks)
    return op->emitOpError()
           << "chunk " << *chunk << " is not in [0, " << *chunks << ")";
  return success();
}

/// Token rows [R, H] and per-slot counts [C]; `slots` is the plan's C when
/// the op has a plan.
LogicalResult verifyRows(OperandChecker &check, Type rows, StringRef name,
                         Type counts, int64_t slots = ShapedType::kDynamic) {
  if (failed(check.tensor(rows, name, 2, ElementKind::Float)) ||
      failed(check.tensor(counts, "slot_counts", 1, ElementKind::Integer)) ||
      failed(check.dimIs(counts, "slot_counts", 0, slots,
                         "the plan's slots per rank")))
    return failure();
  return success();
}

/// indices [T, k] (integer) and, optionally, weights [T, k] (float).
LogicalResult verifyRouting(OperandChecker &check, Type tokens,
                            StringRef tokensName, Type indices,
                            Type weights = {}) {
  if (failed(check.tensor(indices, "indices", 2, ElementKind::Integer)) ||
      failed(check.sameDim(tokens, tokensName, 0, indices, "indices", 0, "T")))
    return failure();
  if (weights &&
      (failed(check.tensor(weights, "weights", 2, ElementKind::Float)) ||
       failed(
           check.sameDim(indices, "indices", 0, weights, "weights", 0, "T")) ||
       failed(check.sameDim(indices, "indices", 1, weights, "weights", 1,
                            "top_k"))))
    return failure();
  return success();
}

} // namespace

LogicalResult LocalCountsOp::verify() {
  OperandChecker check(*this);
  if (failed(check.tensor(getIndices(), "indices", 2, ElementKind::Integer)) ||
      failed(check.tensor(getCounts(), "counts", 1, ElementKind::Integer)) ||
      failed(check.dimIs(getCounts(), "counts", 0, ShapedType::kDynamic,
                         "the number of experts E", /*requireStatic=*/true)))
    return failure();
  return success();
}

LogicalResult RelayoutOp::verify() {
  OperandChecker check(*this);
  if (getLayer() < 0)
    return emitOpError() << "layer must be >= 0, got " << getLayer();
  Value counts = getCounts();
  if (counts &&
      (failed(check.tensor(counts, "counts", 1, ElementKind::Integer)) ||
       failed(check.dimIs(counts, "counts", 0, getPlan().getType().getExperts(),
                          "the plan's experts", /*requireStatic=*/true))))
    return failure();
  return success();
}

LogicalResult RestoreOp::verify() {
  ExpertsType bank = getExperts().getType();
  PlanType plan = getPlan().getType();
  if (bank.getExperts() != plan.getExperts())
    return emitOpError() << "the expert bank has " << bank.getExperts()
                         << " experts but the plan " << plan.getExperts();
  if (bank.getShards() != plan.getRanks())
    return emitOpError() << "the expert bank is sharded over "
                         << bank.getShards() << " ranks but the plan is for "
                         << plan.getRanks();
  OperandChecker check(*this);
  Type w1 = awaited(getW1().getType()), w3 = awaited(getW3().getType()),
       w2 = awaited(getW2().getType());
  if (failed(verifySlotWeights(check, w1, w3, w2)) ||
      failed(check.dimIs(w1, "w1", 0, plan.getSlots(), "the plan's slots")) ||
      failed(check.dimIs(w1, "w1", 1, bank.getHidden(), "the bank's hidden")) ||
      failed(check.dimIs(w1, "w1", 2, bank.getFfn(), "the bank's ffn")))
    return failure();
  if (getElementTypeOrSelf(w1) != bank.getElement())
    return emitOpError() << "restored weights have " << getElementTypeOrSelf(w1)
                         << " elements but the bank stores "
                         << bank.getElement();
  return verifyTransfer(*this);
}

LogicalResult DispatchOp::verify() {
  OperandChecker check(*this);
  Type input = getInput().getType(), rows = awaited(getRows().getType());
  if (failed(check.tensor(input, "input", 2, ElementKind::Float)) ||
      failed(verifyRouting(check, input, "input", getIndices().getType())) ||
      failed(verifyRows(check, rows, "rows", awaited(getSlotCounts().getType()),
                        getPlan().getType().getSlots())) ||
      failed(check.sameElementType(input, "input", rows, "rows")) ||
      failed(check.sameDim(input, "input", 1, rows, "rows", 1, "H")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  return verifyTransfer(*this);
}

LogicalResult ExpertComputeOp::verify() {
  OperandChecker check(*this);
  Type rows = getRows().getType(), w1 = getW1().getType();
  if (failed(verifyRows(check, rows, "rows", getSlotCounts().getType())) ||
      failed(
          verifySlotWeights(check, w1, getW3().getType(), getW2().getType())) ||
      failed(check.sameDim(getSlotCounts(), "slot_counts", 0, getW1(), "w1", 0,
                           "C")) ||
      failed(check.sameDim(rows, "rows", 1, w1, "w1", 1, "H")) ||
      failed(check.sameElementType(rows, "rows", w1, "w1")) ||
      failed(check.sameDim(getRows(), "rows", 0, getOutput(), "output", 0,
                           "rows")) ||
      failed(
          check.sameDim(getRows(), "rows", 1, getOutput(), "output", 1, "H")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  return success();
}

LogicalResult CombineOp::verify() {
  OperandChecker check(*this);
  Type rows = getRows().getType(), output = awaited(getOutput().getType());
  if (failed(check.tensor(rows, "rows", 2, ElementKind::Float)) ||
      failed(check.tensor(output, "output", 2, ElementKind::Float)) ||
      failed(verifyRouting(check, output, "output", getIndices().getType(),
                           getWeights().getType())) ||
      failed(check.sameDim(rows, "rows", 1, output, "output", 1, "H")) ||
      failed(check.sameElementType(rows, "rows", output, "output")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  return verifyTransfer(*this);
}

LogicalResult CombineBackwardOp::verify() {
  OperandChecker check(*this);
  Type dOutput = getDOutput().getType(), rows = getRows().getType();
  Type dRows = awaited(getDRows().getType());
  Type dWeights = awaited(getDWeights().getType());
  if (failed(check.tensor(dOutput, "d_output", 2, ElementKind::Float)) ||
      failed(check.tensor(rows, "rows", 2, ElementKind::Float)) ||
      failed(check.tensor(dRows, "d_rows", 2, ElementKind::Float)) ||
      failed(verifyRouting(check, dOutput, "d_output", getIndices().getType(),
                           getWeights().getType())) ||
      failed(verifyRouting(check, dOutput, "d_output", getIndices().getType(),
                           dWeights)) ||
      failed(check.sameDim(dOutput, "d_output", 1, rows, "rows", 1, "H")) ||
      failed(check.sameDim(rows, "rows", 0, dRows, "d_rows", 0, "rows")) ||
      failed(check.sameDim(rows, "rows", 1, dRows, "d_rows", 1, "H")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  return verifyTransfer(*this);
}

LogicalResult ExpertComputeBackwardOp::verify() {
  OperandChecker check(*this);
  Type rows = getRows().getType(), w1 = getW1().getType();
  Type dw1 = getDW1().getType(), dw3 = getDW3().getType(),
       dw2 = getDW2().getType();
  if (failed(verifyRows(check, rows, "rows", getSlotCounts().getType())) ||
      failed(
          verifySlotWeights(check, w1, getW3().getType(), getW2().getType())) ||
      failed(check.sameDim(rows, "rows", 1, w1, "w1", 1, "H")) ||
      failed(check.sameDim(getRows(), "rows", 0, getDRows(), "d_rows", 0,
                           "rows")) ||
      failed(check.sameDim(getRows(), "rows", 0, getDRowsIn(), "d_rows_in", 0,
                           "rows")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  using Pair = std::tuple<Type, Type, const char *>;
  for (auto [weight, grad, name] :
       {Pair{w1, dw1, "d_w1"}, Pair{getW3().getType(), dw3, "d_w3"},
        Pair{getW2().getType(), dw2, "d_w2"}})
    if (weight != grad)
      return emitOpError() << "'" << name << "' has type " << grad
                           << " but its weight has " << weight;
  return success();
}

LogicalResult DispatchBackwardOp::verify() {
  OperandChecker check(*this);
  Type dRows = getDRows().getType(), dInput = awaited(getDInput().getType());
  if (failed(check.tensor(dRows, "d_rows", 2, ElementKind::Float)) ||
      failed(check.tensor(dInput, "d_input", 2, ElementKind::Float)) ||
      failed(verifyRouting(check, dInput, "d_input", getIndices().getType())) ||
      failed(check.sameDim(dRows, "d_rows", 1, dInput, "d_input", 1, "H")) ||
      failed(verifyChunk(*this, getChunk(), getChunks())))
    return failure();
  return verifyTransfer(*this);
}

LogicalResult GradReduceOp::verify() {
  ExpertsType bank = getExperts().getType();
  PlanType plan = getPlan().getType();
  if (bank.getExperts() != plan.getExperts() ||
      bank.getShards() != plan.getRanks())
    return emitOpError() << "the expert bank (" << bank.getExperts()
                         << " experts over " << bank.getShards()
                         << " ranks) does not match the plan ("
                         << plan.getExperts() << " experts, " << plan.getRanks()
                         << " ranks)";
  OperandChecker check(*this);
  Type dw1 = getDW1().getType();
  if (failed(verifySlotWeights(check, dw1, getDW3().getType(),
                               getDW2().getType())) ||
      failed(check.dimIs(dw1, "d_w1", 0, plan.getSlots(), "the plan's slots")))
    return failure();
  Type grad = awaited(getGrad().getType());
  if (grad != bank.getStorageType())
    return emitOpError() << "gradient shards must have type "
                         << bank.getStorageType() << " like the bank's "
                         << "parameter shards, got " << grad;
  return verifyTransfer(*this);
}

#define GET_OP_CLASSES
#include "laer/Dialect/FSEP/IR/FSEPOps.cpp.inc"
