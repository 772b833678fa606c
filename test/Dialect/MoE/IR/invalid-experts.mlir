// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @w3_ffn_mismatch(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                           %w1: tensor<8x64x128xf32>,
                           %w3: tensor<8x64x96xf32>,
                           %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.experts' op F mismatch: 'w1' dimension 2 is 128 but 'w3' dimension 2 is 96}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xf32>,
         tensor<8x64x96xf32>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @w2_transposed(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                         %w1: tensor<8x64x128xf32>,
                         %w3: tensor<8x64x128xf32>,
                         %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{F mismatch: 'w1' dimension 2 is 128 but 'w2' dimension 1 is 64}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x64x128xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @expert_count(%r: tensor<32x64xf32>, %c: tensor<4xi64>,
                        %w1: tensor<8x64x128xf32>,
                        %w3: tensor<8x64x128xf32>,
                        %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{E mismatch: 'counts' dimension 0 is 4 but 'w1' dimension 0 is 8}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<4xi64>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @weight_rank(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                       %w1: tensor<64x128xf32>, %w3: tensor<8x64x128xf32>,
                       %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'w1' must have rank 3, got 'tensor<64x128xf32>'}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @mixed_weight_types(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                              %w1: tensor<8x64x128xf32>,
                              %w3: tensor<8x64x128xf16>,
                              %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{element type mismatch: 'w1' has 'f32' but 'w3' has 'f16'}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xf32>,
         tensor<8x64x128xf16>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @integer_weights(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                           %w1: tensor<8x64x128xi8>,
                           %w3: tensor<8x64x128xi8>,
                           %w2: tensor<8x128x64xi8>) {
  // expected-error @+1 {{'w1' must have floating-point elements, got 'tensor<8x64x128xi8>'}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xi8>,
         tensor<8x64x128xi8>, tensor<8x128x64xi8>) -> tensor<32x64xf32>
  return
}

// -----

func.func @output_rows(%r: tensor<32x64xf32>, %c: tensor<8xi64>,
                       %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                       %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{rows mismatch: 'rows' dimension 0 is 32 but 'output' dimension 0 is 16}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xi64>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @float_counts(%r: tensor<32x64xf32>, %c: tensor<8xf32>,
                        %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                        %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'counts' must have integer elements, got 'tensor<8xf32>'}}
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<silu>
      : (tensor<32x64xf32>, tensor<8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<32x64xf32>
  return
}
