//===- MoEAttrs.td - moe dialect attributes ----------------*- tablegen -*-===//

#ifndef LAER_DIALECT_MOE_IR_MOEATTRS_TD
#define LAER_DIALECT_MOE_IR_MOEATTRS_TD

include "laer/Dialect/MoE/IR/MoEDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def MoE_ScoreFunctionSoftmax : I32EnumAttrCase<"Softmax", 0, "softmax">;
def MoE_ScoreFunctionSigmoid : I32EnumAttrCase<"Sigmoid", 1, "sigmoid">;
def MoE_ScoreFunction : I32EnumAttr<"ScoreFunction",
    "how router logits become expert scores",
    [MoE_ScoreFunctionSoftmax, MoE_ScoreFunctionSigmoid]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::laer::moe";
}
def MoE_ScoreFunctionAttr
    : EnumAttr<MoE_Dialect, MoE_ScoreFunction, "score_function"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ActivationSilu : I32EnumAttrCase<"Silu", 0, "silu">;
def MoE_ActivationGelu : I32EnumAttrCase<"Gelu", 1, "gelu">;
def MoE_ActivationRelu : I32EnumAttrCase<"Relu", 2, "relu">;
def MoE_Activation : I32EnumAttr<"Activation",
    "activation applied to the gate projection of a gated expert FFN",
    [MoE_ActivationSilu, MoE_ActivationGelu, MoE_ActivationRelu]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::laer::moe";
}
def MoE_ActivationAttr
    : EnumAttr<MoE_Dialect, MoE_Activation, "activation"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // LAER_DIALECT_MOE_IR_MOEATTRS_TD
