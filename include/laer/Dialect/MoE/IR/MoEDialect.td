//===- MoEDialect.td - Mixture-of-Experts dialect ----------*- tablegen -*-===//
//
// The `moe` dialect describes Mixture-of-Experts layers of a model on
// tensors, before any decision about devices is taken.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_DIALECT_MOE_IR_MOEDIALECT_TD
#define LAER_DIALECT_MOE_IR_MOEDIALECT_TD

include "mlir/IR/OpBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::laer::moe";
  let summary = "Mixture-of-Experts layers on tensors";
  let description = [{
    The `moe` dialect represents the Mixture-of-Experts (MoE) blocks of a
    model as a model author writes them, on value-semantic tensors and
    independent of how the experts will later be placed on devices.

    A model usually contains the whole block, `moe.layer`. The
    `moe-decompose` pass splits it into its four stages:

    1. `moe.router` scores every token against every expert and keeps the
       `top_k` experts of each token together with their combine weights;
    2. `moe.dispatch` groups the `T * top_k` (token, choice) pairs by
       expert, stably, and counts the tokens each expert receives;
    3. `moe.experts` applies each expert's gated feed-forward network
       (SwiGLU by default) to its group of rows;
    4. `moe.combine` undoes the grouping and sums the `top_k` expert outputs
       of every token, weighted by the router's combine weights.

    Shapes use `T` for tokens, `H` for the hidden size, `E` for the number
    of experts, `F` for the expert FFN size and `k` for `top_k`. The token
    dimension may be dynamic; every other dimension that is static must
    agree between operands and results, which the verifiers check.
  }];
  let useDefaultAttributePrinterParser = 1;
  // `moe.parameter` on function arguments (#moe.parameter).
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// The argument attribute naming a parameter.
    static constexpr llvm::StringLiteral kParameterAttrName = "moe.parameter";
  }];
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // LAER_DIALECT_MOE_IR_MOEDIALECT_TD
