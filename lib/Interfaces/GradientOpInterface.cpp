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
} // namespace

void laer::registerUpstreamGradientModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, arith::ArithDialect *) {
    arith::AddFOp::attachInterface<AddFGradient>(*context);
  });
}
