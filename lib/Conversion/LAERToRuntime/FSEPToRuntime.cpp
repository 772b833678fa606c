//===- FSEPToRuntime.cpp - fsep ops to calls of the runtime's FSEP layer --===//
//
// One conversion pattern per fsep op: each becomes one laerrt_fsep_* call
// on the runtime's layer, in program order, so the schedule fsep-schedule
// built (restore beside the router, chunks pipelined, gradient all-to-all
// deferred) is the one that runs. Transfers are a start call; the first
// fsep.wait of a transfer is its finish call. The values between fsep ops
// live in the runtime (`LoweringState::held`, placeholders in the IR); the
// layer's outputs that dense code reads (combine, dispatch_backward,
// router_grad's d_input) become memrefs.
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
  for (FsepLayer layer : info.fsepLayers)
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
    FsepLayer layer{
        static_cast<int64_t>(relayout.getLayer()), relayout, {}, {}};
    auto counts =
        relayout.getCounts()
            ? relayout.getCounts().getDefiningOp<fsep::LocalCountsOp>()
            : fsep::LocalCountsOp();
    if (!counts)
      return relayout.emitError()
             << kPass
             << ": the runtime plans a layer from this step's "
                "fsep.local_counts; a relayout from the load history "
                "alone is not supported (convert-moe-to-fsep builds "
                "training steps with counts)";
    layer.router = counts.getIndices().getDefiningOp<moe::RouterOp>();
    if (!layer.router || !isa<BlockArgument>(layer.router.getGate()) ||
        (layer.router.getSelectionBias() &&
         !isa<BlockArgument>(layer.router.getSelectionBias())))
      return relayout.emitError()
             << kPass
             << ": the counts of this relayout must come from a "
                "moe.router whose gate (and selection bias) are "
                "arguments (the runtime owns them)";
    for (Operation *user : relayout.getPlan().getUsers())
      if (auto restore = dyn_cast<fsep::RestoreOp>(user))
        layer.bank = dyn_cast<BlockArgument>(restore.getExperts());
    if (!layer.bank)
      return relayout.emitError()
             << kPass
             << ": no fsep.restore of an argument's expert bank "
                "uses this plan";
    for (FsepLayer other : info.fsepLayers)
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
  llvm::sort(info.fsepLayers,
             [](FsepLayer a, FsepLayer b) { return a.index < b.index; });
  return success();
}

