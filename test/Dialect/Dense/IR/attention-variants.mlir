// RUN: laer-opt %s | FileCheck %s
// RUN: laer-opt %s | laer-opt | FileCheck %s
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s

// The attention of the HF families: q/k/v biases (Qwen2-MoE), per-head
// QK-norm with a head size that is not H / heads (Qwen3-MoE: here H = 64,
// 4 heads of 32), whole-projection QK-norm (OLMoE), and their gradients.

// CHECK-LABEL: func.func @qwen2_biases
func.func @qwen2_biases(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>,
                        %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>,
                        %wo: tensor<64x64xf32>, %bq: tensor<64xf32>,
                        %bk: tensor<32xf32>, %bv: tensor<32xf32>) -> tensor<?x64xf32> {
  // CHECK: dense.attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}, %{{.*}}, %{{.*}} : tensor<64xf32>, tensor<32xf32>, tensor<32xf32>) heads = 4 kv_heads = 2
  %a = dense.attention %x, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv : tensor<64xf32>, tensor<32xf32>, tensor<32xf32>)
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+06
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @qwen3_head_size_and_norm
func.func @qwen3_head_size_and_norm(%x: tensor<?x64xf32>, %wq: tensor<64x128xf32>,
                                    %wk: tensor<64x64xf32>, %wv: tensor<64x64xf32>,
                                    %wo: tensor<128x64xf32>, %qn: tensor<32xf32>,
                                    %kn: tensor<32xf32>, %d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // CHECK: dense.attention {{.*}} qk_norm(%{{.*}}, %{{.*}} : tensor<32xf32>, tensor<32xf32>) epsilon = 9.9999999999999995E-7 heads = 4 kv_heads = 2
  %a = dense.attention %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn : tensor<32xf32>, tensor<32xf32>) epsilon = 1.0e-06
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+06
      : tensor<?x64xf32>, tensor<64x128xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<128x64xf32> -> tensor<?x64xf32>
  // CHECK: dense.attention_grad {{.*}} qk_norm(%{{.*}}, %{{.*}}) epsilon = 9.9999999999999995E-7, %{{.*}} heads = 4
  // CHECK-SAME: -> tensor<?x64xf32>, tensor<64x128xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<128x64xf32>, tensor<32xf32>, tensor<32xf32>
  %dx, %dq, %dk, %dv, %do, %dqn, %dkn = dense.attention_grad %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn) epsilon = 1.0e-06, %d
      heads = 4 kv_heads = 2 sequence_length = 8 rope_theta = 1.0e+06
      : tensor<?x64xf32>, tensor<64x128xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<128x64xf32>, tensor<32xf32>, tensor<32xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<64x128xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<128x64xf32>, tensor<32xf32>, tensor<32xf32>
  return %dx : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @olmoe_whole_norm
func.func @olmoe_whole_norm(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>,
                            %wk: tensor<64x64xf32>, %wv: tensor<64x64xf32>,
                            %wo: tensor<64x64xf32>, %qn: tensor<64xf32>,
                            %kn: tensor<64xf32>) -> tensor<?x64xf32> {
  // CHECK: qk_norm(%{{.*}}, %{{.*}} : tensor<64xf32>, tensor<64xf32>) epsilon = 1.000000e-05 heads = 4 kv_heads = 4
  %a = dense.attention %x, %wq, %wk, %wv, %wo qk_norm(%qn, %kn : tensor<64xf32>, tensor<64xf32>) epsilon = 1.0e-05
      heads = 4 kv_heads = 4 sequence_length = 8 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @gated_swiglu
func.func @gated_swiglu(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>,
                        %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>,
                        %g: tensor<64x1xf32>, %d: tensor<?x64xf32>) -> tensor<64x1xf32> {
  // CHECK: dense.swiglu %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} gate(%{{.*}}) : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x1xf32> -> tensor<?x64xf32>
  %y = dense.swiglu %x, %w1, %w3, %w2 gate(%g) : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x1xf32> -> tensor<?x64xf32>
  // CHECK: dense.swiglu_grad {{.*}} gate(%{{.*}}) : {{.*}} -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x1xf32>
  %dx, %d1, %d3, %d2, %dg = dense.swiglu_grad %x, %w1, %w3, %w2, %d gate(%g)
      : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<?x64xf32>, tensor<64x1xf32>
      -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x1xf32>
  return %dg : tensor<64x1xf32>
}
