//===- Schedule.cpp - overlap FSEP transfers with computation -------------===//

#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/FSEP/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace laer::fsep {
#define GEN_PASS_DEF_FSEPSCHEDULE
#include "laer/Dialect/FSEP/Transforms/Passes.h.inc"
} // namespace laer::fsep

using namespace mlir;
using namespace laer::fsep;

namespace {

/// The op of `block` that is or contains `op`.
Operation *inBlock(Block *block, Operation *op) {
  return block->findAncestorOpInBlock(*op);
}

/// Turns a synchronous transfer into an asynchronous one in place: each
/// result becomes `!fsep.async<T>` and gets an `fsep.wait` right before its
/// first use in the block (before the terminator if it has none), which
/// then stands for the value.
void makeAsync(Operation *transfer) {
  Block *block = transfer->getBlock();
  OpBuilder b(transfer->getContext());
  // Parameter traffic gets a stream of its own beside the token traffic.
  bool parameters = isa<RestoreOp, GradReduceOp>(transfer);
  transfer->setAttr("fsep.stream",
                    b.getStringAttr(parameters ? "params" : "tokens"));
  for (OpResult result : transfer->getResults()) {
    if (isa<AsyncType>(result.getType()))
      continue;
    Operation *first = block->getTerminator();
    for (Operation *user : result.getUsers())
      if (Operation *local = inBlock(block, user);
          local && local->isBeforeInBlock(first))
        first = local;
    Type valueType = result.getType();
    result.setType(AsyncType::get(transfer->getContext(), valueType));
    b.setInsertionPoint(first);
    auto wait = WaitOp::create(b, transfer->getLoc(), valueType, result);
    result.replaceAllUsesExcept(wait.getValue(), wait);
  }
}

/// The earliest user of `value` in `block` of type OpTy.
template <typename OpTy> OpTy firstUser(Value value, Block *block) {
  OpTy first;
  for (Operation *user : value.getUsers())
    if (auto op = dyn_cast<OpTy>(user);
        op && op->getBlock() == block && (!first || op->isBeforeInBlock(first)))
      first = op;
  return first;
}

/// Ops of type OpTy using `plan`, by chunk index (unchunked ops last).
template <typename OpTy> SmallVector<OpTy> chunkedUsers(Value plan) {
  SmallVector<OpTy> ops;
  for (Operation *user : plan.getUsers())
    if (auto op = dyn_cast<OpTy>(user); op && op.getChunk())
      ops.push_back(op);
  llvm::sort(ops, [](OpTy a, OpTy b) { return *a.getChunk() < *b.getChunk(); });
  return ops;
}

struct FSEPSchedulePass : laer::fsep::impl::FSEPScheduleBase<FSEPSchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (prefetch < 0) {
      func.emitError() << "fsep-schedule: prefetch must be >= 0, got "
                       << prefetch.getValue();
      return signalPassFailure();
    }
    if (func.getBody().empty())
      return;
    Block &body = func.getBody().front();
    prefetchRestores(body);
    pipelineChunks(body);
    fillDispatchWindows(body);
    SmallVector<GradReduceOp> reductions(body.getOps<GradReduceOp>());
    for (GradReduceOp reduce : reductions)
      makeAsync(reduce);
  }

  /// Starts each layer's restore `prefetch` layers early.
  void prefetchRestores(Block &body) {
    SmallVector<RestoreOp> restores(body.getOps<RestoreOp>());
    // The first dispatch of each layer, taken before anything moves.
    SmallVector<DispatchOp> firstDispatch;
    for (RestoreOp restore : restores)
      firstDispatch.push_back(firstUser<DispatchOp>(restore.getPlan(), &body));
    // Restores hoisted to the top keep their layer order.
    Operation *lastAtTop = nullptr;
    for (auto [layer, restore] : llvm::enumerate(restores)) {
      auto relayout = restore.getPlan().getDefiningOp<RelayoutOp>();
      bool movable = prefetch > 0 && relayout &&
                     relayout->getBlock() == &body && !relayout.getCounts() &&
                     isa<BlockArgument>(restore.getExperts());
      if (movable) {
        int64_t anchorLayer = static_cast<int64_t>(layer) - prefetch;
        if (anchorLayer >= 0 && firstDispatch[anchorLayer]) {
          Operation *anchor = firstDispatch[anchorLayer];
          if (anchor->isBeforeInBlock(relayout)) {
            relayout->moveAfter(anchor);
            restore->moveAfter(relayout);
          }
        } else if (anchorLayer < 0) {
          if (lastAtTop)
            relayout->moveAfter(lastAtTop);
          else
            relayout->moveBefore(&body.front());
          restore->moveAfter(relayout);
          lastAtTop = restore;
        }
      }
      makeAsync(restore);
    }
  }

  /// Moves computation that does not need a layer's exchanges (the shared
  /// experts, which read the layer's input) from after the layer to before
  /// the first wait following its first dispatch, so it runs while tokens
  /// (and the restore) are in flight. Only side-effect-free, region-free
  /// non-fsep ops move, up to the next layer's relayout, and only when
  /// every operand is already available at that wait.
  void fillDispatchWindows(Block &body) {
    SmallVector<RelayoutOp> plans(body.getOps<RelayoutOp>());
    for (auto [index, relayout] : llvm::enumerate(plans)) {
      DispatchOp start = firstUser<DispatchOp>(relayout.getPlan(), &body);
      if (!start)
        continue;
      WaitOp window;
      for (Operation *op = start->getNextNode(); op && !window;
           op = op->getNextNode())
        window = dyn_cast<WaitOp>(op);
      if (!window)
        continue;
      Operation *end = index + 1 < plans.size()
                           ? plans[index + 1].getOperation()
                           : body.getTerminator();
      if (end->isBeforeInBlock(window))
        continue;
      auto availableAtWindow = [&](Value operand) {
        Operation *def = operand.getDefiningOp();
        return !def || def->getBlock() != &body || def->isBeforeInBlock(window);
      };
      SmallVector<Operation *> candidates;
      for (Operation *op = window->getNextNode(); op && op != end;
           op = op->getNextNode())
        if (!isa<FSEPDialect>(op->getDialect()) && op->getNumRegions() == 0 &&
            isMemoryEffectFree(op))
          candidates.push_back(op);
      // In order, so a moved op makes its users' operands available.
      for (Operation *op : candidates)
        if (llvm::all_of(op->getOperands(), availableAtWindow))
          op->moveBefore(window);
    }
  }

  /// Software-pipelines chunked dispatches and combines of each plan.
  void pipelineChunks(Block &body) {
    SmallVector<RelayoutOp> plans(body.getOps<RelayoutOp>());
    for (RelayoutOp relayout : plans) {
      Value plan = relayout.getPlan();
      SmallVector<DispatchOp> dispatches = chunkedUsers<DispatchOp>(plan);
      if (dispatches.size() > 1) {
        for (DispatchOp dispatch : dispatches)
          makeAsync(dispatch);
        // Chunk c + 1 is on its way while chunk c computes.
        for (size_t c = 1; c < dispatches.size(); ++c) {
          Operation *previousWait =
              *dispatches[c - 1].getRows().getUsers().begin();
          for (Operation *user : dispatches[c - 1]->getUsers())
            if (user->isBeforeInBlock(previousWait))
              previousWait = user;
          dispatches[c]->moveBefore(previousWait);
        }
      }
      SmallVector<CombineOp> combines = chunkedUsers<CombineOp>(plan);
      if (combines.size() > 1)
        for (CombineOp combine : combines)
          makeAsync(combine);
    }
  }
};

} // namespace
