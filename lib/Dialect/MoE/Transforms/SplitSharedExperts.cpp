//===- SplitSharedExperts.cpp - shared experts as a dense.swiglu ----------===//

#include "laer/Dialect/Dense/IR/DenseDialect.h"
#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace laer::moe {
#define GEN_PASS_DEF_MOESPLITSHAREDEXPERTS
#include "laer/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace laer::moe

using namespace mlir;
using namespace laer::moe;

namespace {

LogicalResult splitSharedExperts(LayerOp layer) {
  if (layer.getActivation() != Activation::Silu)
    return layer.emitError()
           << "moe-split-shared-experts: shared experts become a "
              "dense.swiglu, which is SiLU-gated; this layer's activation "
              "is '"
           << stringifyActivation(layer.getActivation()) << "'";
  OpBuilder b(layer);
  Location loc = layer.getLoc();
  auto routed = LayerOp::create(
      b, loc, layer->getResultTypes(), layer.getInput(), layer.getGate(),
      layer.getW1(), layer.getW3(), layer.getW2(), Value(), Value(), Value(),
      Value(), layer.getSelectionBias(), layer.getTopKAttr(),
      layer.getScoreAttr(), layer.getRenormalizeAttr(),
      layer.getActivationAttr(), nullptr, nullptr, nullptr, nullptr, nullptr,
      nullptr, nullptr);
  copyRoutingAttributes(layer, routed, /*variants=*/true, /*losses=*/true);
  auto shared = laer::dense::SwiGluOp::create(
      b, loc, layer.getOutput().getType(), layer.getInput(),
      layer.getSharedW1(), layer.getSharedW3(), layer.getSharedW2(),
      layer.getSharedGate());
  auto sum = arith::AddFOp::create(b, loc, routed.getOutput(), shared);
  SmallVector<Value> results{sum.getResult()};
  llvm::append_range(results, routed.getLosses());
  layer->replaceAllUsesWith(results);
  layer.erase();
  return success();
}

struct MoESplitSharedExpertsPass
    : laer::moe::impl::MoESplitSharedExpertsBase<MoESplitSharedExpertsPass> {
  void runOnOperation() override {
    SmallVector<LayerOp> layers;
    getOperation()->walk([&](LayerOp layer) {
      if (layer.hasSharedExperts())
        layers.push_back(layer);
    });
    for (LayerOp layer : layers)
      if (failed(splitSharedExperts(layer)))
        return signalPassFailure();
  }
};

} // namespace
