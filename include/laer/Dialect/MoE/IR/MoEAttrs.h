//===- MoEAttrs.h - moe dialect attributes ----------------------*- C++ -*-===//

#ifndef LAER_DIALECT_MOE_IR_MOEATTRS_H
#define LAER_DIALECT_MOE_IR_MOEATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"

#include "laer/Dialect/MoE/IR/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "laer/Dialect/MoE/IR/MoEAttrs.h.inc"

#endif // LAER_DIALECT_MOE_IR_MOEATTRS_H
