// RUN: laer-opt %s | FileCheck %s
// RUN: laer-opt %s | laer-opt | FileCheck %s
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s

// CHECK-LABEL: func.func @block
func.func @block(%table: tensor<256x64xf32>, %ids: tensor<?xi32>,
                 %norm: tensor<64xf32>, %wq: tensor<64x64xf32>,
                 %wk: tensor<64x32xf32>, %wv: tensor<64x32xf32>,
                 %wo: tensor<64x64xf32>, %head: tensor<64x256xf32>,
                 %targets: tensor<?xi32>) -> tensor<f32> {
  // CHECK: dense.embedding %{{.*}}, %{{.*}} : tensor<256x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %h = dense.embedding %table, %ids : tensor<256x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  // CHECK: dense.rms_norm %{{.*}}, %{{.*}} epsilon = 1.000000e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %n = dense.rms_norm %h, %norm epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  // CHECK: dense.attention {{.*}} heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 1.000000e+04 : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %a = dense.attention %n, %wq, %wk, %wv, %wo heads = 4 kv_heads = 2 sequence_length = 32 rope_theta = 1.0e+04
      : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  // CHECK: dense.linear %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<64x256xf32> -> tensor<?x256xf32>
  %logits = dense.linear %a, %head : tensor<?x64xf32>, tensor<64x256xf32> -> tensor<?x256xf32>
  // A tied head reads the embedding table transposed.
  // CHECK: dense.linear %{{.*}}, %{{.*}} transposed : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
  %tied = dense.linear %a, %table transposed : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
  // CHECK: dense.cross_entropy %{{.*}}, %{{.*}} : tensor<?x256xf32>, tensor<?xi32> -> tensor<f32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x256xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func.func @shared_experts
func.func @shared_experts(%x: tensor<?x64xf32>, %w1: tensor<64x96xf32>,
                          %w3: tensor<64x96xf32>, %w2: tensor<96x64xf32>,
                          %d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // CHECK: dense.swiglu %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = dense.swiglu %x, %w1, %w3, %w2 : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32> -> tensor<?x64xf32>
  // CHECK: dense.swiglu_grad {{.*}} -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>
  %dx, %d1, %d3, %d2 = dense.swiglu_grad %x, %w1, %w3, %w2, %d
      : tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>
  return %dx : tensor<?x64xf32>
}
