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
    `tensor.expand_shape`), added to the routed output with `arith.addf`;
    shared experts with a sigmoid `shared_gate` become a gated
    `dense.swiglu` instead. Expert indices are `i32`, token counts `i64`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect",
                           "::laer::dense::DenseDialect"];
}

def MoESplitSharedExperts : Pass<"moe-split-shared-experts"> {
  let summary = "Move the shared experts of moe.layer into a dense.swiglu";
  let description = [{
    Shared experts see every token, so they are a dense feed-forward network
    beside the routed experts, not part of expert parallelism: every rank
    computes them on its own tokens, and their weights are dense
    parameters (data-parallel). This pass rewrites

    ```
    %y = moe.layer %x, %gate, %w1, %w3, %w2 shared(%s1, %s3, %s2) ...
    ```

    into the routed layer alone, a `dense.swiglu` of the shared weights and
    their sum:

    ```
    %r = moe.layer %x, %gate, %w1, %w3, %w2 ...
    %s = dense.swiglu %x, %s1, %s3, %s2
    %y = arith.addf %r, %s
    ```

    so that `laer-autodiff` differentiates each part and the FSEP lowering
    sees routed experts only. It runs first in `laer-training-program`.
    `dense.swiglu` is SiLU-gated: a layer whose activation is not `silu`
    is left alone with an error.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::laer::dense::DenseDialect"];
}

#endif // LAER_DIALECT_MOE_TRANSFORMS_PASSES_TD
