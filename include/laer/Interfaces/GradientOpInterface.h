//===- GradientOpInterface.h - ops that know their gradient -----*- C++ -*-===//

#ifndef LAER_INTERFACES_GRADIENTOPINTERFACE_H
#define LAER_INTERFACES_GRADIENTOPINTERFACE_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"

#include "laer/Interfaces/GradientOpInterface.h.inc"

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace laer {
/// Gradients of upstream ops the model IR uses (arith.addf).
void registerUpstreamGradientModels(mlir::DialectRegistry &registry);
} // namespace laer

#endif // LAER_INTERFACES_GRADIENTOPINTERFACE_H
