// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @top_k_mismatch(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                          %i: tensor<16x2xi32>, %dw: tensor<16x3xf32>) {
  // expected-error @+1 {{'moe.router_grad' op top_k mismatch: 'indices' dimension 1 is 2 but 'd_weights' dimension 1 is 3}}
  %dx, %dg = moe.router_grad %x, %g, %i, %dw score<softmax> renormalize
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<16x2xi32>, tensor<16x3xf32>)
      -> (tensor<16x64xf32>, tensor<64x8xf32>)
  return
}

// -----

func.func @gate_gradient_type(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                              %i: tensor<16x2xi32>, %dw: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.router_grad' op 'd_gate' has type 'tensor<64x4xf32>' but 'gate' has 'tensor<64x8xf32>'}}
  %dx, %dg = moe.router_grad %x, %g, %i, %dw score<softmax>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
      -> (tensor<16x64xf32>, tensor<64x4xf32>)
  return
}

// -----

func.func @hidden_mismatch(%x: tensor<16x32xf32>, %g: tensor<64x8xf32>,
                           %i: tensor<16x2xi32>, %dw: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.router_grad' op H mismatch: 'input' dimension 1 is 32 but 'gate' dimension 0 is 64}}
  %dx, %dg = moe.router_grad %x, %g, %i, %dw score<softmax>
      : (tensor<16x32xf32>, tensor<64x8xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
      -> (tensor<16x32xf32>, tensor<64x8xf32>)
  return
}
