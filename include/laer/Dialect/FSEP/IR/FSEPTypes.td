//===- FSEPTypes.td - fsep dialect types -------------------*- tablegen -*-===//

#ifndef LAER_DIALECT_FSEP_IR_FSEPTYPES_TD
#define LAER_DIALECT_FSEP_IR_FSEPTYPES_TD

include "laer/Dialect/FSEP/IR/FSEPDialect.td"
include "mlir/IR/AttrTypeBase.td"

class FSEP_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<FSEP_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def FSEP_ExpertsType : FSEP_Type<"Experts", "experts"> {
  let summary = "this rank's shards of one layer's experts";
  let description = [{
    The expert bank of one MoE layer as one rank stores it under FSEP.
    Every expert's SwiGLU weights w1 `[hidden, ffn]`, w3 `[hidden, ffn]` and
    w2 `[ffn, hidden]` are flattened in that order into `3 * hidden * ffn`
    elements and cut into `shards` equal contiguous pieces of `shard`
    elements, the last zero-padded; rank r holds piece r of every expert,
    `experts x shard` elements in all (plus, in the runtime, their gradient
    and optimizer state). `shard` must equal `ceil(3 * hidden * ffn /
    shards)`: it is spelled out because it is the layout the runtime and
    checkpoints agree on.

    ```mlir
    !fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32,
                  shards = 4, shard = 98>
    ```
  }];
  let parameters = (ins "int64_t":$experts, "int64_t":$hidden,
                        "int64_t":$ffn, "::mlir::Type":$element,
                        "int64_t":$shards, "int64_t":$shard);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let builders = [
    TypeBuilderWithInferredContext<(ins "int64_t":$experts, "int64_t":$hidden,
        "int64_t":$ffn, "::mlir::Type":$element, "int64_t":$shards), [{
      int64_t total = 3 * hidden * ffn;
      return $_get(element.getContext(), experts, hidden, ffn, element,
                   shards, (total + shards - 1) / shards);
    }]>
  ];
  let extraClassDeclaration = [{
    /// Elements of one expert: 3 * hidden * ffn.
    int64_t getExpertElements() const { return 3 * getHidden() * getFfn(); }
    /// Zero elements padding the last shard.
    int64_t getPadding() const {
      return getShard() * getShards() - getExpertElements();
    }
    /// The tensor this rank stores: [experts, shard].
    ::mlir::RankedTensorType getStorageType() const {
      return ::mlir::RankedTensorType::get({getExperts(), getShard()},
                                           getElement());
    }
  }];
}

def FSEP_PlanType : FSEP_Type<"Plan", "plan"> {
  let summary = "the layout and token routing of one layer for one step";
  let description = [{
    What the planner decided for one MoE layer: the experts in each of the
    `slots` slots of each of the `ranks` ranks (an expert may have several
    replicas) and, for each source rank and expert, how many tokens go to
    each replica. Produced by `fsep.relayout`; the transfers of the layer
    follow it.
  }];
  let parameters = (ins "int64_t":$experts, "int64_t":$ranks,
                        "int64_t":$slots);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def FSEP_AsyncType : FSEP_Type<"Async", "async"> {
  let summary = "a value whose transfer is in flight";
  let description = [{
    The result of a transfer started asynchronously. Its only use is the
    `fsep.wait` that completes the transfer and yields the value.
  }];
  let parameters = (ins "::mlir::Type":$valueType);
  let assemblyFormat = "`<` $valueType `>`";
}

#endif // LAER_DIALECT_FSEP_IR_FSEPTYPES_TD
