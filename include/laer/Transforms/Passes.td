//===- Passes.td - laer model-level passes -----------------*- tablegen -*-===//

#ifndef LAER_TRANSFORMS_PASSES_TD
#define LAER_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def Autodiff : Pass<"laer-autodiff", "::mlir::ModuleOp"> {
  let summary = "Build the gradient function of each loss function";
  let description = [{
    For every function that returns a single scalar float tensor (a loss),
    adds `@<name>_grad` with the same arguments, returning the loss followed
    by the gradient of the loss with respect to every floating-point tensor
    argument (the parameters; integer inputs such as token ids get none).
    The backward is built in reverse order through `GradientOpInterface`:
    every op on the path from the parameters to the loss must implement it,
    otherwise the pass reports the op. Gradients of values used several
    times are summed with `arith.addf`; parameters the loss does not depend
    on get zeros.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // LAER_TRANSFORMS_PASSES_TD
