//===- MoEToFSEP.cpp - decomposed MoE layers to the FSEP program ----------===//

#include "laer/Conversion/FSEPLimits.h"
#include "laer/Conversion/Passes.h"
#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/STLExtras.h"

namespace laer {
#define GEN_PASS_DEF_CONVERTMOETOFSEP
#include "laer/Conversion/Passes.h.inc"
} // namespace laer

using namespace mlir;
using namespace laer;

namespace {

/// One routed MoE layer as moe-decompose leaves it.
struct RoutedLayer {
  moe::DispatchOp dispatch;
  moe::ExpertsOp experts;
  moe::CombineOp combine;
};

/// Finds the experts and combine ops fed by `dispatch`, or explains why
/// the layer does not have the expected shape.
FailureOr<RoutedLayer> matchLayer(moe::DispatchOp dispatch) {
  RoutedLayer layer{dispatch, {}, {}};
  for (Operation *user : dispatch.getRows().getUsers())
    if (auto experts = dyn_cast<moe::ExpertsOp>(user))
      if (experts.getRows() == dispatch.getRows() &&
          experts.getCounts() == dispatch.getCounts())
        layer.experts = experts;
  if (!layer.experts || !dispatch.getRows().hasOneUse() ||
      !dispatch.getCounts().hasOneUse())
    return dispatch.emitError("convert-moe-to-fsep: the dispatched rows "
                              "must feed exactly one moe.experts");
  Value output = layer.experts.getOutput();
  if (!output.hasOneUse() ||
      !(layer.combine = dyn_cast<moe::CombineOp>(*output.getUsers().begin())) ||
      layer.combine.getIndices() != dispatch.getIndices())
    return layer.experts.emitError(
        "convert-moe-to-fsep: the expert outputs must feed exactly one "
        "moe.combine with the dispatch's indices");
  return layer;
}

/// A moe.layer of a training step and the moe.layer_grad that
/// differentiates it (as laer-autodiff builds them).
struct TrainedLayer {
  moe::LayerOp forward;
  moe::LayerGradOp backward;
};

/// Pairs every moe.layer_grad of `func` with its moe.layer (same
/// operands), in the order of the forward layers.
FailureOr<SmallVector<TrainedLayer>> matchTrainedLayers(func::FuncOp func) {
  SmallVector<TrainedLayer> layers;
  func.walk([&](moe::LayerOp op) { layers.push_back({op, {}}); });
  WalkResult result = func.walk([&](moe::LayerGradOp grad) {
    for (TrainedLayer &layer : layers) {
      moe::LayerOp f = layer.forward;
      if (f.getInput() == grad.getInput() && f.getGate() == grad.getGate() &&
          f.getW1() == grad.getW1() && f.getW3() == grad.getW3() &&
          f.getW2() == grad.getW2() && !layer.backward) {
        layer.backward = grad;
        return WalkResult::advance();
      }
    }
    grad.emitError("convert-moe-to-fsep: moe.layer_grad needs exactly one "
                   "moe.layer with the same operands");
    return WalkResult::interrupt();
  });
  if (result.wasInterrupted())
    return failure();
  // A moe.layer without gradient is an inference layer: moe-decompose
  // and the routed-layer conversion handle it.
  llvm::erase_if(layers, [](const TrainedLayer &l) { return !l.backward; });
  return layers;
}

/// Appends this rank's shards of layer `layerIndex` as an argument of
/// `func`, tagged `fsep.layer`; when the expert weights (arguments
/// `weightArgs`: w1, w3, w2) are all named (moe.parameter), the bank
/// carries the three names.
FailureOr<Value> appendBank(func::FuncOp func, fsep::ExpertsType bankType,
                            int64_t layerIndex, ArrayRef<unsigned> weightArgs,
                            Location loc) {
  MLIRContext *context = func.getContext();
  unsigned index = func.getNumArguments();
  SmallVector<NamedAttribute> attributes{NamedAttribute(
      StringAttr::get(context, "fsep.layer"),
      IntegerAttr::get(IntegerType::get(context, 64), layerIndex))};
  SmallVector<Attribute> names;
  for (unsigned arg : weightArgs)
    if (Attribute name =
            func.getArgAttr(arg, moe::MoEDialect::kParameterAttrName))
      names.push_back(name);
  if (names.size() == weightArgs.size())
    attributes.push_back(NamedAttribute(
        StringAttr::get(context, moe::MoEDialect::kParameterAttrName),
        ArrayAttr::get(context, names)));
  if (failed(func.insertArgument(
          index, bankType, DictionaryAttr::get(context, attributes), loc)))
    return failure();
  return Value(func.getArgument(index));
}

/// Sums `parts` with arith.addf (the chunks' shares of one value).
Value sum(OpBuilder &b, Location loc, ArrayRef<Value> parts) {
  Value total = parts.front();
  for (Value part : parts.drop_front())
    total = arith::AddFOp::create(b, loc, total, part);
  return total;
}

struct ConvertMoEToFSEPPass
    : laer::impl::ConvertMoEToFSEPBase<ConvertMoEToFSEPPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (numDevices < 1 || slotsPerDevice < 0 || chunks < 1) {
      // At the module's location, without the module printed after it.
      mlir::emitError(module.getLoc())
          << "convert-moe-to-fsep: num-devices and chunks must be >= 1 and "
             "slots-per-device >= 0, got "
          << numDevices.getValue() << ", " << chunks.getValue() << ", "
          << slotsPerDevice.getValue()
          << " (give them as --convert-moe-to-fsep=\"num-devices=4 "
             "slots-per-device=2\")";
      return signalPassFailure();
    }
    if (numDevices > kMaxFsepDevices || chunks > kMaxFsepChunks ||
        slotsPerDevice > kMaxFsepSlotsPerDevice) {
      mlir::emitError(module.getLoc())
          << "convert-moe-to-fsep: at most " << kMaxFsepDevices << " devices, "
          << kMaxFsepSlotsPerDevice << " slots per device and "
          << kMaxFsepChunks
          << " chunks, got num-devices=" << numDevices.getValue()
          << " slots-per-device=" << slotsPerDevice.getValue()
          << " chunks=" << chunks.getValue();
      return signalPassFailure();
    }
    int64_t layerIndex = 0;
    WalkResult result = module.walk([&](func::FuncOp func) {
      SmallVector<moe::DispatchOp> dispatches;
      func.walk([&](moe::DispatchOp op) { dispatches.push_back(op); });
      for (moe::DispatchOp dispatch : dispatches)
        if (failed(convertLayer(func, dispatch, layerIndex++)))
          return WalkResult::interrupt();
      FailureOr<SmallVector<TrainedLayer>> trained = matchTrainedLayers(func);
      if (failed(trained))
        return WalkResult::interrupt();
      for (TrainedLayer &layer : *trained)
        if (failed(convertTrainedLayer(func, layer, layerIndex++)))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  LogicalResult convertLayer(func::FuncOp func, moe::DispatchOp dispatch,
                             int64_t layerIndex) {
    FailureOr<RoutedLayer> matched = matchLayer(dispatch);
    if (failed(matched))
      return failure();
    RoutedLayer layer = *matched;
    moe::ExpertsOp experts = layer.experts;

    auto w1Type = cast<RankedTensorType>(experts.getW1().getType());
    int64_t numExperts, hidden, ffn, slots;
    if (failed(bankShape(dispatch, experts.getW1(), numExperts, hidden, ffn,
                         slots)))
      return failure();

    // The weights become this rank's shards: they must be parameters of
    // the function, used by this layer only.
    Block &entry = func.getBody().front();
    SmallVector<unsigned> weightArgs;
    for (Value weight : {experts.getW1(), experts.getW3(), experts.getW2()}) {
      auto arg = dyn_cast<BlockArgument>(weight);
      if (!arg || arg.getOwner() != &entry || !weight.hasOneUse())
        return experts.emitError(
            "convert-moe-to-fsep: expert weights must be arguments of the "
            "function used by this layer only, so they can be sharded");
      weightArgs.push_back(arg.getArgNumber());
    }

    MLIRContext *context = func.getContext();
    Location loc = dispatch.getLoc();
    Type element = w1Type.getElementType();
    auto bankType =
        fsep::ExpertsType::get(numExperts, hidden, ffn, element, numDevices);
    auto planType = fsep::PlanType::get(context, numExperts, numDevices, slots);
    FailureOr<Value> bank =
        appendBank(func, bankType, layerIndex, weightArgs, experts.getLoc());
    if (failed(bank))
      return failure();

    OpBuilder b(dispatch);
    Value indices = dispatch.getIndices();
    Value input = dispatch.getInput();
    auto inputType = cast<RankedTensorType>(input.getType());
    auto countsType = RankedTensorType::get({numExperts}, b.getI64Type());
    auto slotCountsType = RankedTensorType::get({slots}, b.getI64Type());
    auto rowsType =
        RankedTensorType::get({ShapedType::kDynamic, inputType.getDimSize(1)},
                              inputType.getElementType());
    auto slotW13 = RankedTensorType::get({slots, hidden, ffn}, element);
    auto slotW2 = RankedTensorType::get({slots, ffn, hidden}, element);

    Value counts;
    if (stepPlans)
      counts = fsep::LocalCountsOp::create(b, loc, countsType, indices);
    Value plan = fsep::RelayoutOp::create(b, loc, planType, counts,
                                          b.getI64IntegerAttr(layerIndex));
    auto restore =
        fsep::RestoreOp::create(b, loc, slotW13, slotW13, slotW2, *bank, plan);

    b.setInsertionPoint(layer.combine);
    Value output;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      IntegerAttr chunkAttr, chunksAttr;
      if (chunks > 1) {
        chunkAttr = b.getI64IntegerAttr(chunk);
        chunksAttr = b.getI64IntegerAttr(chunks);
      }
      auto sent =
          fsep::DispatchOp::create(b, loc, rowsType, slotCountsType, input,
                                   indices, plan, chunkAttr, chunksAttr);
      Value y = fsep::ExpertComputeOp::create(
          b, experts.getLoc(), rowsType, sent.getRows(), sent.getSlotCounts(),
          restore.getW1(), restore.getW3(), restore.getW2(),
          experts.getActivationAttr(), chunkAttr, chunksAttr);
      Value part = fsep::CombineOp::create(
          b, layer.combine.getLoc(), layer.combine.getType(), y, indices,
          layer.combine.getWeights(), plan, chunkAttr, chunksAttr);
      output = output ? arith::AddFOp::create(b, layer.combine.getLoc(), output,
                                              part)
                            .getResult()
                      : part;
    }
    layer.combine.replaceAllUsesWith(output);
    layer.combine.erase();
    experts.erase();
    dispatch.erase();

    llvm::BitVector erase(func.getNumArguments());
    for (unsigned index : weightArgs)
      erase.set(index);
    return func.eraseArguments(erase);
  }

  /// The expert bank of one layer: `[E, H, F]` weights as static sizes,
  /// checked against the slots the layout has.
  LogicalResult bankShape(Operation *op, Value w1, int64_t &numExperts,
                          int64_t &hidden, int64_t &ffn, int64_t &slots) {
    auto type = cast<RankedTensorType>(w1.getType());
    if (!type.hasStaticShape())
      return op->emitError("convert-moe-to-fsep: expert weights need a "
                           "static shape to be sharded");
    numExperts = type.getDimSize(0);
    hidden = type.getDimSize(1);
    ffn = type.getDimSize(2);
    // Default: every expert fits, plus one slot for a hot expert's replica.
    slots = slotsPerDevice > 0 ? slotsPerDevice
                               : (numExperts + numDevices - 1) / numDevices + 1;
    if (numDevices * slots < numExperts)
      return op->emitError()
             << "convert-moe-to-fsep: num-devices * slots-per-device = "
             << numDevices * slots
             << " expert slots cannot hold E = " << numExperts << " experts";
    return success();
  }

  /// A moe.layer and its moe.layer_grad in a training step become the
  /// chunked FSEP forward and backward of one rank; the expert weights
  /// (arguments) become one `!fsep.experts` argument appended to the
  /// function and their three gradients (results) the bank's gradient
  /// shards appended to the results, so argument i + 1 still pairs with
  /// result i as laer-autodiff made them.
  LogicalResult convertTrainedLayer(func::FuncOp func, TrainedLayer &layer,
                                    int64_t layerIndex) {
    moe::LayerOp fwd = layer.forward;
    moe::LayerGradOp bwd = layer.backward;
    if (fwd.getSharedW1())
      return fwd.emitError("convert-moe-to-fsep: the shared experts of a "
                           "trained layer must be split off first "
                           "(moe-split-shared-experts)");
    int64_t numExperts, hidden, ffn, slots;
    if (failed(bankShape(fwd, fwd.getW1(), numExperts, hidden, ffn, slots)))
      return failure();

    Block &entry = func.getBody().front();
    auto ret = cast<func::ReturnOp>(entry.getTerminator());
    SmallVector<unsigned> weightArgs, gradResults;
    for (Value weight : {fwd.getW1(), fwd.getW3(), fwd.getW2()}) {
      auto arg = dyn_cast<BlockArgument>(weight);
      bool onlyThisLayer = llvm::all_of(weight.getUsers(), [&](Operation *u) {
        return u == fwd.getOperation() || u == bwd.getOperation();
      });
      if (!arg || arg.getOwner() != &entry || !onlyThisLayer)
        return fwd.emitError(
            "convert-moe-to-fsep: expert weights must be arguments of the "
            "function used by this layer and its gradient only, so they can "
            "be sharded");
      weightArgs.push_back(arg.getArgNumber());
    }
    for (Value grad : {bwd.getDW1(), bwd.getDW3(), bwd.getDW2()}) {
      if (!grad.hasOneUse() || *grad.getUsers().begin() != ret)
        return bwd.emitError("convert-moe-to-fsep: expert weight gradients "
                             "may only be returned (they become the bank's "
                             "gradient shards)");
      gradResults.push_back(grad.getUses().begin()->getOperandNumber());
    }

    MLIRContext *context = func.getContext();
    Location loc = fwd.getLoc();
    Type element =
        cast<RankedTensorType>(fwd.getW1().getType()).getElementType();
    auto bankType =
        fsep::ExpertsType::get(numExperts, hidden, ffn, element, numDevices);
    auto planType = fsep::PlanType::get(context, numExperts, numDevices, slots);
    FailureOr<Value> bankArg =
        appendBank(func, bankType, layerIndex, weightArgs, loc);
    if (failed(bankArg))
      return failure();
    Value bank = *bankArg;

    // Forward: router, this step's plan, restore, chunked exchanges.
    OpBuilder b(fwd);
    Value input = fwd.getInput(), gate = fwd.getGate();
    auto inputType = cast<RankedTensorType>(input.getType());
    int64_t topK = static_cast<int64_t>(fwd.getTopK());
    auto indicesType =
        RankedTensorType::get({inputType.getDimSize(0), topK}, b.getI32Type());
    auto weightsType = RankedTensorType::get({inputType.getDimSize(0), topK},
                                             inputType.getElementType());
    SmallVector<Type> routerTypes{indicesType, weightsType};
    llvm::append_range(routerTypes, fwd.getLosses().getTypes());
    auto router = moe::RouterOp::create(
        b, loc, routerTypes, input, gate, fwd.getSelectionBias(),
        fwd.getTopKAttr(), fwd.getScoreAttr(), fwd.getRenormalizeAttr(),
        nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    moe::copyRoutingAttributes(fwd, router, /*variants=*/true,
                               /*losses=*/true);
    fwd.getLosses().replaceAllUsesWith(router.getLosses());
    Value indices = router.getIndices(), weights = router.getWeights();
    Value counts = fsep::LocalCountsOp::create(
        b, loc, RankedTensorType::get({numExperts}, b.getI64Type()), indices);
    Value plan = fsep::RelayoutOp::create(b, loc, planType, counts,
                                          b.getI64IntegerAttr(layerIndex));
    auto slotW13 = RankedTensorType::get({slots, hidden, ffn}, element);
    auto slotW2 = RankedTensorType::get({slots, ffn, hidden}, element);
    auto restore =
        fsep::RestoreOp::create(b, loc, slotW13, slotW13, slotW2, bank, plan);
    auto rowsType = RankedTensorType::get({ShapedType::kDynamic, hidden},
                                          inputType.getElementType());
    auto slotCountsType = RankedTensorType::get({slots}, b.getI64Type());
    SmallVector<IntegerAttr> chunkAttrs;
    IntegerAttr chunksAttr = chunks > 1 ? b.getI64IntegerAttr(chunks) : nullptr;
    SmallVector<fsep::DispatchOp> dispatched;
    SmallVector<Value> expertOutputs, outputs;
    for (int64_t c = 0; c < chunks; ++c) {
      IntegerAttr chunk = chunks > 1 ? b.getI64IntegerAttr(c) : nullptr;
      chunkAttrs.push_back(chunk);
      auto sent =
          fsep::DispatchOp::create(b, loc, rowsType, slotCountsType, input,
                                   indices, plan, chunk, chunksAttr);
      Value y = fsep::ExpertComputeOp::create(
          b, loc, rowsType, sent.getRows(), sent.getSlotCounts(),
          restore.getW1(), restore.getW3(), restore.getW2(),
          fwd.getActivationAttr(), chunk, chunksAttr);
      dispatched.push_back(sent);
      expertOutputs.push_back(y);
      outputs.push_back(fsep::CombineOp::create(
          b, loc, inputType, y, indices, weights, plan, chunk, chunksAttr));
    }
    fwd.getOutput().replaceAllUsesWith(sum(b, loc, outputs));

    // Backward: the chunks in reverse direction, then the gradient
    // all-to-all to the owners and the router's gradient.
    b.setInsertionPoint(bwd);
    Location bloc = bwd.getLoc();
    Value dOutput = bwd.getDOutput();
    SmallVector<Value> dInputs, dWeights, dW1, dW3, dW2;
    for (int64_t c = 0; c < chunks; ++c) {
      auto back = fsep::CombineBackwardOp::create(
          b, bloc, rowsType, weightsType, dOutput, expertOutputs[c], indices,
          weights, plan, chunkAttrs[c], chunksAttr);
      auto experts = fsep::ExpertComputeBackwardOp::create(
          b, bloc, rowsType, slotW13, slotW13, slotW2, dispatched[c].getRows(),
          dispatched[c].getSlotCounts(), restore.getW1(), restore.getW3(),
          restore.getW2(), back.getDRows(), fwd.getActivationAttr(),
          chunkAttrs[c], chunksAttr);
      dInputs.push_back(fsep::DispatchBackwardOp::create(
          b, bloc, inputType, experts.getDRowsIn(), indices, plan,
          chunkAttrs[c], chunksAttr));
      dWeights.push_back(back.getDWeights());
      dW1.push_back(experts.getDW1());
      dW3.push_back(experts.getDW3());
      dW2.push_back(experts.getDW2());
    }
    Value gradShards = fsep::GradReduceOp::create(
        b, bloc, bankType.getStorageType(), sum(b, bloc, dW1),
        sum(b, bloc, dW3), sum(b, bloc, dW2), plan, bank);
    auto routerGrad = moe::RouterGradOp::create(
        b, bloc, inputType, gate.getType(), input, gate, indices,
        sum(b, bloc, dWeights), bwd.getDLosses(), fwd.getScoreAttr(),
        fwd.getRenormalizeAttr(), fwd.getScaleAttr(), nullptr, nullptr);
    moe::copyRoutingAttributes(fwd, routerGrad, /*variants=*/false,
                               /*losses=*/true);
    dInputs.push_back(routerGrad.getDInput());
    bwd.getDInput().replaceAllUsesWith(sum(b, bloc, dInputs));
    bwd.getDGate().replaceAllUsesWith(routerGrad.getDGate());

    // The weights' gradients leave the results; the bank's shards join.
    SmallVector<Value> results;
    for (auto [i, operand] : llvm::enumerate(ret.getOperands()))
      if (!llvm::is_contained(gradResults, i))
        results.push_back(operand);
    results.push_back(gradShards);
    ret->setOperands(results);
    bwd.erase();
    fwd.erase();
    llvm::BitVector erase(func.getNumArguments());
    for (unsigned index : weightArgs)
      erase.set(index);
    if (failed(func.eraseArguments(erase)))
      return failure();
    func.setType(FunctionType::get(context, entry.getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    return success();
  }
};

} // namespace
