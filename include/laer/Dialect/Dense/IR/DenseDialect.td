//===- DenseDialect.td - dense transformer ops -------------*- tablegen -*-===//

#ifndef LAER_DIALECT_DENSE_IR_DENSEDIALECT_TD
#define LAER_DIALECT_DENSE_IR_DENSEDIALECT_TD

include "mlir/IR/OpBase.td"

def Dense_Dialect : Dialect {
  let name = "dense";
  let cppNamespace = "::laer::dense";
  let summary = "the dense parts of a MoE transformer language model";
  let description = [{
    Ops a MoE language model needs beside `moe.layer` that upstream MLIR
    has no single op for: token embedding, RMSNorm, causal grouped-query
    self-attention with rotary position embedding, a linear projection and
    the cross-entropy loss. All on value-semantic tensors; tokens are
    `[T, H]` with `T = batch * sequence_length`, sequences stored one after
    the other. Residual additions use `arith.addf`.
  }];
}

class Dense_Op<string mnemonic, list<Trait> traits = []>
    : Op<Dense_Dialect, mnemonic, traits>;

#endif // LAER_DIALECT_DENSE_IR_DENSEDIALECT_TD
