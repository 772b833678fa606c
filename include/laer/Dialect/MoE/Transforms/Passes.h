//===- Passes.h - moe dialect passes ----------------------------*- C++ -*-===//

#ifndef LAER_DIALECT_MOE_TRANSFORMS_PASSES_H
#define LAER_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace laer::moe {

#define GEN_PASS_DECL
#include "laer/Dialect/MoE/Transforms/Passes.h.inc"

/// Patterns that rewrite `moe.layer` into router/dispatch/experts/combine;
/// exposed so that other pipelines can apply them greedily with their own.
void populateDecomposeLayerPatterns(mlir::RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "laer/Dialect/MoE/Transforms/Passes.h.inc"

} // namespace laer::moe

#endif // LAER_DIALECT_MOE_TRANSFORMS_PASSES_H
