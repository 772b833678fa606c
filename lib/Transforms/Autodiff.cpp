//===- Autodiff.cpp - reverse-mode gradient of a loss function ------------===//

#include "laer/Interfaces/GradientOpInterface.h"
#include "laer/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

namespace laer {
#define GEN_PASS_DEF_AUTODIFF
#include "laer/Transforms/Passes.h.inc"
} // namespace laer

using namespace mlir;

namespace {

/// A single scalar float result: the loss.
bool isLossFunction(func::FuncOp func) {
  if (func.isExternal() || func.getNumResults() != 1 ||
      !func.getBody().hasOneBlock())
    return false;
  auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[0]);
  return type && type.getRank() == 0 && isa<FloatType>(type.getElementType());
}

bool isParameter(BlockArgument arg) {
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  return type && isa<FloatType>(type.getElementType());
}

LogicalResult buildGradientFunction(func::FuncOp forward) {
  OpBuilder b(forward->getContext());
  b.setInsertionPointAfter(forward);
  auto gradient = cast<func::FuncOp>(b.clone(*forward));
  gradient.setSymName((forward.getSymName() + "_grad").str());
  Block &body = gradient.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value loss = ret.getOperand(0);
  b.setInsertionPoint(ret);

  llvm::DenseMap<Value, Value> grads;
  auto lossType = cast<RankedTensorType>(loss.getType());
  grads[loss] = arith::ConstantOp::create(
      b, gradient.getLoc(),
      DenseElementsAttr::get(lossType,
                             b.getFloatAttr(lossType.getElementType(), 1.0)));
  auto accumulate = [&](Value value, Value grad) {
    auto [it, inserted] = grads.try_emplace(value, grad);
    if (!inserted)
      it->second = arith::AddFOp::create(b, grad.getLoc(), it->second, grad);
  };

  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value result : op->getResults()) {
      resultGrads.push_back(grads.lookup(result));
      any |= static_cast<bool>(resultGrads.back());
    }
    // Constants (a loss coefficient) are not differentiated.
    if (!any || op->hasTrait<OpTrait::ConstantLike>())
      continue;
    auto differentiable = dyn_cast<laer::GradientOpInterface>(op);
    if (!differentiable)
      return op->emitError() << "laer-autodiff: '" << op->getName()
                             << "' lies between the parameters and the "
                                "loss but has no gradient";
    // Results that do not reach the loss (a router loss the model does
    // not use) have a zero gradient.
    for (auto [result, grad] : llvm::zip(op->getResults(), resultGrads)) {
      if (grad)
        continue;
      auto type = dyn_cast<RankedTensorType>(result.getType());
      if (!type || !type.hasStaticShape() ||
          !isa<FloatType>(type.getElementType()))
        return op->emitError()
               << "laer-autodiff: result #"
               << cast<OpResult>(result).getResultNumber()
               << " does not reach the loss and has no static float type "
                  "for a zero gradient";
      grad = arith::ConstantOp::create(
          b, op->getLoc(),
          DenseElementsAttr::get(type,
                                 b.getFloatAttr(type.getElementType(), 0.0)));
    }
    SmallVector<Value> operandGrads;
    if (failed(differentiable.buildGradients(b, resultGrads, operandGrads)))
      return failure();
    for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads))
      if (grad)
        accumulate(operand, grad);
  }

  SmallVector<Value> results = {loss};
  for (BlockArgument arg : body.getArguments()) {
    if (!isParameter(arg))
      continue;
    Value grad = grads.lookup(arg);
    if (!grad) {
      auto type = cast<RankedTensorType>(arg.getType());
      if (!type.hasStaticShape())
        return gradient.emitError()
               << "laer-autodiff: the loss does not "
                  "depend on argument #"
               << arg.getArgNumber() << " and its shape is dynamic";
      grad = arith::ConstantOp::create(
          b, arg.getLoc(),
          DenseElementsAttr::get(type,
                                 b.getFloatAttr(type.getElementType(), 0.0)));
    }
    results.push_back(grad);
  }
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();
  gradient.setFunctionType(b.getFunctionType(body.getArgumentTypes(),
                                             ValueRange(results).getTypes()));
  return success();
}

struct AutodiffPass : laer::impl::AutodiffBase<AutodiffPass> {
  void runOnOperation() override {
    SmallVector<func::FuncOp> losses;
    for (func::FuncOp func : getOperation().getOps<func::FuncOp>())
      if (isLossFunction(func))
        losses.push_back(func);
    for (func::FuncOp func : losses)
      if (failed(buildGradientFunction(func)))
        return signalPassFailure();
  }
};

} // namespace
