//===- DenseDialect.cpp - dense dialect registration ----------------------===//

#include "laer/Dialect/Dense/IR/DenseDialect.h"
#include "laer/Dialect/Dense/IR/DenseOps.h"

using namespace mlir;
using namespace laer::dense;

#include "laer/Dialect/Dense/IR/DenseOpsDialect.cpp.inc"

void DenseDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "laer/Dialect/Dense/IR/DenseOps.cpp.inc"
      >();
}
