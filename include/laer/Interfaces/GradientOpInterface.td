//===- GradientOpInterface.td - ops that know their gradient -*- tablegen -*-===//

#ifndef LAER_INTERFACES_GRADIENTOPINTERFACE_TD
#define LAER_INTERFACES_GRADIENTOPINTERFACE_TD

include "mlir/IR/OpBase.td"

def GradientOpInterface : OpInterface<"GradientOpInterface"> {
  let cppNamespace = "::laer";
  let description = [{
    An op that can emit its own reverse-mode derivative: given the
    gradients of its results, it builds (at the builder's insertion point)
    the gradients of its operands. `laer-autodiff` walks a forward function
    backwards through this interface to build the training step.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds the gradients of the operands from `resultGrads` (one per
        result; a null value means no gradient reaches that result). Fills
        `operandGrads` with one value per operand, null for an operand that
        has no gradient (integer inputs such as token ids).
      }],
      "::llvm::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ValueRange":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // LAER_INTERFACES_GRADIENTOPINTERFACE_TD
