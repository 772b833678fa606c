//===- MoEToFSEP.cpp - decomposed MoE layers to the FSEP program ----------===//

#include "laer/Conversion/Passes.h"
#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"

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

struct ConvertMoEToFSEPPass
    : laer::impl::ConvertMoEToFSEPBase<ConvertMoEToFSEPPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (numDevices < 1 || slotsPerDevice < 1 || chunks < 1) {
      module.emitError() << "convert-moe-to-fsep: num-devices, "
                            "slots-per-device and chunks must be >= 1, got "
                         << numDevices.getValue() << ", "
                         << slotsPerDevice.getValue() << ", "
                         << chunks.getValue();
      return signalPassFailure();
    }
    int64_t layerIndex = 0;
    WalkResult result = module.walk([&](func::FuncOp func) {
      SmallVector<moe::DispatchOp> dispatches;
      func.walk([&](moe::DispatchOp op) { dispatches.push_back(op); });
      for (moe::DispatchOp dispatch : dispatches)
        if (failed(convertLayer(func, dispatch, layerIndex++)))
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
    int64_t numExperts = w1Type.getDimSize(0), hidden = w1Type.getDimSize(1),
            ffn = w1Type.getDimSize(2);
    if (ShapedType::isDynamic(numExperts) || ShapedType::isDynamic(hidden) ||
        ShapedType::isDynamic(ffn))
      return experts.emitError("convert-moe-to-fsep: expert weights need a "
                               "static shape to be sharded");
    if (numDevices * slotsPerDevice < numExperts)
      return dispatch.emitError()
             << "convert-moe-to-fsep: num-devices * slots-per-device = "
             << numDevices * slotsPerDevice << " expert slots cannot hold E = "
             << numExperts << " experts";

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
    auto bankType = fsep::ExpertsType::get(numExperts, hidden, ffn, element,
                                           numDevices);
    auto planType = fsep::PlanType::get(context, numExperts, numDevices,
                                        slotsPerDevice);
    unsigned bankIndex = func.getNumArguments();
    if (failed(func.insertArgument(
            bankIndex, bankType,
            DictionaryAttr::get(
                context, {NamedAttribute(
                             StringAttr::get(context, "fsep.layer"),
                             IntegerAttr::get(IntegerType::get(context, 64),
                                              layerIndex))}),
            experts.getLoc())))
      return failure();
    Value bank = entry.getArgument(bankIndex);

    OpBuilder b(dispatch);
    Value indices = dispatch.getIndices();
    Value input = dispatch.getInput();
    auto inputType = cast<RankedTensorType>(input.getType());
    auto countsType =
        RankedTensorType::get({numExperts}, b.getI64Type());
    auto slotCountsType =
        RankedTensorType::get({slotsPerDevice}, b.getI64Type());
    auto rowsType = RankedTensorType::get(
        {ShapedType::kDynamic, inputType.getDimSize(1)},
        inputType.getElementType());
    auto slotW13 = RankedTensorType::get({slotsPerDevice, hidden, ffn}, element);
    auto slotW2 = RankedTensorType::get({slotsPerDevice, ffn, hidden}, element);

    Value counts;
    if (stepPlans)
      counts = fsep::LocalCountsOp::create(b, loc, countsType, indices);
    Value plan = fsep::RelayoutOp::create(b, loc, planType, counts,
                                          b.getI64IntegerAttr(layerIndex));
    auto restore = fsep::RestoreOp::create(b, loc, slotW13, slotW13, slotW2,
                                           bank, plan);

    b.setInsertionPoint(layer.combine);
    Value output;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      IntegerAttr chunkAttr, chunksAttr;
      if (chunks > 1) {
        chunkAttr = b.getI64IntegerAttr(chunk);
        chunksAttr = b.getI64IntegerAttr(chunks);
      }
      auto sent = fsep::DispatchOp::create(b, loc, rowsType, slotCountsType,
                                           input, indices, plan, chunkAttr,
                                           chunksAttr);
      Value y = fsep::ExpertComputeOp::create(
          b, experts.getLoc(), rowsType, sent.getRows(), sent.getSlotCounts(),
          restore.getW1(), restore.getW3(), restore.getW2(),
          experts.getActivationAttr(), chunkAttr, chunksAttr);
      Value part = fsep::CombineOp::create(
          b, layer.combine.getLoc(), layer.combine.getType(), y, indices,
          layer.combine.getWeights(), plan, chunkAttr, chunksAttr);
      output = output ? arith::AddFOp::create(b, layer.combine.getLoc(),
                                              output, part)
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
};

} // namespace
