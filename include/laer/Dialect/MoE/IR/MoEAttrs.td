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

def MoE_GroupScoreMax : I32EnumAttrCase<"Max", 0, "max">;
def MoE_GroupScoreTopTwoSum : I32EnumAttrCase<"TopTwoSum", 1, "top2_sum">;
def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "how group-limited routing ranks the expert groups: by their best "
    "score (DeepSeek-V2) or the sum of their two best (DeepSeek-V3)",
    [MoE_GroupScoreMax, MoE_GroupScoreTopTwoSum]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::laer::moe";
}
def MoE_GroupScoreAttr
    : EnumAttr<MoE_Dialect, MoE_GroupScore, "group_score"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_AuxLossMicroBatch : I32EnumAttrCase<"MicroBatch", 1, "micro_batch">;
def MoE_AuxLossGlobalBatch : I32EnumAttrCase<"GlobalBatch", 2, "global_batch">;
def MoE_AuxLossSequence : I32EnumAttrCase<"Sequence", 3, "sequence">;
def MoE_AuxLoss : I32EnumAttr<"AuxLoss",
    "the tokens whose expert loads an auxiliary load-balancing loss counts: "
    "this rank's micro-batch, every data-parallel rank's, or each sequence's "
    "(averaged over the sequences)",
    [MoE_AuxLossMicroBatch, MoE_AuxLossGlobalBatch, MoE_AuxLossSequence]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::laer::moe";
}
def MoE_AuxLossAttr : EnumAttr<MoE_Dialect, MoE_AuxLoss, "aux_loss"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ParameterAttr : AttrDef<MoE_Dialect, "Parameter"> {
  let mnemonic = "parameter";
  let summary = "the name and layout a model parameter has in the files "
                "the model is loaded from and exported to";
  let description = [{
    Put on a parameter argument of a model function as `moe.parameter`, it
    names the tensor in checkpoints, the model's own files (Hugging Face
    safetensors, as `laer-import` names them) and laer's:

    ```mlir
    %wq: tensor<64x64xf32>
        {moe.parameter = #moe.parameter<"model.layers.0.self_attn.q_proj.weight", transposed>}
    %w1: tensor<8x64x112xf32>
        {moe.parameter = #moe.parameter<"model.layers.0.mlp.experts.*.gate_proj.weight", transposed>}
    ```

    `transposed`: the file stores the transpose of the matrix the model
    uses (`nn.Linear` keeps `[out, in]`, laer's ops take `[in, out]`).
    A stack of per-expert matrices (`[E, ...]`) is stored as one tensor per
    expert: its name has one `*`, which stands for the expert's number, and
    `transposed` applies to each expert's matrix. After
    `convert-moe-to-fsep` an expert bank carries the array of its three
    weights' parameters (w1, w3, w2).
  }];
  let parameters = (ins StringRefParameter<"the tensor's name">:$name,
                        "bool":$transposed);
  let hasCustomAssemblyFormat = 1;
}

#endif // LAER_DIALECT_MOE_IR_MOEATTRS_TD
