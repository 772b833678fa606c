//===- FSEPToRuntime.cpp - fsep ops to calls of the runtime's FSEP layer --===//
//
// Each fsep op of a training step becomes one laerrt_fsep_* call on the
// runtime's layer, in program order, so the schedule fsep-schedule built
// (restore beside the router, chunks pipelined, gradient all-to-all
// deferred) is the one that runs. Transfers are a start call; the first
// fsep.wait of a transfer is its finish call. The values between fsep ops
// live in the runtime (`StepBuilder::held`); the layer's outputs that
// dense code reads (combine, dispatch_backward, router_grad's d_input)
// become memrefs.
//
//===----------------------------------------------------------------------===//

#include "StepBuilder.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;
using namespace laer;
using namespace laer::runtime_lowering;

namespace {

/// The op that computed `value`, looking through fsep.wait.
Operation *producer(Value value) {
  Operation *def = value.getDefiningOp();
  if (auto wait = dyn_cast_or_null<fsep::WaitOp>(def))
    return wait.getAsync().getDefiningOp();
  return def;
}

/// The FSEP layer `op` belongs to: the relayout of its plan, or of the
/// restore / router its operands come from.
std::optional<int64_t> layerOf(Operation *op, const ModelInfo &info) {
  if (!op)
    return std::nullopt;
  if (auto relayout = dyn_cast<fsep::RelayoutOp>(op))
    return static_cast<int64_t>(relayout.getLayer());
  if (auto wait = dyn_cast<fsep::WaitOp>(op))
    return layerOf(wait.getAsync().getDefiningOp(), info);
  for (Value operand : op->getOperands())
    if (isa<fsep::PlanType>(operand.getType()))
      return layerOf(operand.getDefiningOp(), info);
  if (auto router = dyn_cast<moe::RouterOp>(op)) {
    auto it = info.routerLayer.find(op);
    if (it == info.routerLayer.end())
      return std::nullopt;
    return it->second;
  }
  if (auto e = dyn_cast<fsep::ExpertComputeOp>(op))
    return layerOf(producer(e.getW1()), info);
  if (auto e = dyn_cast<fsep::ExpertComputeBackwardOp>(op))
    return layerOf(producer(e.getW1()), info);
  if (auto g = dyn_cast<moe::RouterGradOp>(op))
    return layerOf(producer(g.getIndices()), info);
  if (auto c = dyn_cast<fsep::LocalCountsOp>(op))
    return layerOf(producer(c.getIndices()), info);
  return std::nullopt;
}

FsepLayer layerInfo(const ModelInfo &info, int64_t index) {
  for (const FsepLayer &layer : info.fsepLayers)
    if (layer.index == index)
      return layer;
  llvm_unreachable("analyzeFSEPLayers records every relayout's layer");
}

/// chunk and chunks of a chunked fsep op (0 of 1 when unchunked).
template <typename OpTy> std::pair<int64_t, int64_t> chunkOf(OpTy op) {
  return {op.getChunk().value_or(0), op.getChunks().value_or(1)};
}

bool isAsync(Operation *transfer) {
  return llvm::any_of(transfer->getResultTypes(),
                      [](Type t) { return isa<fsep::AsyncType>(t); });
}

} // namespace

