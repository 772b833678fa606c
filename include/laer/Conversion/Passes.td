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
           "experts each rank restores and computes per step (C)">,
    Option<"chunks", "chunks", "int64_t", /*default=*/"1",
           "chunks of the token exchanges (K)">,
    Option<"stepPlans", "step-plans", "bool", /*default=*/"false",
           "plan layouts from this step's counts instead of the history">,
  ];
  let dependentDialects = ["::laer::fsep::FSEPDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // LAER_CONVERSION_PASSES_TD
