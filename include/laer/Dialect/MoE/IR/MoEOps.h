//===- MoEOps.h - moe dialect operations ------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_MOE_IR_MOEOPS_H
#define LAER_DIALECT_MOE_IR_MOEOPS_H

#include "laer/Dialect/MoE/IR/MoEAttrs.h"
#include "laer/Dialect/MoE/IR/MoEDialect.h"
#include "laer/Interfaces/GradientOpInterface.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "laer/Dialect/MoE/IR/MoEOps.h.inc"

namespace laer::moe {

/// Copies the routing-variant attributes (scale, groups, top_groups,
/// group_score, bias_update_rate) and, with `losses`, the router-loss
/// attributes (aux_loss, z_loss) that `from` carries onto `to`: the ops
/// that route alike (moe.layer, moe.layer_grad, moe.router,
/// moe.router_grad) share the attribute names.
void copyRoutingAttributes(mlir::Operation *from, mlir::Operation *to,
                           bool variants, bool losses);

} // namespace laer::moe

#endif // LAER_DIALECT_MOE_IR_MOEOPS_H
