//===- OperandChecker.h - named shape checks for op verifiers --*- C++ -*-===//
//
// Shape and type checks shared by the verifiers of the laer dialects. Each
// check emits its own diagnostic on the op, naming the operand and the
// dimension at fault, and returns failure; dynamic dimensions pass wherever
// a static size is not required. Checks take types, so a verifier can check
// the value inside an `!fsep.async<...>` the same way.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_DIALECT_UTILS_OPERANDCHECKER_H
#define LAER_DIALECT_UTILS_OPERANDCHECKER_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"

namespace laer {

enum class ElementKind { Float, Integer };

class OperandChecker {
public:
  explicit OperandChecker(mlir::Operation *op) : op(op) {}

  /// `type` is a ranked tensor of `rank` with elements of `kind`.
  mlir::LogicalResult tensor(mlir::Type type, llvm::StringRef name,
                             int64_t rank, ElementKind kind);
  /// Dimension `aDim` of `a` and `bDim` of `b` are the same size `symbol`.
  mlir::LogicalResult sameDim(mlir::Type a, llvm::StringRef aName,
                              unsigned aDim, mlir::Type b,
                              llvm::StringRef bName, unsigned bDim,
                              llvm::StringRef symbol);
  /// Dimension `d` of `type` equals `expected` (`what` says where the
  /// expectation comes from). A dynamic size passes unless `requireStatic`.
  mlir::LogicalResult dimIs(mlir::Type type, llvm::StringRef name, unsigned d,
                            int64_t expected, llvm::StringRef what,
                            bool requireStatic = false);
  mlir::LogicalResult sameElementType(mlir::Type a, llvm::StringRef aName,
                                      mlir::Type b, llvm::StringRef bName);
  /// `top_k` lies in [1, numExperts].
  mlir::LogicalResult topK(int64_t topK, int64_t numExperts);

  // Value conveniences.
  mlir::LogicalResult tensor(mlir::Value value, llvm::StringRef name,
                             int64_t rank, ElementKind kind) {
    return tensor(value.getType(), name, rank, kind);
  }
  mlir::LogicalResult sameDim(mlir::Value a, llvm::StringRef aName,
                              unsigned aDim, mlir::Value b,
                              llvm::StringRef bName, unsigned bDim,
                              llvm::StringRef symbol) {
    return sameDim(a.getType(), aName, aDim, b.getType(), bName, bDim, symbol);
  }
  mlir::LogicalResult dimIs(mlir::Value value, llvm::StringRef name, unsigned d,
                            int64_t expected, llvm::StringRef what,
                            bool requireStatic = false) {
    return dimIs(value.getType(), name, d, expected, what, requireStatic);
  }
  mlir::LogicalResult sameElementType(mlir::Value a, llvm::StringRef aName,
                                      mlir::Value b, llvm::StringRef bName) {
    return sameElementType(a.getType(), aName, b.getType(), bName);
  }

  /// `value`'s static element count times `copies` fits a 64-bit size
  /// (`what` names the whole); dynamic shapes pass.
  mlir::LogicalResult elementsTimesFit(mlir::Value value, llvm::StringRef name,
                                       int64_t copies, llvm::StringRef what);

  static int64_t dim(mlir::Type type, unsigned d) {
    return mlir::cast<mlir::RankedTensorType>(type).getDimSize(d);
  }
  static int64_t dim(mlir::Value value, unsigned d) {
    return dim(value.getType(), d);
  }

private:
  mlir::Operation *op;
};

} // namespace laer

#endif // LAER_DIALECT_UTILS_OPERANDCHECKER_H
