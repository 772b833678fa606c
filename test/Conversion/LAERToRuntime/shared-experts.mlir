// RUN: laer-opt %s --moe-split-shared-experts --laer-autodiff --convert-laer-to-runtime | FileCheck %s
// RUN: laer-opt %s --moe-split-shared-experts --laer-autodiff --convert-moe-to-fsep="num-devices=2 chunks=2 step-plans=true" --fsep-schedule --convert-laer-to-runtime | FileCheck %s --check-prefix=FSEP

// Shared experts split off: their weights are dense parameters (declared
// with fan-in H, H and S, all-reduced and stepped like the others), the
// forward calls laerrt_swiglu beside the MoE layer and the backward
// laerrt_swiglu_grad; the routed experts stay the runtime's FSEP layer.
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
              %embed: tensor<16x8xf32>, %wq: tensor<8x8xf32>,
              %wk: tensor<8x4xf32>, %wv: tensor<8x4xf32>,
              %wo: tensor<8x8xf32>, %gate: tensor<8x4xf32>,
              %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
              %w2: tensor<4x6x8xf32>, %s1: tensor<8x12xf32>,
              %s3: tensor<8x12xf32>, %s2: tensor<12x8xf32>,
              %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %n = dense.attention %h, %wq, %wk, %wv, %wo heads = 2 kv_heads = 1 sequence_length = 4 rope_theta = 1.0e+04 : tensor<?x8xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %m = moe.layer %n, %gate, %w1, %w3, %w2 shared(%s1, %s3, %s2) top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>,
         tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32>) -> tensor<?x8xf32>
  %logits = dense.linear %m, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// Parameters 5, 6, 7 are the shared w1, w3 [H = 8, S = 12] (fan-in H)
// and w2 [S, H] (fan-in S).
// CHECK-LABEL: func.func @laer_model_declare
// CHECK: call @laerrt_declare_dense(%arg0, %c5_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c12_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c6_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c12_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c7_i64{{[_0-9]*}}, %c12_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c12_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c8_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c16_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_moe(%arg0, %c0_i64{{[_0-9]*}}, %c4_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c6_i64{{[_0-9]*}},
// CHECK-LABEL: func.func @laer_train_step
// CHECK: call @laerrt_moe_forward(%arg0, %c0_i64{{[_0-9]*}},
// CHECK: call @laerrt_swiglu(%arg0,
// CHECK: call @laerrt_swiglu_grad(%arg0,
// CHECK: call @laerrt_moe_backward(%arg0, %c0
// Every shared weight is all-reduced and stepped like the dense ones.
// CHECK-COUNT-9: call @laerrt_adamw
// CHECK: call @laerrt_moe_update
// CHECK-NOT: laerrt_adamw

// The shared experts need only the layer's input: fsep-schedule runs them
// while chunk 0's tokens and the restore are in flight.
// FSEP-LABEL: func.func @laer_train_step
// FSEP: call @laerrt_fsep_route
// FSEP: call @laerrt_fsep_restore(
// FSEP-NOT: call @laerrt
// FSEP: call @laerrt_fsep_dispatch(
// FSEP-NOT: call @laerrt
// FSEP: call @laerrt_swiglu(%arg0,
// FSEP-NOT: call @laerrt
// FSEP: call @laerrt_fsep_restore_wait
// FSEP: call @laerrt_fsep_combine_wait
// FSEP: call @laerrt_swiglu_grad(%arg0,
// FSEP: call @laerrt_fsep_combine_backward
// FSEP: call @laerrt_fsep_router_backward
// FSEP: call @laerrt_fsep_grad_reduce_wait
