//===- MoEDialect.h - moe dialect -------------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_MOE_IR_MOEDIALECT_H
#define LAER_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "laer/Dialect/MoE/IR/MoEOpsDialect.h.inc"

#endif // LAER_DIALECT_MOE_IR_MOEDIALECT_H