LogicalResult laer::runtime_lowering::analyzeFSEPLayers(func::FuncOp grad,
                                                        ModelInfo &info) {
  WalkResult walk = grad.walk([&](fsep::RelayoutOp relayout) -> WalkResult {
    FsepLayer layer{static_cast<int64_t>(relayout.getLayer()), relayout, {}, {}};
    auto counts = relayout.getCounts()
                      ? relayout.getCounts().getDefiningOp<fsep::LocalCountsOp>()
                      : fsep::LocalCountsOp();
    if (!counts)
      return relayout.emitError()
             << kPass << ": the runtime plans a layer from this step's "
                         "fsep.local_counts; a relayout from the load history "
                         "alone is not supported (convert-moe-to-fsep builds "
                         "training steps with counts)";
    layer.router = counts.getIndices().getDefiningOp<moe::RouterOp>();
    if (!layer.router || !isa<BlockArgument>(layer.router.getGate()) ||
        (layer.router.getSelectionBias() &&
         !isa<BlockArgument>(layer.router.getSelectionBias())))
      return relayout.emitError()
             << kPass << ": the counts of this relayout must come from a "
                         "moe.router whose gate (and selection bias) are "
                         "arguments (the runtime owns them)";
    for (Operation *user : relayout.getPlan().getUsers())
      if (auto restore = dyn_cast<fsep::RestoreOp>(user))
        layer.bank = dyn_cast<BlockArgument>(restore.getExperts());
    if (!layer.bank)
      return relayout.emitError()
             << kPass << ": no fsep.restore of an argument's expert bank "
                         "uses this plan";
    for (const FsepLayer &other : info.fsepLayers)
      if (other.index == layer.index)
        return relayout.emitError()
               << kPass << ": layer " << layer.index << " is planned twice";
    info.routerLayer[layer.router] = layer.index;
    info.fsepLayers.push_back(layer);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  grad.walk([&](Operation *op) {
    std::optional<int64_t> index;
    if (isa<fsep::ExpertComputeOp, fsep::GradReduceOp>(op))
      index = layerOf(op, info);
    if (!index)
      return;
    for (FsepLayer &layer : info.fsepLayers) {
      if (layer.index != *index)
        continue;
      if (auto compute = dyn_cast<fsep::ExpertComputeOp>(op))
        layer.activation = compute.getActivation();
      else
        layer.hasGradReduce = true;
    }
  });
  llvm::sort(info.fsepLayers, [](const FsepLayer &a, const FsepLayer &b) {
    return a.index < b.index;
  });
  return success();
}

LogicalResult laer::runtime_lowering::lowerFSEPOp(Operation *op, StepBuilder &s,
                                                  const ModelInfo &info,
                                                  bool &handled) {
  handled = true;
  Location loc = op->getLoc();
  if (auto add = dyn_cast<arith::AddFOp>(op)) {
    bool lhs = s.held.contains(add.getLhs()), rhs = s.held.contains(add.getRhs());
    if (lhs != rhs)
      return op->emitError() << kPass << ": adds a value an FSEP layer keeps "
                                         "in the runtime to a computed tensor";
    handled = lhs;
    if (handled) // chunks' shares of a runtime value: the runtime sums them
      s.held.insert(add.getResult());
    return success();
  }
  if (!isa<fsep::FSEPDialect>(op->getDialect()) &&
      !isa<moe::RouterOp, moe::RouterGradOp>(op)) {
    handled = false;
    for (Value operand : op->getOperands())
      if (s.held.contains(operand))
        return op->emitError() << kPass << ": uses a value an FSEP layer "
                                           "keeps in the runtime";
    return success();
  }

  std::optional<int64_t> index = layerOf(op, info);
  if (!index)
    return op->emitError() << kPass << ": cannot tell which FSEP layer this "
                                       "op belongs to";
  FsepLayer layer = layerInfo(info, *index);
  Value ctx = s.ctx, l = s.i64(loc, *index);
  auto hold = [&](Operation *o) {
    for (Value result : o->getResults())
      s.held.insert(result);
  };
  // A [T, H] memref for `result`, sized like the layer's input.
  auto tokens = [&](Value result) {
    s.allocate(loc, result, layer.router.getInput());
    return s.abi(loc, result);
  };
  // The finish call of `transfer`, writing into `result` where it is a
  // memref the dense code reads.
  auto finish = [&](Operation *transfer, Value result) -> LogicalResult {
    if (auto restore = dyn_cast<fsep::RestoreOp>(transfer)) {
      s.call(loc, "fsep_restore_wait", {ctx, l});
    } else if (auto d = dyn_cast<fsep::DispatchOp>(transfer)) {
      s.call(loc, "fsep_dispatch_wait", {ctx, l, s.i64(loc, chunkOf(d).first)});
    } else if (auto c = dyn_cast<fsep::CombineOp>(transfer)) {
      s.call(loc, "fsep_combine_wait",
             {ctx, l, s.i64(loc, chunkOf(c).first), tokens(result)});
      return success();
    } else if (auto c = dyn_cast<fsep::CombineBackwardOp>(transfer)) {
      s.call(loc, "fsep_combine_backward_wait",
             {ctx, l, s.i64(loc, chunkOf(c).first)});
    } else if (auto d = dyn_cast<fsep::DispatchBackwardOp>(transfer)) {
      s.call(loc, "fsep_dispatch_backward_wait",
             {ctx, l, s.i64(loc, chunkOf(d).first), tokens(result)});
      return success();
    } else if (isa<fsep::GradReduceOp>(transfer)) {
      s.call(loc, "fsep_grad_reduce_wait", {ctx, l});
    } else {
      return transfer->emitError() << kPass << ": not a transfer";
    }
    s.held.insert(result);
    return success();
  };
  // A synchronous transfer finishes where it starts.
  auto startAndMaybeFinish = [&](Operation *transfer) -> LogicalResult {
    if (isAsync(transfer)) {
      hold(transfer);
      return success();
    }
    s.waited.insert(transfer);
    for (Value result : transfer->getResults().drop_front())
      s.held.insert(result);
    return finish(transfer, transfer->getResult(0));
  };

  if (auto router = dyn_cast<moe::RouterOp>(op)) {
    s.call(loc, "fsep_route", {ctx, l, s.abi(loc, router.getInput())});
    s.held.insert(router.getIndices());
    s.held.insert(router.getWeights());
    // Filled at the relayout, which knows every rank's loads.
    s.allocateRouterLosses(loc, router.getLosses());
    return success();
  }
  if (isa<fsep::LocalCountsOp>(op)) { // the runtime counts at the relayout
    hold(op);
    return success();
  }
  if (isa<fsep::RelayoutOp>(op)) {
    s.call(loc, "fsep_relayout", {ctx, l});
    hold(op);
    s.fillRouterLosses(loc, l, layer.router.getLosses(),
                       layer.router.getAuxLoss().has_value());
    return success();
  }
  if (isa<fsep::RestoreOp>(op)) {
    s.call(loc, "fsep_restore", {ctx, l});
    return startAndMaybeFinish(op);
  }
  if (auto d = dyn_cast<fsep::DispatchOp>(op)) {
    auto [chunk, chunks] = chunkOf(d);
    s.call(loc, "fsep_dispatch",
           {ctx, l, s.i64(loc, chunk), s.i64(loc, chunks)});
    return startAndMaybeFinish(op);
  }
  if (auto e = dyn_cast<fsep::ExpertComputeOp>(op)) {
    s.call(loc, "fsep_expert_compute", {ctx, l, s.i64(loc, chunkOf(e).first)});
    hold(op);
    return success();
  }
  if (auto c = dyn_cast<fsep::CombineOp>(op)) {
    s.call(loc, "fsep_combine", {ctx, l, s.i64(loc, chunkOf(c).first)});
    return startAndMaybeFinish(op);
  }
  if (auto c = dyn_cast<fsep::CombineBackwardOp>(op)) {
    if (s.held.contains(c.getDOutput()))
      return op->emitError() << kPass << ": d_output must be a computed "
                                         "tensor";
    s.call(loc, "fsep_combine_backward",
           {ctx, l, s.i64(loc, chunkOf(c).first),
            s.abi(loc, c.getDOutput())});
    return startAndMaybeFinish(op);
  }
  if (auto e = dyn_cast<fsep::ExpertComputeBackwardOp>(op)) {
    s.call(loc, "fsep_expert_compute_backward",
           {ctx, l, s.i64(loc, chunkOf(e).first)});
    hold(op);
    return success();
  }
  if (auto d = dyn_cast<fsep::DispatchBackwardOp>(op)) {
    s.call(loc, "fsep_dispatch_backward",
           {ctx, l, s.i64(loc, chunkOf(d).first)});
    return startAndMaybeFinish(op);
  }
  if (isa<fsep::GradReduceOp>(op)) {
    s.call(loc, "fsep_grad_reduce", {ctx, l});
    return startAndMaybeFinish(op);
  }
  if (auto wait = dyn_cast<fsep::WaitOp>(op)) {
    Operation *transfer = wait.getAsync().getDefiningOp();
    // A transfer with several results completes at its first wait.
    if (!s.waited.insert(transfer).second) {
      s.held.insert(wait.getValue());
      return success();
    }
    return finish(transfer, wait.getValue());
  }
  if (auto g = dyn_cast<moe::RouterGradOp>(op)) {
    for (Operation *user : g.getDGate().getUsers())
      if (!isa<func::ReturnOp>(user))
        return op->emitError() << kPass << ": the gate gradient of an FSEP "
                                           "layer may only be returned (the "
                                           "runtime keeps it)";
    s.setRouterLossGradients(loc, l, g.getDLosses(),
                             g.getAuxLoss().has_value());
    s.call(loc, "fsep_router_backward", {ctx, l, tokens(g.getDInput())});
    s.held.insert(g.getDGate());
    return success();
  }
  return op->emitError() << kPass << ": '" << op->getName()
                         << "' cannot be lowered to the runtime";
}
