//===- FSEPOps.h - fsep dialect operations ----------------------*- C++ -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPOPS_H
#define LAER_DIALECT_FSEP_IR_FSEPOPS_H

#include "laer/Dialect/FSEP/IR/FSEPDialect.h"
#include "laer/Dialect/FSEP/IR/FSEPTypes.h"
#include "laer/Dialect/MoE/IR/MoEAttrs.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "laer/Dialect/FSEP/IR/FSEPOps.h.inc"

#endif // LAER_DIALECT_FSEP_IR_FSEPOPS_H
