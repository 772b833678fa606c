// RUN: laer-opt %s --split-input-file --convert-moe-to-fsep="num-devices=2" -verify-diagnostics

// The weight gradients become the bank's gradient shards: they may only
// be returned.
func.func @gradient_used(%x: tensor<?x8xf32>, %gate: tensor<8x4xf32>,
                         %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
                         %w2: tensor<4x6x8xf32>, %dy: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<4x8x6xf32>) {
  %y = moe.layer %x, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  // expected-error @+1 {{convert-moe-to-fsep: expert weight gradients may only be returned (they become the bank's gradient shards)}}
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %gate, %w1, %w3, %w2, %dy top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>, tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>)
  %twice = arith.addf %d1, %d1 : tensor<4x8x6xf32>
  return %y, %twice : tensor<?x8xf32>, tensor<4x8x6xf32>
}

// -----

// A weight read by anything but the layer and its gradient cannot be
// sharded away.
func.func @weight_shared(%x: tensor<?x8xf32>, %gate: tensor<8x4xf32>,
                         %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
                         %w2: tensor<4x6x8xf32>, %dy: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) {
  // expected-error @+1 {{convert-moe-to-fsep: expert weights must be arguments of the function used by this layer and its gradient only, so they can be sharded}}
  %y = moe.layer %x, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %gate, %w1, %w3, %w2, %dy top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>, tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>)
  return %y, %w1, %d1, %d3, %d2 : tensor<?x8xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>
}

// -----

// A moe.layer_grad must differentiate a moe.layer of the same operands.
func.func @orphan_gradient(%x: tensor<?x8xf32>, %gate: tensor<8x4xf32>,
                           %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
                           %w2: tensor<4x6x8xf32>, %dy: tensor<?x8xf32>)
    -> tensor<?x8xf32> {
  // expected-error @+1 {{convert-moe-to-fsep: moe.layer_grad needs exactly one moe.layer with the same operands}}
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %gate, %w1, %w3, %w2, %dy top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>, tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>)
  return %dx : tensor<?x8xf32>
}
