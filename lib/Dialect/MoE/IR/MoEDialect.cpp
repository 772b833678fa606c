//===- MoEDialect.cpp - moe dialect registration --------------------------===//

#include "laer/Dialect/MoE/IR/MoEDialect.h"
#include "laer/Dialect/MoE/IR/MoEAttrs.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace laer::moe;

#include "laer/Dialect/MoE/IR/MoEEnums.cpp.inc"
#include "laer/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

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

//===----------------------------------------------------------------------===//
// #moe.parameter
//===----------------------------------------------------------------------===//

Attribute ParameterAttr::parse(AsmParser &parser, Type) {
  std::string name;
  bool transposed = false;
  if (parser.parseLess() || parser.parseString(&name))
    return {};
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("transposed"))
      return {};
    transposed = true;
  }
  if (parser.parseGreater())
    return {};
  return ParameterAttr::get(parser.getContext(), name, transposed);
}

void ParameterAttr::print(AsmPrinter &printer) const {
  printer << "<\"";
  llvm::printEscapedString(getName(), printer.getStream());
  printer << "\"";
  if (getTransposed())
    printer << ", transposed";
  printer << ">";
}

namespace {

/// Checks one #moe.parameter for an argument of `type` (null: one of an
/// expert bank's three weights, a per-expert matrix).
LogicalResult verifyParameter(Operation *op, unsigned argIndex,
                              ParameterAttr parameter, Type type) {
  auto fail = [&]() {
    return op->emitOpError() << "argument " << argIndex << ": #moe.parameter<\""
                             << parameter.getName() << "\"> ";
  };
  StringRef name = parameter.getName();
  if (name.empty())
    return fail() << "has an empty name";
  size_t stars = name.count('*');
  auto tensor = dyn_cast_or_null<RankedTensorType>(type);
  bool expertStack = !type || (tensor && tensor.getRank() == 3);
  if (type && !tensor)
    return fail() << "names an argument of type " << type
                  << ", not a ranked tensor";
  if (expertStack && stars != 1)
    return fail() << "names a stack of per-expert matrices: its name needs "
                     "exactly one '*' for the expert's number";
  if (!expertStack && stars != 0)
    return fail() << "has a '*' but names a single tensor";
  if (parameter.getTransposed() && tensor && tensor.getRank() == 1)
    return fail() << "is transposed but names a vector";
  return success();
}

} // namespace

LogicalResult MoEDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attribute) {
  if (attribute.getName() != kParameterAttrName)
    return op->emitOpError()
           << "argument " << argIndex << ": unknown moe "
           << "argument attribute '" << attribute.getName().getValue() << "'";
  Region &region = op->getRegion(regionIndex);
  Type type = region.empty() ? Type() : region.getArgument(argIndex).getType();
  if (auto parameter = dyn_cast<ParameterAttr>(attribute.getValue()))
    return verifyParameter(op, argIndex, parameter, type);
  // An expert bank (fsep.experts): the parameters of w1, w3 and w2.
  auto array = dyn_cast<ArrayAttr>(attribute.getValue());
  if (array && array.size() == 3 &&
      llvm::all_of(array, llvm::IsaPred<ParameterAttr>)) {
    for (Attribute element : array)
      if (failed(verifyParameter(op, argIndex, cast<ParameterAttr>(element),
                                 Type())))
        return failure();
    return success();
  }
  return op->emitOpError()
         << "argument " << argIndex << ": moe.parameter must be a "
         << "#moe.parameter (or, on an expert bank, an array of the three "
            "weights' #moe.parameter), got "
         << attribute.getValue();
}
