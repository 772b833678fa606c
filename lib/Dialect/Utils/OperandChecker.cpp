//===- OperandChecker.cpp - named shape checks for op verifiers -----------===//

#include "laer/Dialect/Utils/OperandChecker.h"

#include "llvm/Support/MathExtras.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using laer::OperandChecker;

LogicalResult OperandChecker::tensor(Type type, StringRef name, int64_t rank,
                                     ElementKind kind) {
  auto tensorType = dyn_cast<RankedTensorType>(type);
  if (!tensorType)
    return op->emitOpError()
           << "'" << name << "' must be a ranked tensor, got " << type;
  if (tensorType.getRank() != rank)
    return op->emitOpError()
           << "'" << name << "' must have rank " << rank << ", got " << type;
  Type element = tensorType.getElementType();
  if (kind == ElementKind::Float && !isa<FloatType>(element))
    return op->emitOpError()
           << "'" << name << "' must have floating-point elements, got "
           << type;
  if (kind == ElementKind::Integer && !isa<IntegerType>(element))
    return op->emitOpError()
           << "'" << name << "' must have integer elements, got " << type;
  // Sizes are 64-bit everywhere downstream (buffers, the runtime's ABI):
  // a tensor whose element count does not fit is refused here, not
  // truncated or overflowed later.
  int64_t elements = 1;
  for (int64_t size : tensorType.getShape()) {
    if (ShapedType::isDynamic(size))
      continue;
    if (llvm::MulOverflow(elements, size, elements))
      return op->emitOpError()
             << "'" << name << "' has more elements than a 64-bit size "
             << "holds: " << type;
  }
  return success();
}

LogicalResult OperandChecker::elementsTimesFit(Value value, StringRef name,
                                               int64_t copies, StringRef what) {
  auto type = cast<RankedTensorType>(value.getType());
  if (!type.hasStaticShape())
    return success();
  int64_t all = copies;
  for (int64_t size : type.getShape())
    if (llvm::MulOverflow(all, size, all))
      return op->emitOpError()
             << what << " (" << copies << " x the " << type.getNumElements()
             << " elements of '" << name << "') do not fit a 64-bit size";
  return success();
}

LogicalResult OperandChecker::sameDim(Type a, StringRef aName, unsigned aDim,
                                      Type b, StringRef bName, unsigned bDim,
                                      StringRef symbol) {
  int64_t sizeA = dim(a, aDim), sizeB = dim(b, bDim);
  if (ShapedType::isDynamic(sizeA) || ShapedType::isDynamic(sizeB) ||
      sizeA == sizeB)
    return success();
  return op->emitOpError() << symbol << " mismatch: '" << aName
                           << "' dimension " << aDim << " is " << sizeA
                           << " but '" << bName << "' dimension " << bDim
                           << " is " << sizeB;
}

LogicalResult OperandChecker::dimIs(Type type, StringRef name, unsigned d,
                                    int64_t expected, StringRef what,
                                    bool requireStatic) {
  int64_t size = dim(type, d);
  if (ShapedType::isDynamic(size)) {
    if (!requireStatic)
      return success();
    return op->emitOpError() << "'" << name << "' dimension " << d
                             << " must be static (" << what << ")";
  }
  if (ShapedType::isDynamic(expected) || size == expected)
    return success();
  return op->emitOpError() << "'" << name << "' dimension " << d << " is "
                           << size << " but must be " << expected << " ("
                           << what << ")";
}

LogicalResult OperandChecker::sameElementType(Type a, StringRef aName, Type b,
                                              StringRef bName) {
  Type ta = getElementTypeOrSelf(a), tb = getElementTypeOrSelf(b);
  if (ta == tb)
    return success();
  return op->emitOpError() << "element type mismatch: '" << aName << "' has "
                           << ta << " but '" << bName << "' has " << tb;
}

LogicalResult OperandChecker::topK(int64_t topK, int64_t numExperts) {
  if (topK >= 1 && topK <= numExperts)
    return success();
  return op->emitOpError() << "top_k must be in [1, E = " << numExperts
                           << "], got " << topK;
}
