// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @gate_experts(%x: tensor<16x64xf32>, %g: tensor<64x4xf32>,
                        %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                        %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.layer' op E mismatch: 'gate' dimension 1 is 4 but 'w1' dimension 0 is 8}}
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x4xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @expert_hidden(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                         %w1: tensor<8x32x128xf32>, %w3: tensor<8x32x128xf32>,
                         %w2: tensor<8x128x32xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'w1' dimension 1 is 32}}
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x32x128xf32>,
         tensor<8x32x128xf32>, tensor<8x128x32xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @top_k_zero(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                      %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                      %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{top_k must be in [1, E = 8], got 0}}
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 0 score<softmax> activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @output_shape(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                        %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                        %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'output' dimension 1 is 128}}
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x128xf32>
  return
}

// -----

// The custom syntax always takes all three shared weights; the generic form
// can omit some, which the verifier rejects.
func.func @partial_shared(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>,
                          %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                          %w2: tensor<4x16x8xf32>, %s1: tensor<8x16xf32>) {
  // expected-error @+1 {{shared experts need all three weights (shared_w1, shared_w3, shared_w2), got 1}}
  %y = "moe.layer"(%x, %g, %w1, %w3, %w2, %s1)
      <{top_k = 1 : i64, score = #moe.score_function<softmax>,
        activation = #moe.activation<silu>,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0>}>
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>, tensor<8x16xf32>)
      -> tensor<4x8xf32>
  return
}

// -----

func.func @shared_w2_shape(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>,
                           %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                           %w2: tensor<4x16x8xf32>, %s1: tensor<8x32xf32>,
                           %s3: tensor<8x32xf32>, %s2: tensor<16x8xf32>) {
  // expected-error @+1 {{F mismatch: 'shared_w1' dimension 1 is 32 but 'shared_w2' dimension 0 is 16}}
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 1 score<softmax> activation<silu>
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>, tensor<8x32xf32>,
         tensor<8x32xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @shared_hidden(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>,
                         %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                         %w2: tensor<4x16x8xf32>, %s1: tensor<16x32xf32>,
                         %s3: tensor<16x32xf32>, %s2: tensor<32x16xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 8 but 'shared_w1' dimension 0 is 16}}
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 1 score<softmax> activation<silu>
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>, tensor<16x32xf32>,
         tensor<16x32xf32>, tensor<32x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @shared_gate_without_shared(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                                      %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                                      %w2: tensor<8x128x64xf32>, %sg: tensor<64x1xf32>) {
  // expected-error @+1 {{'shared_gate' needs shared experts}}
  %y = "moe.layer"(%x, %g, %w1, %w3, %w2, %sg) <{top_k = 2 : i64, score = #moe.score_function<softmax>,
        activation = #moe.activation<silu>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 1, 0>}>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x1xf32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @shared_gate_width(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                             %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                             %w2: tensor<8x128x64xf32>, %s1: tensor<64x96xf32>,
                             %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>,
                             %sg: tensor<32x1xf32>) {
  // expected-error @+1 {{H mismatch: 'input' dimension 1 is 64 but 'shared_gate' dimension 0 is 32}}
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2) shared_gate(%sg)
      top_k = 2 score<softmax> activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>, tensor<32x1xf32>) -> tensor<16x64xf32>
  return
}

// -----

// More experts than the router's i32 indices can name (not truncated to 8).
func.func @too_many_experts(%x: tensor<16x64xf32>, %gate: tensor<64x4294967304xf32>,
                            %w1: tensor<4294967304x64x128xf32>, %w3: tensor<4294967304x64x128xf32>,
                            %w2: tensor<4294967304x128x64xf32>) -> tensor<16x64xf32> {
  // expected-error @+1 {{E = 4294967304 experts: the router's i32 expert indices hold at most 2147483647}}
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x4294967304xf32>, tensor<4294967304x64x128xf32>,
         tensor<4294967304x64x128xf32>, tensor<4294967304x128x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// Each expert tensor fits 64 bits, the three together (the runtime's
// expert storage) do not: 3 x 2^62.
func.func @experts_whose_storage_overflows(%x: tensor<16x64xf32>, %gate: tensor<64x8xf32>,
                               %w1: tensor<8x64x9007199254740992xf32>,
                               %w3: tensor<8x64x9007199254740992xf32>,
                               %w2: tensor<8x9007199254740992x64xf32>) -> tensor<16x64xf32> {
  // expected-error @+1 {{the experts' parameters (3 x the 4611686018427387904 elements of 'w1') do not fit a 64-bit size}}
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x9007199254740992xf32>,
         tensor<8x64x9007199254740992xf32>, tensor<8x9007199254740992x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// Expert weights whose element count overflows a 64-bit size.
func.func @overflowing_experts(%x: tensor<16x64xf32>, %gate: tensor<64x8xf32>,
                               %w1: tensor<8x64x4611686018427387904xf32>,
                               %w3: tensor<8x64x4611686018427387904xf32>,
                               %w2: tensor<8x4611686018427387904x64xf32>) -> tensor<16x64xf32> {
  // expected-error @+1 {{'w1' has more elements than a 64-bit size holds}}
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x4611686018427387904xf32>,
         tensor<8x64x4611686018427387904xf32>, tensor<8x4611686018427387904x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}
