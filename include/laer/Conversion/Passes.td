//===- Passes.td - laer conversion passes ------------------*- tablegen -*-===//

#ifndef LAER_CONVERSION_PASSES_TD
#define LAER_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToFSEP : Pass<"convert-moe-to-fsep", "::mlir::ModuleOp"> {
  let summary = "Lower decomposed MoE layers to the per-rank FSEP program";
  let description = [{
    Turns each routed MoE layer (`moe.dispatch` -> `moe.experts` ->
    `moe.combine`, as `moe-decompose` leaves it) into the FSEP sequence of
    one rank out of `num-devices`:

    ```
    %plan   = fsep.relayout layer = L             // the relayout hook
    %w1, %w3, %w2 = fsep.restore %bank, %plan     // C experts' weights
    %rows, %slots = fsep.dispatch %x, %indices, %plan
    %y      = fsep.expert_compute %rows, %slots, %w1, %w3, %w2
    %out    = fsep.combine %y, %indices, %weights, %plan
    ```

    The layer's expert weights `w1`, `w3`, `w2` must be arguments of the
    enclosing function; they are replaced by one `!fsep.experts` argument,
    this rank's shards of the layer's experts, tagged `fsep.layer = L`.
    Layers are numbered in order of appearance in the module. By default
    the layout comes from the load history, so restores can be prefetched
    (`fsep-schedule`); with `step-plans` the layout follows this step's
    counts (`fsep.local_counts` feeds the relayout). With
    `chunks = K > 1` dispatch, compute and combine are split into K chunks
    (each a share of every token block) whose outputs are summed, ready for
    `fsep-schedule` to pipeline. Shared experts (`moe.experts` not fed by a
    dispatch) stay dense.
  }];
  let options = [
    Option<"numDevices", "num-devices", "int64_t", /*default=*/"0",
           "ranks the experts are sharded over (N)">,
    Option<"slotsPerDevice", "slots-per-device", "int64_t", /*default=*/"0",
           "experts each rank restores and computes per step (C; 0: ceil(E / N) + 1)">,
    Option<"chunks", "chunks", "int64_t", /*default=*/"1",
           "chunks of the token exchanges (K)">,
    Option<"stepPlans", "step-plans", "bool", /*default=*/"false",
           "plan layouts from this step's counts instead of the history">,
  ];
  let dependentDialects = ["::laer::fsep::FSEPDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

def ConvertLAERToRuntime : Pass<"convert-laer-to-runtime", "::mlir::ModuleOp"> {
  let summary = "Lower a differentiated model to calls of the laer runtime's C ABI";
  let description = [{
    Takes the module `laer-autodiff` leaves (the loss function `@f` and
    `@f_grad`) and builds the two entry points of a compiled training
    program, on memrefs:

    - `@laer_model_declare(%ctx)` declares the model to the runtime: the
      vocabulary and sequence length, every dense parameter (shape and
      initialisation: norm weights start at one, matrices uniform with a
      1/sqrt(fan-in) scale) and every MoE layer (experts, sizes, routing).
    - `@laer_train_step(%ctx, %ids, %targets) -> f32` runs `@f_grad` with
      every `dense` op, `moe.layer` and `moe.layer_grad` a call of a
      `laerrt_*` function (the runtime executes MoE layers with FSEP and
      calls the planner at their relayout hook), residual adds as
      `linalg.add`, then the update: each dense gradient is averaged over
      the data-parallel ranks (`laerrt_allreduce_mean`) and stepped with
      AdamW (`laerrt_adamw`); each MoE layer's FSEP shards and gate are
      averaged and stepped by `laerrt_moe_update`. Returns this rank's loss.

    The ops are lowered by a DialectConversion: tensors become memrefs
    (type converter), `dense`, `moe` and `fsep` ops are illegal, and one
    conversion pattern per op emits its runtime call; values an FSEP layer
    keeps in the runtime get no buffer.

    Dense parameters live in the runtime (`laerrt_dense_parameter` hands
    out a view); the expert weights and gate of each MoE layer are the
    runtime's FSEP shards and never appear in the lowered code. The first
    two arguments of `@f` must be the token ids and targets
    (`tensor<?xi32>`). Every runtime function is declared with
    `llvm.emit_c_interface`; `@f` and `@f_grad` are removed.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"\"",
           "the loss function (default: the one with an `_grad` twin)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::memref::MemRefDialect"];
}

#endif // LAER_CONVERSION_PASSES_TD
