// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @norm_grad_type(%x: tensor<?x64xf32>, %w: tensor<64xf32>, %d: tensor<?x64xf32>) {
  // expected-error @+1 {{gradient result #1 has type 'tensor<32xf32>' but what it differentiates has 'tensor<64xf32>'}}
  %dx, %dw = dense.rms_norm_grad %x, %w, %d epsilon = 1.0e-05
      : tensor<?x64xf32>, tensor<64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>, tensor<32xf32>
  return
}

// -----

func.func @embedding_grad_vocab(%ids: tensor<?xi32>, %d: tensor<?x64xf32>) {
  // expected-error @+1 {{'d_table' dimension 0 must be static (the vocabulary)}}
  %dt = dense.embedding_grad %ids, %d : tensor<?xi32>, tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @layer_grad_type(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                           %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                           %w2: tensor<8x128x64xf32>, %d: tensor<16x64xf32>) {
  // expected-error @+1 {{gradient result #4 has type 'tensor<8x64x128xf32>' but what it differentiates has 'tensor<8x128x64xf32>'}}
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %g, %w1, %w3, %w2, %d
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<16x64xf32>)
      -> (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
          tensor<8x64x128xf32>, tensor<8x64x128xf32>)
  return
}

// -----

func.func @swiglu_grad_type(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>, %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>, %d: tensor<?x64xf32>) {
  // expected-error @+1 {{gradient result #3 has type 'tensor<64x96xf32>' but what it differentiates has 'tensor<96x64xf32>'}}
  %dx, %d1, %d3, %d2 = dense.swiglu_grad %x, %w1, %w3, %w2, %d
      : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<64x96xf32>
  return
}
