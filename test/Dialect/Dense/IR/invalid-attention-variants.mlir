// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @odd_head_size(%x: tensor<?x64xf32>, %wq: tensor<64x36xf32>, %wk: tensor<64x18xf32>, %wv: tensor<64x18xf32>, %wo: tensor<36x64xf32>) {
  // expected-error @+1 {{wq's width 36 is not 4 heads of an even head size}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x36xf32>, tensor<64x18xf32>, tensor<64x18xf32>, tensor<36x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @wo_rows(%x: tensor<?x64xf32>, %wq: tensor<64x128xf32>, %wk: tensor<64x64xf32>, %wv: tensor<64x64xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{'wo' dimension 0 is 64 but must be 128 (heads * head size)}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x128xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @bias_length(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %bq: tensor<64xf32>, %bk: tensor<64xf32>, %bv: tensor<32xf32>) {
  // expected-error @+1 {{'bk' has length 64, expected kv_heads * head size}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv : tensor<64xf32>, tensor<64xf32>, tensor<32xf32>)
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @norm_length(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %qn: tensor<16xf32>, %kn: tensor<20xf32>) {
  // expected-error @+1 {{'k_norm' has length 20, expected the head size (per head) or kv_heads * head size (whole projection)}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn : tensor<16xf32>, tensor<20xf32>) epsilon = 1.0e-06
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @norm_epsilon(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %qn: tensor<16xf32>, %kn: tensor<16xf32>) {
  // expected-error @+1 {{qk_norm_epsilon must be > 0, got 0}}
  %a = dense.attention %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn : tensor<16xf32>, tensor<16xf32>) epsilon = 0.0
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @norm_without_epsilon(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %qn: tensor<16xf32>, %kn: tensor<16xf32>) {
  // expected-error @+1 {{qk_norm_epsilon must be given exactly when q_norm and k_norm are}}
  %a = "dense.attention"(%x, %wq, %wk, %wv, %wo, %qn, %kn) <{heads = 4 : i64, kv_heads = 2 : i64, sequence_length = 8 : i64, rope_theta = 1.0e+04 : f64,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 1, 1>}>
      : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @one_bias(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %bq: tensor<64xf32>) {
  // expected-error @+1 {{biases need all three of bq, bk, bv, got 1}}
  %a = "dense.attention"(%x, %wq, %wk, %wv, %wo, %bq) <{heads = 4 : i64, kv_heads = 2 : i64, sequence_length = 8 : i64, rope_theta = 1.0e+04 : f64,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0>}>
      : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @gate_shape(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>, %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>, %g: tensor<64x2xf32>) {
  // expected-error @+1 {{'gate' dimension 1 is 2 but must be 1 (one gate per token)}}
  %y = dense.swiglu %x, %w1, %w3, %w2 gate(%g) : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x2xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @grad_count(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>, %wo: tensor<64x64xf32>, %qn: tensor<16xf32>, %kn: tensor<16xf32>, %d: tensor<?x64xf32>) {
  // expected-error @+1 {{has 1 gradients of optional parameters for 2 optional parameters}}
  %dx, %dq, %dk, %dv, %do, %dqn = dense.attention_grad %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn) epsilon = 1.0e-06, %d
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32>, tensor<16xf32>, tensor<16xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32>, tensor<16xf32>
  return
}
