// RUN: laer-opt %s --split-input-file --moe-decompose --convert-moe-to-fsep="num-devices=2 slots-per-device=3" -verify-diagnostics

// N * C < E: the layer cannot be placed.
func.func @too_few_slots(%x: tensor<6x10xf32>, %gate: tensor<10x8xf32>,
                         %w1: tensor<8x10x13xf32>, %w3: tensor<8x10x13xf32>,
                         %w2: tensor<8x13x10xf32>) -> tensor<6x10xf32> {
  // expected-error @+1 {{convert-moe-to-fsep: num-devices * slots-per-device = 6 expert slots cannot hold E = 8 experts}}
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x8xf32>, tensor<8x10x13xf32>,
         tensor<8x10x13xf32>, tensor<8x13x10xf32>) -> tensor<6x10xf32>
  return %y : tensor<6x10xf32>
}

// -----

// Weights that are not parameters of the function cannot be sharded.
func.func @computed_weights(%x: tensor<6x10xf32>, %gate: tensor<10x4xf32>,
                            %w1: tensor<4x10x13xf32>, %w3: tensor<4x10x13xf32>,
                            %w2: tensor<4x13x10xf32>) -> tensor<6x10xf32> {
  %w1b = arith.addf %w1, %w1 : tensor<4x10x13xf32>
  // expected-error @+1 {{convert-moe-to-fsep: expert weights must be arguments of the function used by this layer only, so they can be sharded}}
  %y = moe.layer %x, %gate, %w1b, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x4xf32>, tensor<4x10x13xf32>,
         tensor<4x10x13xf32>, tensor<4x13x10xf32>) -> tensor<6x10xf32>
  return %y : tensor<6x10xf32>
}
