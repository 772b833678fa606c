// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @rows_not_tokens_times_k(%x: tensor<16x64xf32>,
                                   %i: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op 'rows' dimension 0 is 16 but must be 32 (tokens * top_k)}}
  %r, %c = moe.dispatch %x, %i
      : (tensor<16x64xf32>, tensor<16x2xi32>)
      -> (tensor<16x64xf32>, tensor<8xi64>)
  return
}

// -----

func.func @token_mismatch(%x: tensor<16x64xf32>, %i: tensor<12x2xi32>) {
  // expected-error @+1 {{T mismatch: 'input' dimension 0 is 16 but 'indices' dimension 0 is 12}}
  %r, %c = moe.dispatch %x, %i
      : (tensor<16x64xf32>, tensor<12x2xi32>)
      -> (tensor<32x64xf32>, tensor<8xi64>)
  return
}

// -----

func.func @rows_element_type(%x: tensor<16x64xf32>, %i: tensor<16x2xi32>) {
  // expected-error @+1 {{element type mismatch: 'input' has 'f32' but 'rows' has 'bf16'}}
  %r, %c = moe.dispatch %x, %i
      : (tensor<16x64xf32>, tensor<16x2xi32>)
      -> (tensor<32x64xbf16>, tensor<8xi64>)
  return
}

// -----

func.func @dynamic_counts(%x: tensor<16x64xf32>, %i: tensor<16x2xi32>) {
  // expected-error @+1 {{'counts' dimension 0 must be static (the number of experts E)}}
  %r, %c = moe.dispatch %x, %i
      : (tensor<16x64xf32>, tensor<16x2xi32>)
      -> (tensor<32x64xf32>, tensor<?xi64>)
  return
}
