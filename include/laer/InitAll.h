//===- InitAll.h - register laer dialects and passes ------------*- C++ -*-===//
//
// The one place that knows every dialect and pass laer provides; tools and
// tests call these instead of listing dialects themselves.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_INITALL_H
#define LAER_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace laer {

/// Adds the laer dialects (moe, fsep, dense) and the upstream dialects a model
/// IR uses (func, arith, tensor, linalg, scf, memref, bufferization) to
/// `registry`.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Registers every laer pass and pipeline with the global pass registry.
void registerAllPasses();

} // namespace laer

#endif // LAER_INITALL_H
