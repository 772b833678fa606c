//===- Passes.td - fsep dialect passes ---------------------*- tablegen -*-===//

#ifndef LAER_DIALECT_FSEP_TRANSFORMS_PASSES_TD
#define LAER_DIALECT_FSEP_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def FSEPSchedule : Pass<"fsep-schedule", "::mlir::func::FuncOp"> {
  let summary = "Overlap FSEP transfers with computation";
  let description = [{
    Rewrites the per-rank FSEP program of a function so communication runs
    beside computation, with explicit `fsep.wait`s:

    - **restore prefetch**: the restore of layer l is started
      asynchronously right after the first token dispatch of layer
      l - `prefetch` (at the start of the function for the first layers),
      so it overlaps that layer's expert compute; its plan
      (`fsep.relayout` from the load history) moves with it. Restores whose
      plan needs this step's counts only become asynchronous in place.
    - **chunk pipelining**: chunked dispatches become asynchronous, chunk
      c + 1's dispatch is issued before chunk c's compute, and each chunk's
      combine runs while the next chunk computes.
    - **deferred gradient reduction**: every `fsep.grad_reduce` becomes
      asynchronous and is waited for only before its first use, or at the
      end of the function, so it overlaps the backward of earlier layers.

    - **filled windows**: side-effect-free work after a layer that needs
      none of its exchanges (the shared experts, which read the layer's
      input) moves before the first wait that follows the layer's first
      dispatch, so it runs while tokens and parameters are in flight.
    - **streams**: every asynchronous transfer gets `fsep.stream = "params"`
      (restores and gradient reductions) or `fsep.stream = "tokens"`
      (dispatches and combines), so parameter traffic runs beside token
      traffic (on the GPU: its own stream and NCCL communicator).

    Every wait sits before the first use of the value it yields; the fsep
    verifier checks that no value is used before its wait and that no
    tensor is updated in place while a transfer still reads it.
  }];
  let options = [
    Option<"prefetch", "prefetch", "int64_t", /*default=*/"1",
           "how many layers ahead restores are issued">,
  ];
  let dependentDialects = ["::laer::fsep::FSEPDialect"];
}

#endif // LAER_DIALECT_FSEP_TRANSFORMS_PASSES_TD
