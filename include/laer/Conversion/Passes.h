//===- Passes.h - laer conversion passes ------------------------*- C++ -*-===//

#ifndef LAER_CONVERSION_PASSES_H
#define LAER_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"

namespace laer {

#define GEN_PASS_DECL
#include "laer/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "laer/Conversion/Passes.h.inc"

} // namespace laer

#endif // LAER_CONVERSION_PASSES_H
