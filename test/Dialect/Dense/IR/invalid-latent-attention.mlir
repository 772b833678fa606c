// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @both_query_forms(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wqa: tensor<64x24xf32>, %qn: tensor<24xf32>, %wqb: tensor<24x96xf32>,
                            %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{needs the queries either as q(wq) or as q_lora(wq_a, q_a_norm, wq_b)}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>) q_lora(%wqa, %qn, %wqb : tensor<64x24xf32>, tensor<24xf32>, tensor<24x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @no_query(%x: tensor<?x64xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{needs the queries either as q(wq) or as q_lora(wq_a, q_a_norm, wq_b)}}
  %a = dense.latent_attention %x
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @odd_rope(%x: tensor<?x64xf32>, %wq: tensor<64x92xf32>, %wkva: tensor<64x39xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{qk_rope_head_dim 7 must be even and >= 2}}
  %a = dense.latent_attention %x q(%wq : tensor<64x92xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x39xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 7 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @query_width(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{'wq' dimension 1 is 64 but must be 96 (heads * (qk_nope_head_dim + qk_rope_head_dim))}}
  %a = dense.latent_attention %x q(%wq : tensor<64x64xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @latent_norm(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<40xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{'kv_a_norm' dimension 0 is 40 but must be 32 (kv_lora_rank)}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<40xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @output_rows(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<32x64xf32>) {
  // expected-error @+1 {{'wo' dimension 0 is 32 but must be 64 (heads * v_head_dim)}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<32x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @yarn_factor(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{yarn factor must be finite and >= 1}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04
      yarn(factor = 0.5 original_max_position = 4096 beta_fast = 32.0 beta_slow = 1.0 attention_factor = 1.0)
      softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @partial_yarn(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{YaRN needs all five yarn_* attributes, got 1}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 {yarn_beta_fast = 32.0}
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @scale(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{softmax_scale must be finite and > 0}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.0 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @grad_count(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>, %d: tensor<?x64xf32>) {
  // expected-error @+1 {{has 4 parameter gradients for 5 parameters}}
  %dx, %g:4 = dense.latent_attention_grad %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 grad(%d : tensor<?x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>
  return
}

// -----

// Widths that would wrap past 2^63 (heads * (nope + rope) = -2^63).
func.func @head_sizes_past_the_bound(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>, %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>, %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @+1 {{heads and head sizes must be at most 1048576, got 4611686018427387904 heads of 0 + 2 / 2}}
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%wo : tensor<64x64xf32>)
      heads = 4611686018427387904 qk_nope_head_dim = 0 qk_rope_head_dim = 2 v_head_dim = 2
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.2 epsilon = 1.0e-06 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}
