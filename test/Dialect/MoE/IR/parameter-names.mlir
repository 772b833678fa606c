// RUN: laer-opt %s | laer-opt | FileCheck %s

// Parameters named as their model's files name them round-trip.

// CHECK-LABEL: func.func @named
// CHECK-SAME: {moe.parameter = #moe.parameter<"model.embed_tokens.weight">}
// CHECK-SAME: {moe.parameter = #moe.parameter<"model.layers.0.self_attn.q_proj.weight", transposed>}
// CHECK-SAME: {moe.parameter = #moe.parameter<"model.layers.0.mlp.experts.*.down_proj.weight", transposed>}
func.func @named(
    %embed: tensor<100x32xf32> {moe.parameter = #moe.parameter<"model.embed_tokens.weight">},
    %wq: tensor<32x32xf32> {moe.parameter = #moe.parameter<"model.layers.0.self_attn.q_proj.weight", transposed>},
    %w2: tensor<4x16x32xf32> {moe.parameter = #moe.parameter<"model.layers.0.mlp.experts.*.down_proj.weight", transposed>}) {
  return
}

// An expert bank carries its three weights' names.
// CHECK-LABEL: func.func @bank
// CHECK-SAME: moe.parameter = [#moe.parameter<"e.*.w1", transposed>, #moe.parameter<"e.*.w3", transposed>, #moe.parameter<"e.*.w2", transposed>]
func.func @bank(%bank: tensor<4xf32> {moe.parameter = [#moe.parameter<"e.*.w1", transposed>, #moe.parameter<"e.*.w3", transposed>, #moe.parameter<"e.*.w2", transposed>]}) {
  return
}
