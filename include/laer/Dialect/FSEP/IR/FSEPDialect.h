//===- FSEPDialect.h - fsep dialect -----------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPDIALECT_H
#define LAER_DIALECT_FSEP_IR_FSEPDIALECT_H

#include "mlir/IR/Dialect.h"

#include "laer/Dialect/FSEP/IR/FSEPOpsDialect.h.inc"

#endif // LAER_DIALECT_FSEP_IR_FSEPDIALECT_H
