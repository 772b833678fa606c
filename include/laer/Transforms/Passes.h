//===- Passes.h - laer model-level passes -----------------------*- C++ -*-===//

#ifndef LAER_TRANSFORMS_PASSES_H
#define LAER_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace laer {

#define GEN_PASS_DECL
#include "laer/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "laer/Transforms/Passes.h.inc"

} // namespace laer

#endif // LAER_TRANSFORMS_PASSES_H
