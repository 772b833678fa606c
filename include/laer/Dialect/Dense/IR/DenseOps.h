//===- DenseOps.h - dense dialect operations --------------------*- C++ -*-===//

#ifndef LAER_DIALECT_DENSE_IR_DENSEOPS_H
#define LAER_DIALECT_DENSE_IR_DENSEOPS_H

#include "laer/Dialect/Dense/IR/DenseDialect.h"
#include "laer/Interfaces/GradientOpInterface.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "laer/Dialect/Dense/IR/DenseOps.h.inc"

#endif // LAER_DIALECT_DENSE_IR_DENSEOPS_H
