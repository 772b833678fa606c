//===- FSEPDialect.td - Fully Sharded Expert Parallel dialect -*- tablegen -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPDIALECT_TD
#define LAER_DIALECT_FSEP_IR_FSEPDIALECT_TD

include "mlir/IR/OpBase.td"

def FSEP_Dialect : Dialect {
  let name = "fsep";
  let cppNamespace = "::laer::fsep";
  let summary = "the per-rank program of Fully Sharded Expert Parallelism";
  let description = [{
    The `fsep` dialect is the SPMD program one rank runs for the MoE layers
    of a model under Fully Sharded Expert Parallelism, with every transfer
    explicit:

    - each layer's experts live as `!fsep.experts`: this rank's 1/N shard of
      every expert's flattened SwiGLU weights (w1 | w3 | w2);
    - `fsep.relayout` is where the planner's plan for a layer enters the
      program (`!fsep.plan`): which experts this rank computes (its C slots)
      and how tokens split among replicas;
    - `fsep.restore` assembles the full weights of the C experts of this
      rank (an all-to-all of shards), `fsep.dispatch` and `fsep.combine`
      move tokens to the experts and back, `fsep.expert_compute` runs the
      grouped SwiGLU over the C slots, and `fsep.grad_reduce` returns weight
      gradients to their owners, summed over replicas;
    - a transfer may run asynchronously: its results then have type
      `!fsep.async<T>` and become usable through `fsep.wait`. The verifier
      rejects any use of an in-flight value other than its wait, and any
      in-place update of a tensor an in-flight transfer still reads.

    Values are tensors (value semantics); the runtime ABI lowering
    (`laerrt_*` calls) gives them buffers.
  }];
  let useDefaultTypePrinterParser = 1;
  let hasOperationAttrVerify = 1;
}

class FSEP_Op<string mnemonic, list<Trait> traits = []>
    : Op<FSEP_Dialect, mnemonic, traits>;

#endif // LAER_DIALECT_FSEP_IR_FSEPDIALECT_TD
