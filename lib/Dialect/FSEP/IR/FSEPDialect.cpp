//===- FSEPDialect.cpp - fsep dialect and its types -----------------------===//

#include "laer/Dialect/FSEP/IR/FSEPDialect.h"
#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/FSEP/IR/FSEPTypes.h"
#include "laer/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace laer::fsep;

#include "laer/Dialect/FSEP/IR/FSEPOpsDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "laer/Dialect/FSEP/IR/FSEPOpsTypes.cpp.inc"

void FSEPDialect::initialize() {
  // Expert ops carry `#moe.activation` attributes.
  getContext()->getOrLoadDialect<laer::moe::MoEDialect>();
  addTypes<
#define GET_TYPEDEF_LIST
#include "laer/Dialect/FSEP/IR/FSEPOpsTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "laer/Dialect/FSEP/IR/FSEPOps.cpp.inc"
      >();
}

LogicalResult FSEPDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attribute) {
  if (attribute.getName() != "fsep.stream")
    return op->emitError() << "unknown fsep attribute '" << attribute.getName()
                           << "'";
  auto stream = dyn_cast<StringAttr>(attribute.getValue());
  if (!stream ||
      (stream.getValue() != "params" && stream.getValue() != "tokens"))
    return op->emitError()
           << "'fsep.stream' must be \"params\" or \"tokens\", got "
           << attribute.getValue();
  if (!isa<RestoreOp, DispatchOp, CombineOp, CombineBackwardOp,
           DispatchBackwardOp, GradReduceOp>(op))
    return op->emitError()
           << "'fsep.stream' belongs on fsep transfers, not on '"
           << op->getName() << "'";
  return success();
}

LogicalResult ExpertsType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t experts, int64_t hidden, int64_t ffn,
                                  Type element, int64_t shards, int64_t shard) {
  if (experts < 1 || hidden < 1 || ffn < 1 || shards < 1)
    return emitError() << "experts, hidden, ffn and shards must be >= 1, got "
                       << experts << ", " << hidden << ", " << ffn << ", "
                       << shards;
  if (!isa<FloatType>(element))
    return emitError() << "expert weights must be floating point, got "
                       << element;
  // 3 * hidden * ffn elements per expert, all of them: checked, as the
  // sizes come from the IR.
  int64_t perExpert = 0, all = 0;
  if (llvm::MulOverflow(hidden, ffn, perExpert) ||
      llvm::MulOverflow(perExpert, int64_t(3), perExpert) ||
      llvm::MulOverflow(perExpert, experts, all))
    return emitError() << "experts of 3 x " << hidden << " x " << ffn
                       << " elements, " << experts
                       << " of them, exceed a 64-bit size";
  int64_t total = perExpert;
  int64_t expected = total / shards + (total % shards != 0 ? 1 : 0);
  if (shard != expected)
    return emitError() << "shard of " << shard
                       << " elements does not cut 3 * hidden * ffn = " << total
                       << " into " << shards << " equal pieces; expected "
                       << expected;
  return success();
}

LogicalResult PlanType::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t experts, int64_t ranks, int64_t slots) {
  if (experts < 1 || ranks < 1 || slots < 1)
    return emitError() << "experts, ranks and slots must be >= 1, got "
                       << experts << ", " << ranks << ", " << slots;
  int64_t capacity = 0;
  if (llvm::MulOverflow(ranks, slots, capacity))
    return emitError() << "ranks * slots = " << ranks << " * " << slots
                       << " exceeds a 64-bit size";
  if (capacity < experts)
    return emitError() << "ranks * slots = " << capacity << " cannot hold "
                       << experts << " experts";
  return success();
}
