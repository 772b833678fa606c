// RUN: laer-opt %s --moe-split-shared-experts --laer-autodiff --convert-laer-to-runtime | FileCheck %s

// A Qwen2-MoE-like block (q/k/v biases, a shared expert with a sigmoid
// gate) and a Qwen3-MoE-like one (per-head QK-norm, head size 6 != H / heads
// = 4): laer-autodiff differentiates every new parameter and the lowering
// passes the optional operands and gradients to the runtime, absent ones as
// empty memrefs.
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
              %embed: tensor<16x8xf32>,
              %wq: tensor<8x8xf32>, %wk: tensor<8x4xf32>, %wv: tensor<8x4xf32>, %wo: tensor<8x8xf32>,
              %bq: tensor<8xf32>, %bk: tensor<4xf32>, %bv: tensor<4xf32>,
              %gate: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>,
              %s1: tensor<8x12xf32>, %s3: tensor<8x12xf32>, %s2: tensor<12x8xf32>, %sg: tensor<8x1xf32>,
              %wq2: tensor<8x12xf32>, %wk2: tensor<8x6xf32>, %wv2: tensor<8x6xf32>, %wo2: tensor<12x8xf32>,
              %qn: tensor<6xf32>, %kn: tensor<6xf32>,
              %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = dense.attention %h, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv : tensor<8xf32>, tensor<4xf32>, tensor<4xf32>)
      heads = 2 kv_heads = 1 sequence_length = 4 rope_theta = 1.0e+04
      : tensor<?x8xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %m = moe.layer %a, %gate, %w1, %w3, %w2 shared(%s1, %s3, %s2) shared_gate(%sg) top_k = 2 score<softmax> activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>,
         tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32>, tensor<8x1xf32>) -> tensor<?x8xf32>
  %b = dense.attention %m, %wq2, %wk2, %wv2, %wo2 qk_norm(%qn, %kn : tensor<6xf32>, tensor<6xf32>) epsilon = 1.0e-06
      heads = 2 kv_heads = 1 sequence_length = 4 rope_theta = 1.0e+04
      : tensor<?x8xf32>, tensor<8x12xf32>, tensor<8x6xf32>, tensor<8x6xf32>, tensor<12x8xf32> -> tensor<?x8xf32>
  %logits = dense.linear %b, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// Biases (dense parameters 5, 6, 7) start at zero (fan-in -1); the shared
// gate [8, 1] has fan-in 8; the QK-norm weights start at one (fan-in 0).
// CHECK-LABEL: func.func @laer_model_declare
// CHECK: call @laerrt_declare_dense(%arg0, %c5_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c-1_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c6_i64{{[_0-9]*}}, %c4_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c-1_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c11_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}}, %c1_i64{{[_0-9]*}}, %c8_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c16_i64{{[_0-9]*}}, %c6_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}})

// CHECK-LABEL: func.func @laer_train_step
// Forward: the biased attention passes its biases and two empty norms.
// CHECK: %[[NONE:.*]] = memref.alloca() : memref<0xf32>
// CHECK: call @laerrt_attention(%arg0, {{.*}}) : (!llvm.ptr, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?xf32>, memref<?xf32>, memref<?xf32>, memref<?xf32>, i64, i64, i64, f64, f64, memref<?x?xf32>) -> ()
// CHECK: call @laerrt_moe_forward
// CHECK: call @laerrt_swiglu(%arg0, {{.*}}) : (!llvm.ptr, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
// CHECK: call @laerrt_attention(
// Backward: each attention_grad returns its optional gradients.
// CHECK: call @laerrt_attention_grad(
// CHECK: call @laerrt_swiglu_grad(
// CHECK: call @laerrt_moe_backward
// CHECK: call @laerrt_attention_grad(
// The gradients of the biases, the shared gate and the norms are all-reduced
// and stepped like every dense parameter.
// CHECK-COUNT-19: call @laerrt_adamw(
