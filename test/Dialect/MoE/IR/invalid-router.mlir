// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @top_k_zero(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{'moe.router' op top_k must be in [1, E = 8], got 0}}
  %i, %w = moe.router %x, %g top_k = 0 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x0xi32>, tensor<16x0xf32>)
  return
}

// -----

func.func @top_k_above_experts(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{top_k must be in [1, E = 8], got 9}}
  %i, %w = moe.router %x, %g top_k = 9 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x9xi32>, tensor<16x9xf32>)
  return
}

// -----

func.func @hidden_mismatch(%x: tensor<16x64xf32>, %g: tensor<32x8xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'gate' dimension 0 is 32}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<32x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @input_rank(%x: tensor<2x16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{'input' must have rank 2, got 'tensor<2x16x64xf32>'}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<2x16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @integer_input(%x: tensor<16x64xi8>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{'input' must have floating-point elements, got 'tensor<16x64xi8>'}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xi8>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @dynamic_experts(%x: tensor<16x64xf32>, %g: tensor<64x?xf32>) {
  // expected-error @+1 {{'gate' dimension 1 must be static (the number of experts E)}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<64x?xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @indices_width(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{'indices' dimension 1 is 3 but must be 2 (top_k)}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x3xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @float_indices(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{'indices' must have integer elements, got 'tensor<16x2xf32>'}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xf32>, tensor<16x2xf32>)
  return
}

// -----

func.func @weights_tokens(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{T mismatch: 'input' dimension 0 is 16 but 'weights' dimension 0 is 8}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<8x2xf32>)
  return
}

// -----

func.func @loss_without_attribute(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+1 {{has 1 loss results but its aux_loss/z_loss attributes ask for 0}}
  %i, %w, %l = moe.router %x, %g top_k = 2 score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>, tensor<f32>)
  return
}

// -----

func.func @unknown_score(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>) {
  // expected-error @+3 {{expected ::laer::moe::ScoreFunction to be one of: softmax, sigmoid}}
  // expected-error @+2 {{failed to parse MoE_ScoreFunctionAttr parameter 'value'}}
  %i, %w = moe.router %x, %g top_k = 2
      score<tanh> : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}