namespace {

/// The base of the patterns of FSEP layers' ops: they read the values the
/// runtime keeps, and know their layer.
template <typename Op> struct FsepPattern : RuntimePattern<Op> {
  using RuntimePattern<Op>::RuntimePattern;
  bool readsHeldValues() const override { return true; }

  LogicalResult lower(Op op, typename Op::Adaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const final {
    std::optional<int64_t> index = layerOf(op, this->state.info);
    if (!index)
      return this->refuse(op, rewriter,
                          "cannot tell which FSEP layer this op belongs to");
    FsepLayer layer = layerInfo(this->state.info, *index);
    return lowerLayerOp(op, adaptor, rewriter, s, layer,
                        s.i64(op.getLoc(), *index));
  }
  virtual LogicalResult lowerLayerOp(Op op, typename Op::Adaptor adaptor,
                                     ConversionPatternRewriter &rewriter,
                                     StepBuilder &s, FsepLayer layer,
                                     Value l) const = 0;

  /// Every result of `op` stays in the runtime.
  void hold(Operation *op, ConversionPatternRewriter &rewriter) const {
    for (Value result : op->getResults())
      this->state.held.insert(result);
    this->replaceWithPlaceholders(op, rewriter);
  }
  /// A [T, H] buffer sized like the layer's input.
  Value tokens(ConversionPatternRewriter &rewriter, StepBuilder &s,
               Location loc, Type type, FsepLayer layer) const {
    return s.allocate(loc, type,
                      rewriter.getRemappedValue(layer.router.getInput()));
  }

  /// The finish call of `transfer`; the buffer it writes `result` into
  /// where that is a memref the dense code reads, else null (the runtime
  /// keeps it).
  FailureOr<Value> finish(Operation *transfer, Value result,
                          ConversionPatternRewriter &rewriter, StepBuilder &s,
                          FsepLayer layer, Value l) const {
    Location loc = transfer->getLoc();
    Value ctx = s.ctx;
    auto chunk = [&](int64_t c) { return s.i64(loc, c); };
    if (isa<fsep::RestoreOp>(transfer)) {
      s.call(loc, "fsep_restore_wait", {ctx, l});
    } else if (auto d = dyn_cast<fsep::DispatchOp>(transfer)) {
      s.call(loc, "fsep_dispatch_wait", {ctx, l, chunk(chunkOf(d).first)});
    } else if (auto c = dyn_cast<fsep::CombineOp>(transfer)) {
      Value out = tokens(rewriter, s, loc, result.getType(), layer);
      s.call(loc, "fsep_combine_wait",
             {ctx, l, chunk(chunkOf(c).first), s.abi(loc, out)});
      return out;
    } else if (auto c = dyn_cast<fsep::CombineBackwardOp>(transfer)) {
      s.call(loc, "fsep_combine_backward_wait",
             {ctx, l, chunk(chunkOf(c).first)});
    } else if (auto d = dyn_cast<fsep::DispatchBackwardOp>(transfer)) {
      Value out = tokens(rewriter, s, loc, result.getType(), layer);
      s.call(loc, "fsep_dispatch_backward_wait",
             {ctx, l, chunk(chunkOf(d).first), s.abi(loc, out)});
      return out;
    } else if (isa<fsep::GradReduceOp>(transfer)) {
      s.call(loc, "fsep_grad_reduce_wait", {ctx, l});
    } else {
      transfer->emitError() << kPass << ": not a transfer";
      return failure();
    }
    this->state.held.insert(result);
    return Value();
  }

  /// Replaces a transfer's results after its start call: an asynchronous
  /// one's are all held until their wait; a synchronous one finishes here.
  LogicalResult startAndMaybeFinish(Op transfer,
                                    ConversionPatternRewriter &rewriter,
                                    StepBuilder &s, FsepLayer layer,
                                    Value l) const {
    if (isAsync(transfer)) {
      hold(transfer, rewriter);
      return success();
    }
    this->state.waited.insert(transfer);
    for (Value result : transfer->getResults().drop_front())
      this->state.held.insert(result);
    FailureOr<Value> first =
        finish(transfer, transfer->getResult(0), rewriter, s, layer, l);
    if (failed(first))
      return this->refuse(transfer, rewriter, "cannot finish this transfer");
    SmallVector<Value> values;
    for (Value result : transfer->getResults())
      values.push_back(result == transfer->getResult(0) && *first
                           ? *first
                           : placeholder(rewriter, transfer.getLoc(),
                                         this->getTypeConverter()->convertType(
                                             result.getType())));
    rewriter.replaceOp(transfer, values);
    return success();
  }
};

struct RouterLowering : FsepPattern<moe::RouterOp> {
  using FsepPattern::FsepPattern;
  LogicalResult lowerLayerOp(moe::RouterOp router, OpAdaptor a,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer,
                             Value l) const override {
    Location loc = router.getLoc();
    s.call(loc, "fsep_route", {s.ctx, l, s.abi(loc, a.getInput())});
    state.held.insert(router.getIndices());
    state.held.insert(router.getWeights());
    // Filled at the relayout, which knows every rank's loads.
    SmallVector<Value> values;
    for (Value result : router->getResults())
      values.push_back(
          state.held.contains(result)
              ? placeholder(rewriter, loc,
                            getTypeConverter()->convertType(result.getType()))
              : s.allocate(loc, result.getType(), Value()));
    rewriter.replaceOp(router, values);
    return success();
  }
};

struct LocalCountsLowering : FsepPattern<fsep::LocalCountsOp> {
  using FsepPattern::FsepPattern;
  LogicalResult lowerLayerOp(fsep::LocalCountsOp op, OpAdaptor,
                             ConversionPatternRewriter &rewriter, StepBuilder &,
                             FsepLayer, Value) const override {
    hold(op, rewriter); // the runtime counts at the relayout
    return success();
  }
};

struct RelayoutLowering : FsepPattern<fsep::RelayoutOp> {
  using FsepPattern::FsepPattern;
  LogicalResult lowerLayerOp(fsep::RelayoutOp op, OpAdaptor,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer layer,
                             Value l) const override {
    Location loc = op.getLoc();
    s.call(loc, "fsep_relayout", {s.ctx, l});
    SmallVector<Value> losses;
    for (Value loss : layer.router.getLosses())
      losses.push_back(rewriter.getRemappedValue(loss));
    s.fillRouterLosses(loc, l, losses, layer.router.getAuxLoss().has_value());
    hold(op, rewriter);
    return success();
  }
};

/// A transfer: its start call, then startAndMaybeFinish.
template <typename Op> struct TransferLowering : FsepPattern<Op> {
  using FsepPattern<Op>::FsepPattern;
  LogicalResult lowerLayerOp(Op op, typename Op::Adaptor adaptor,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer layer,
                             Value l) const override {
    if (failed(start(op, adaptor, s, l)))
      return this->refuse(op, rewriter, "d_output must be a computed tensor");
    return this->startAndMaybeFinish(op, rewriter, s, layer, l);
  }
  virtual LogicalResult start(Op op, typename Op::Adaptor adaptor,
                              StepBuilder &s, Value l) const = 0;
};

struct RestoreLowering : TransferLowering<fsep::RestoreOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::RestoreOp op, OpAdaptor, StepBuilder &s,
                      Value l) const override {
    s.call(op.getLoc(), "fsep_restore", {s.ctx, l});
    return success();
  }
};

struct DispatchLowering : TransferLowering<fsep::DispatchOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::DispatchOp op, OpAdaptor, StepBuilder &s,
                      Value l) const override {
    auto [chunk, chunks] = chunkOf(op);
    s.call(op.getLoc(), "fsep_dispatch",
           {s.ctx, l, s.i64(op.getLoc(), chunk), s.i64(op.getLoc(), chunks)});
    return success();
  }
};

