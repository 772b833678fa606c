//===- Decompose.cpp - moe.layer into its four stages ---------------------===//

#include "laer/Dialect/Dense/IR/DenseDialect.h"
#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace laer::moe {
#define GEN_PASS_DEF_MOEDECOMPOSE
#include "laer/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace laer::moe

using namespace mlir;
using namespace laer::moe;

namespace {

/// Counts tensor `[1]` holding the number of tokens, for a shared expert
/// that sees every token.
Value buildAllTokensCount(PatternRewriter &rewriter, Location loc,
                          Value input) {
  auto countsType = RankedTensorType::get({1}, rewriter.getI64Type());
  int64_t tokens = cast<RankedTensorType>(input.getType()).getDimSize(0);
  if (!ShapedType::isDynamic(tokens))
    return arith::ConstantOp::create(
        rewriter, loc, DenseElementsAttr::get(countsType, tokens));
  Value dim = tensor::DimOp::create(rewriter, loc, input, 0);
  Value count =
      arith::IndexCastOp::create(rewriter, loc, rewriter.getI64Type(), dim);
  return tensor::FromElementsOp::create(rewriter, loc, countsType,
                                        ValueRange{count});
}

/// `[A, B]` weight as a one-expert `[1, A, B]` stack.
Value buildSingleExpertWeight(PatternRewriter &rewriter, Location loc,
                              Value weight) {
  auto type = cast<RankedTensorType>(weight.getType());
  auto stacked = RankedTensorType::get(
      {1, type.getDimSize(0), type.getDimSize(1)}, type.getElementType());
  SmallVector<ReassociationIndices> reassociation = {{0, 1}, {2}};
  return tensor::ExpandShapeOp::create(rewriter, loc, stacked, weight,
                                       reassociation);
}

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp layer,
                                PatternRewriter &rewriter) const override {
    Location loc = layer.getLoc();
    Value input = layer.getInput();
    auto inputType = cast<RankedTensorType>(input.getType());
    int64_t tokens = inputType.getDimSize(0);
    int64_t hidden = inputType.getDimSize(1);
    Type element = inputType.getElementType();
    int64_t experts =
        cast<RankedTensorType>(layer.getGate().getType()).getDimSize(1);
    int64_t topK = layer.getTopK();
    int64_t rows =
        ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens * topK;

    auto indicesType =
        RankedTensorType::get({tokens, topK}, rewriter.getI32Type());
    auto weightsType = RankedTensorType::get({tokens, topK}, element);
    SmallVector<Type> routerTypes{indicesType, weightsType};
    llvm::append_range(routerTypes, layer.getLosses().getTypes());
    auto router = RouterOp::create(rewriter, loc, routerTypes, input,
                                   layer.getGate(), layer.getSelectionBias(),
                                   layer.getTopKAttr(), layer.getScoreAttr(),
                                   layer.getRenormalizeAttr(), nullptr, nullptr,
                                   nullptr, nullptr, nullptr, nullptr, nullptr);
    copyRoutingAttributes(layer, router, /*variants=*/true, /*losses=*/true);

    auto rowsType = RankedTensorType::get({rows, hidden}, element);
    auto countsType = RankedTensorType::get({experts}, rewriter.getI64Type());
    auto dispatch = DispatchOp::create(rewriter, loc, rowsType, countsType,
                                       input, router.getIndices());
    auto expertsOp = ExpertsOp::create(
        rewriter, loc, rowsType, dispatch.getRows(), dispatch.getCounts(),
        layer.getW1(), layer.getW3(), layer.getW2(), layer.getActivation());
    Value output =
        CombineOp::create(rewriter, loc, inputType, expertsOp.getOutput(),
                          router.getIndices(), router.getWeights());

    if (layer.getSharedGate()) {
      // A gated shared expert is a dense.swiglu with its gate.
      Value shared = laer::dense::SwiGluOp::create(
          rewriter, loc, inputType, input, layer.getSharedW1(),
          layer.getSharedW3(), layer.getSharedW2(), layer.getSharedGate());
      output = arith::AddFOp::create(rewriter, loc, output, shared);
    } else if (layer.hasSharedExperts()) {
      Value counts = buildAllTokensCount(rewriter, loc, input);
      Value w1 = buildSingleExpertWeight(rewriter, loc, layer.getSharedW1());
      Value w3 = buildSingleExpertWeight(rewriter, loc, layer.getSharedW3());
      Value w2 = buildSingleExpertWeight(rewriter, loc, layer.getSharedW2());
      auto shared = ExpertsOp::create(rewriter, loc, inputType, input, counts,
                                      w1, w3, w2, layer.getActivation());
      output = arith::AddFOp::create(rewriter, loc, output, shared.getOutput());
    }
    SmallVector<Value> results{output};
    llvm::append_range(results, router.getLosses());
    rewriter.replaceOp(layer, results);
    return success();
  }
};

struct MoEDecomposePass : laer::moe::impl::MoEDecomposeBase<MoEDecomposePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeLayerPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void laer::moe::populateDecomposeLayerPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeLayer>(patterns.getContext());
}
