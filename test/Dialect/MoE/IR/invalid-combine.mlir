// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @weights_shape(%y: tensor<32x64xf32>, %i: tensor<16x2xi32>,
                         %w: tensor<16x1xf32>) {
  // expected-error @+1 {{'moe.combine' op top_k mismatch: 'indices' dimension 1 is 2 but 'weights' dimension 1 is 1}}
  %o = moe.combine %y, %i, %w
      : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x1xf32>)
      -> tensor<16x64xf32>
  return
}

// -----

func.func @rows_count(%y: tensor<30x64xf32>, %i: tensor<16x2xi32>,
                      %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'rows' dimension 0 is 30 but must be 32 (tokens * top_k)}}
  %o = moe.combine %y, %i, %w
      : (tensor<30x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
      -> tensor<16x64xf32>
  return
}

// -----

func.func @output_tokens(%y: tensor<32x64xf32>, %i: tensor<16x2xi32>,
                         %w: tensor<16x2xf32>) {
  // expected-error @+1 {{T mismatch: 'indices' dimension 0 is 16 but 'output' dimension 0 is 32}}
  %o = moe.combine %y, %i, %w
      : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
      -> tensor<32x64xf32>
  return
}
