//===- Passes.td - moe dialect passes ----------------------*- tablegen -*-===//

#ifndef LAER_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define LAER_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecompose : Pass<"moe-decompose"> {
  let summary = "Split moe.layer into router, dispatch, experts and combine";
  let description = [{
    Rewrites every `moe.layer` into the four stages the later passes place
    on devices:

    ```
    %idx, %w      = moe.router   %x, %gate
    %rows, %count = moe.dispatch %x, %idx
    %y            = moe.experts  %rows, %count, %w1, %w3, %w2
    %out          = moe.combine  %y, %idx, %w
    ```

    Shared experts become a second `moe.experts` with a single expert that
    receives every token (its weights gain a leading unit dimension through
    `tensor.expand_shape`), added to the routed output with `arith.addf`.
    Expert indices are `i32`, token counts `i64`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // LAER_DIALECT_MOE_TRANSFORMS_PASSES_TD
