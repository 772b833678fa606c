//===- Passes.h - fsep dialect passes ---------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_FSEP_TRANSFORMS_PASSES_H
#define LAER_DIALECT_FSEP_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace laer::fsep {

#define GEN_PASS_DECL
#include "laer/Dialect/FSEP/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "laer/Dialect/FSEP/Transforms/Passes.h.inc"

} // namespace laer::fsep

#endif // LAER_DIALECT_FSEP_TRANSFORMS_PASSES_H