struct CombineLowering : TransferLowering<fsep::CombineOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::CombineOp op, OpAdaptor, StepBuilder &s,
                      Value l) const override {
    s.call(op.getLoc(), "fsep_combine",
           {s.ctx, l, s.i64(op.getLoc(), chunkOf(op).first)});
    return success();
  }
};

struct CombineBackwardLowering : TransferLowering<fsep::CombineBackwardOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::CombineBackwardOp op, OpAdaptor a, StepBuilder &s,
                      Value l) const override {
    if (state.held.contains(op.getDOutput()))
      return failure();
    Location loc = op.getLoc();
    s.call(
        loc, "fsep_combine_backward",
        {s.ctx, l, s.i64(loc, chunkOf(op).first), s.abi(loc, a.getDOutput())});
    return success();
  }
};

struct DispatchBackwardLowering : TransferLowering<fsep::DispatchBackwardOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::DispatchBackwardOp op, OpAdaptor, StepBuilder &s,
                      Value l) const override {
    s.call(op.getLoc(), "fsep_dispatch_backward",
           {s.ctx, l, s.i64(op.getLoc(), chunkOf(op).first)});
    return success();
  }
};

struct GradReduceLowering : TransferLowering<fsep::GradReduceOp> {
  using TransferLowering::TransferLowering;
  LogicalResult start(fsep::GradReduceOp op, OpAdaptor, StepBuilder &s,
                      Value l) const override {
    s.call(op.getLoc(), "fsep_grad_reduce", {s.ctx, l});
    return success();
  }
};

/// Expert compute, forward or backward: one call, results held.
template <typename Op> struct ComputeLowering : FsepPattern<Op> {
  ComputeLowering(const TypeConverter &converter, LoweringState &state,
                  const char *function)
      : FsepPattern<Op>(converter, state), function(function) {}
  LogicalResult lowerLayerOp(Op op, typename Op::Adaptor,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer,
                             Value l) const override {
    s.call(op.getLoc(), function,
           {s.ctx, l, s.i64(op.getLoc(), chunkOf(op).first)});
    this->hold(op, rewriter);
    return success();
  }
  const char *function;
};

struct WaitLowering : FsepPattern<fsep::WaitOp> {
  using FsepPattern::FsepPattern;
  LogicalResult lowerLayerOp(fsep::WaitOp wait, OpAdaptor,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer layer,
                             Value l) const override {
    Operation *transfer = wait.getAsync().getDefiningOp();
    // A transfer with several results completes at its first wait.
    if (!state.waited.insert(transfer).second) {
      hold(wait, rewriter);
      return success();
    }
    FailureOr<Value> out =
        finish(transfer, wait.getValue(), rewriter, s, layer, l);
    if (failed(out))
      return refuse(wait, rewriter,
                    "waits on something that is not a "
                    "transfer");
    if (!*out) {
      replaceWithPlaceholders(wait, rewriter);
      return success();
    }
    rewriter.replaceOp(wait, *out);
    return success();
  }
};

struct RouterGradLowering : FsepPattern<moe::RouterGradOp> {
  using FsepPattern::FsepPattern;
  LogicalResult lowerLayerOp(moe::RouterGradOp g, OpAdaptor a,
                             ConversionPatternRewriter &rewriter,
                             StepBuilder &s, FsepLayer layer,
                             Value l) const override {
    for (Operation *user : g.getDGate().getUsers())
      if (!isa<func::ReturnOp>(user))
        return refuse(g, rewriter,
                      "the gate gradient of an FSEP layer may only be "
                      "returned (the runtime keeps it)");
    Location loc = g.getLoc();
    s.setRouterLossGradients(loc, l, a.getDLosses(),
                             g.getAuxLoss().has_value());
    Value dx = tokens(rewriter, s, loc, g.getDInput().getType(), layer);
    s.call(loc, "fsep_router_backward", {s.ctx, l, s.abi(loc, dx)});
    state.held.insert(g.getDGate());
    rewriter.replaceOp(g, {dx, placeholder(rewriter, loc,
                                           getTypeConverter()->convertType(
                                               g.getDGate().getType()))});
    return success();
  }
};

} // namespace

void laer::runtime_lowering::populateFSEPToRuntimePatterns(
    const TypeConverter &converter, RewritePatternSet &patterns,
    LoweringState &state) {
  patterns.add<RouterLowering, LocalCountsLowering, RelayoutLowering,
               RestoreLowering, DispatchLowering, CombineLowering,
               CombineBackwardLowering, DispatchBackwardLowering,
               GradReduceLowering, WaitLowering, RouterGradLowering>(converter,
                                                                     state);
  patterns.add<ComputeLowering<fsep::ExpertComputeOp>>(converter, state,
                                                       "fsep_expert_compute");
  patterns.add<ComputeLowering<fsep::ExpertComputeBackwardOp>>(
      converter, state, "fsep_expert_compute_backward");
}
