//===- DenseDialect.h - dense dialect ---------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_DENSE_IR_DENSEDIALECT_H
#define LAER_DIALECT_DENSE_IR_DENSEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "laer/Dialect/Dense/IR/DenseOpsDialect.h.inc"

#endif // LAER_DIALECT_DENSE_IR_DENSEDIALECT_H
