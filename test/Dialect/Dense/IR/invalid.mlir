// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @embedding_width(%t: tensor<256x64xf32>, %ids: tensor<?xi32>) {
  // expected-error @+1 {{'dense.embedding' op H mismatch: 'table' dimension 1 is 64 but 'output' dimension 1 is 32}}
  %h = dense.embedding %t, %ids : tensor<256x64xf32>, tensor<?xi32> -> tensor<?x32xf32>
  return
}

// -----

func.func @embedding_float_ids(%t: tensor<256x64xf32>, %ids: tensor<?xf32>) {
  // expected-error @+1 {{'ids' must have integer elements, got 'tensor<?xf32>'}}
  %h = dense.embedding %t, %ids : tensor<256x64xf32>, tensor<?xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @norm_weight(%x: tensor<?x64xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'weight' dimension 0 is 32}}
  %n = dense.rms_norm %x, %w epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<32xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @norm_epsilon(%x: tensor<?x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{epsilon must be > 0, got 0}}
  %n = dense.rms_norm %x, %w epsilon = 0.0 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @heads_not_multiple(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>,
                              %wk: tensor<64x48xf32>, %wv: tensor<64x48xf32>,
                              %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{heads (4) must be a positive multiple of kv_heads (3)}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo heads = 4 kv_heads = 3 sequence_length = 32 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x48xf32>, tensor<64x48xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @kv_width(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>,
                    %wk: tensor<64x64xf32>, %wv: tensor<64x32xf32>,
                    %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{'wk' dimension 1 is 64 but must be 32 (kv_heads * head size)}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @partial_sequence(%x: tensor<40x64xf32>, %wq: tensor<64x64xf32>,
                            %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>,
                            %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{40 tokens are not whole sequences of 32}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 1.0e+04
      : tensor<40x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<40x64xf32>
  return
}

// -----

func.func @linear_inner(%x: tensor<?x64xf32>, %w: tensor<32x256xf32>) {
  // expected-error @+1 {{input features mismatch: 'input' dimension 1 is 64 but 'weight' dimension 0 is 32}}
  %y = dense.linear %x, %w : tensor<?x64xf32>, tensor<32x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @tied_head_inner(%x: tensor<?x64xf32>, %table: tensor<256x32xf32>) {
  // expected-error @+1 {{input features mismatch: 'input' dimension 1 is 64 but 'weight' dimension 1 is 32}}
  %y = dense.linear %x, %table transposed : tensor<?x64xf32>, tensor<256x32xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @loss_rank(%l: tensor<?x256xf32>, %t: tensor<?xi32>) {
  // expected-error @+1 {{'loss' must have rank 0, got 'tensor<1xf32>'}}
  %loss = dense.cross_entropy %l, %t : tensor<?x256xf32>, tensor<?xi32> -> tensor<1xf32>
  return
}

// -----

func.func @swiglu_hidden(%x: tensor<?x64xf32>, %w1: tensor<32x96xf32>, %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'w1' dimension 0 is 32}}
  %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<32x96xf32>, tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @swiglu_width(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>, %w3: tensor<64x96xf32>, %w2: tensor<48x64xf32>) {
  // expected-error @+1 {{S mismatch: 'w1' dimension 1 is 96 but 'w2' dimension 0 is 48}}
  %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<48x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @swiglu_output(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>, %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>) {
  // expected-error @+1 {{output type 'tensor<?x32xf32>' differs from input type 'tensor<?x64xf32>'}}
  %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x32xf32>
  return
}
