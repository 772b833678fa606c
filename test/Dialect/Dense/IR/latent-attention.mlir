// RUN: laer-opt %s | FileCheck %s
// RUN: laer-opt %s | laer-opt | FileCheck %s
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s

// DeepSeek's multi-head latent attention: queries straight from the input
// (DeepSeek-V2-Lite) or through a query LoRA (V2, V3), YaRN frequencies, and
// the gradient op with one gradient per parameter present.

// CHECK-LABEL: func.func @direct_queries
func.func @direct_queries(%x: tensor<?x64xf32>, %wq: tensor<64x96xf32>,
                          %wkva: tensor<64x40xf32>, %kvn: tensor<32xf32>,
                          %wkvb: tensor<32x128xf32>, %wo: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // CHECK: dense.latent_attention %{{.*}} q(%{{.*}} : tensor<64x96xf32>) kv_lora(%{{.*}}, %{{.*}}, %{{.*}} : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>) out(%{{.*}} : tensor<64x64xf32>)
  // CHECK-SAME: heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16 sequence_length = 32 rope_theta = 1.000000e+04 softmax_scale = 2.040000e-01 epsilon = 9.9999999999999995E-7
  %a = dense.latent_attention %x q(%wq : tensor<64x96xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x40xf32>, tensor<32xf32>, tensor<32x128xf32>)
      out(%wo : tensor<64x64xf32>)
      heads = 4 qk_nope_head_dim = 16 qk_rope_head_dim = 8 v_head_dim = 16
      sequence_length = 32 rope_theta = 1.0e+04 softmax_scale = 0.204 epsilon = 1.0e-06
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @query_lora_yarn
func.func @query_lora_yarn(%x: tensor<?x64xf32>, %wqa: tensor<64x24xf32>, %qn: tensor<24xf32>,
                           %wqb: tensor<24x32xf32>, %wkva: tensor<64x36xf32>, %kvn: tensor<32xf32>,
                           %wkvb: tensor<32x40xf32>, %wo: tensor<16x64xf32>,
                           %d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // CHECK: dense.latent_attention %{{.*}} q_lora(%{{.*}}, %{{.*}}, %{{.*}} : tensor<64x24xf32>, tensor<24xf32>, tensor<24x32xf32>)
  // CHECK-SAME: yarn(factor = 4.000000e+01 original_max_position = 4096 beta_fast = 3.200000e+01 beta_slow = 1.000000e+00 attention_factor = 1.000000e+00)
  %a = dense.latent_attention %x q_lora(%wqa, %qn, %wqb : tensor<64x24xf32>, tensor<24xf32>, tensor<24x32xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x36xf32>, tensor<32xf32>, tensor<32x40xf32>)
      out(%wo : tensor<16x64xf32>)
      heads = 2 qk_nope_head_dim = 12 qk_rope_head_dim = 4 v_head_dim = 8
      sequence_length = 16 rope_theta = 1.0e+04
      yarn(factor = 40.0 original_max_position = 4096 beta_fast = 32.0 beta_slow = 1.0 attention_factor = 1.0)
      softmax_scale = 0.5 epsilon = 1.0e-06
      : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: dense.latent_attention_grad %{{.*}} q_lora(
  // CHECK-SAME: grad(%{{.*}} : tensor<?x64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>, tensor<64x24xf32>, tensor<24xf32>, tensor<24x32xf32>, tensor<64x36xf32>, tensor<32xf32>, tensor<32x40xf32>, tensor<16x64xf32>
  %dx, %dwqa, %dqn, %dwqb, %dwkva, %dkvn, %dwkvb, %dwo = dense.latent_attention_grad %x
      q_lora(%wqa, %qn, %wqb : tensor<64x24xf32>, tensor<24xf32>, tensor<24x32xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<64x36xf32>, tensor<32xf32>, tensor<32x40xf32>)
      out(%wo : tensor<16x64xf32>)
      heads = 2 qk_nope_head_dim = 12 qk_rope_head_dim = 4 v_head_dim = 8
      sequence_length = 16 rope_theta = 1.0e+04
      yarn(factor = 40.0 original_max_position = 4096 beta_fast = 32.0 beta_slow = 1.0 attention_factor = 1.0)
      softmax_scale = 0.5 epsilon = 1.0e-06 grad(%d : tensor<?x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>, tensor<64x24xf32>, tensor<24xf32>, tensor<24x32xf32>,
        tensor<64x36xf32>, tensor<32xf32>, tensor<32x40xf32>, tensor<16x64xf32>
  return %dx : tensor<?x64xf32>
}
