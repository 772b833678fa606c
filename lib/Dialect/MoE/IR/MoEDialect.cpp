//===- MoEDialect.cpp - moe dialect registration --------------------------===//

#include "laer/Dialect/MoE/IR/MoEDialect.h"
#include "laer/Dialect/MoE/IR/MoEAttrs.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace laer::moe;

#include "laer/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"
#include "laer/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "laer/Dialect/MoE/IR/MoEAttrs.cpp.inc"

void MoEDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "laer/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "laer/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
}
