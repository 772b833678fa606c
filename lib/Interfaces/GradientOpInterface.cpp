//===- GradientOpInterface.cpp - ops that know their gradient -------------===//

#include "laer/Interfaces/GradientOpInterface.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;

#include "laer/Interfaces/GradientOpInterface.cpp.inc"

namespace {
/// d(a + b) = (d, d).
struct AddFGradient
    : laer::GradientOpInterface::ExternalModel<AddFGradient, arith::AddFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &builder,
                               ValueRange resultGrads,
                               SmallVectorImpl<Value> &operandGrads) const {
    operandGrads.assign({resultGrads[0], resultGrads[0]});
    return success();
  }
};
/// d(a * b) = (d * b, d * a).
struct MulFGradient
    : laer::GradientOpInterface::ExternalModel<MulFGradient, arith::MulFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &builder,
                               ValueRange resultGrads,
                               SmallVectorImpl<Value> &operandGrads) const {
    auto mul = cast<arith::MulFOp>(op);
    Location loc = op->getLoc();
    Value d = resultGrads[0];
    operandGrads.assign(
        {arith::MulFOp::create(builder, loc, d, mul.getRhs()).getResult(),
         arith::MulFOp::create(builder, loc, d, mul.getLhs()).getResult()});
    return success();
  }
};
} // namespace

void laer::registerUpstreamGradientModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, arith::ArithDialect *) {
    arith::AddFOp::attachInterface<AddFGradient>(*context);
    arith::MulFOp::attachInterface<MulFGradient>(*context);
  });
}
