//===- FSEPTypes.h - fsep dialect types -------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPTYPES_H
#define LAER_DIALECT_FSEP_IR_FSEPTYPES_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "laer/Dialect/FSEP/IR/FSEPOpsTypes.h.inc"

#endif // LAER_DIALECT_FSEP_IR_FSEPTYPES_H
