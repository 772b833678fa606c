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

#endif // LAER_DIALECT_MOE_IR_MOEOPS_H
