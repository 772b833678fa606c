// RUN: laer-opt %s --laer-autodiff --convert-laer-to-runtime | FileCheck %s

// Two MLA blocks, one with queries straight from the input and one through a
// query LoRA: laer-autodiff differentiates every weight and both norms, and
// the lowering passes the absent query form (and its gradients) as empty
// memrefs.
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
              %embed: tensor<16x8xf32>,
              %wq: tensor<8x12xf32>, %wkva: tensor<8x6xf32>, %kvn: tensor<4xf32>,
              %wkvb: tensor<4x16xf32>, %wo: tensor<8x8xf32>,
              %gate: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>,
              %wqa: tensor<8x5xf32>, %qn: tensor<5xf32>, %wqb: tensor<5x12xf32>,
              %wkva2: tensor<8x6xf32>, %kvn2: tensor<4xf32>, %wkvb2: tensor<4x16xf32>, %wo2: tensor<8x8xf32>,
              %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = dense.latent_attention %h q(%wq : tensor<8x12xf32>)
      kv_lora(%wkva, %kvn, %wkvb : tensor<8x6xf32>, tensor<4xf32>, tensor<4x16xf32>) out(%wo : tensor<8x8xf32>)
      heads = 2 qk_nope_head_dim = 4 qk_rope_head_dim = 2 v_head_dim = 4
      sequence_length = 4 rope_theta = 1.0e+04 softmax_scale = 0.4 epsilon = 1.0e-06
      : tensor<?x8xf32> -> tensor<?x8xf32>
  %m = moe.layer %a, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %b = dense.latent_attention %m q_lora(%wqa, %qn, %wqb : tensor<8x5xf32>, tensor<5xf32>, tensor<5x12xf32>)
      kv_lora(%wkva2, %kvn2, %wkvb2 : tensor<8x6xf32>, tensor<4xf32>, tensor<4x16xf32>) out(%wo2 : tensor<8x8xf32>)
      heads = 2 qk_nope_head_dim = 4 qk_rope_head_dim = 2 v_head_dim = 4
      sequence_length = 4 rope_theta = 1.0e+04
      yarn(factor = 4.0 original_max_position = 2 beta_fast = 32.0 beta_slow = 1.0 attention_factor = 1.1)
      softmax_scale = 0.4 epsilon = 1.0e-06
      : tensor<?x8xf32> -> tensor<?x8xf32>
  %logits = dense.linear %b, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// The latents' norm weights (dense parameters 3 and 10, of rank 1) start
// at one (fan-in 0), like the query LoRA's (7).
// CHECK-LABEL: func.func @laer_model_declare
// CHECK: call @laerrt_declare_model(%arg0, %c16_i64{{[_0-9]*}}, %c4_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c3_i64{{[_0-9]*}}, %c4_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c7_i64{{[_0-9]*}}, %c5_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}})
// CHECK: call @laerrt_declare_dense(%arg0, %c10_i64{{[_0-9]*}}, %c4_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}}, %c0_i64{{[_0-9]*}})

// CHECK-LABEL: func.func @laer_train_step
// CHECK: %[[NQA:[a-z_0-9]+]] = memref.cast %{{.*}} : memref<0x0xf32> to memref<?x?xf32>
// CHECK: %[[NQN:[a-z_0-9]+]] = memref.cast %{{.*}} : memref<0xf32> to memref<?xf32>
// CHECK: %[[NQB:[a-z_0-9]+]] = memref.cast %{{.*}} : memref<0x0xf32> to memref<?x?xf32>
// CHECK: call @laerrt_latent_attention(%arg0, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %[[NQA]], %[[NQN]], %[[NQB]], {{.*}}) : (!llvm.ptr, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>, i64, i64, i64, i64, i64, f64, f64, f64, f64, i64, f64, f64, f64, memref<?x?xf32>) -> ()
// CHECK: call @laerrt_moe_forward
// The second one has no wq:
// CHECK: %[[NQ:[a-z_0-9]+]] = memref.cast %{{.*}} : memref<0x0xf32> to memref<?x?xf32>
// CHECK: call @laerrt_latent_attention(%arg0, %{{[a-z_0-9]+}}, %[[NQ]], %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}},
// Backward: each gradient call gets eight gradient slots.
// CHECK: call @laerrt_latent_attention_grad({{.*}}) : (!llvm.ptr, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, i64, i64, i64, i64, i64, f64, f64, f64, f64, i64, f64, f64, f64, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
// CHECK: call @laerrt_moe_backward
// CHECK: call @laerrt_latent_attention_grad(
// Every dense parameter (embedding, 5 + 7 MLA tensors, LM head) is stepped.
// CHECK-COUNT-14: call @laerrt_adamw(
