// RUN: laer-opt %s --laer-autodiff --convert-laer-to-runtime | FileCheck %s

// One attention + MoE block: the lowering declares the model, then runs
// forward, backward and the update as runtime calls on memrefs.
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
              %embed: tensor<16x8xf32>, %norm: tensor<8xf32>,
              %wq: tensor<8x8xf32>, %wk: tensor<8x4xf32>,
              %wv: tensor<8x4xf32>, %wo: tensor<8x8xf32>,
              %gate: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>,
              %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>,
              %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %n = dense.rms_norm %h, %norm epsilon = 1.0e-05 : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %a = dense.attention %n, %wq, %wk, %wv, %wo heads = 2 kv_heads = 1 sequence_length = 4 rope_theta = 1.0e+04 : tensor<?x8xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %r = arith.addf %h, %a : tensor<?x8xf32>
  %m = moe.layer %r, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %logits = dense.linear %m, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// The loss function and its gradient are replaced by the two entry points.
// CHECK-NOT: func.func @lm
// CHECK-DAG: func.func private @laerrt_moe_forward(!llvm.ptr, i64, memref<?x?xf32>, memref<?x?xf32>) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @laerrt_dense_parameter(!llvm.ptr, i64) -> memref<?xf32> attributes {llvm.emit_c_interface}

// Vocabulary 16, sequence 4; dense parameters in argument order with their
// initialisation (embedding fan-in = H, norm = ones, matrices fan-in = rows);
// the gate and experts are the MoE layer's, not dense parameters.
// CHECK-LABEL: func.func @laer_model_declare(
// CHECK-SAME: %[[CTX:.*]]: !llvm.ptr) attributes {llvm.emit_c_interface}
// CHECK: call @laerrt_declare_model(%[[CTX]], %c16{{.*}}, %c4{{.*}})
// CHECK: call @laerrt_declare_dense(%[[CTX]], %c0{{.*}}, %c16{{.*}}, %c8{{.*}}, %c8{{.*}})
// CHECK: call @laerrt_declare_dense(%[[CTX]], %c1{{.*}}, %c8{{.*}}, %c0{{.*}}, %c0{{.*}})
// CHECK: call @laerrt_declare_dense(%[[CTX]], %c2{{.*}}, %c8{{.*}}, %c8{{.*}}, %c8{{.*}})
// CHECK: call @laerrt_declare_dense(%[[CTX]], %c6{{.*}}, %c8{{.*}}, %c16{{.*}}, %c8{{.*}})
// CHECK-NOT: laerrt_declare_dense
// experts 4, hidden 8, ffn 6, top-2, softmax, renormalize, silu:
// CHECK: call @laerrt_declare_moe(%[[CTX]], %c0{{.*}}, %c4{{.*}}, %c8{{.*}}, %c6{{.*}}, %c2{{.*}}, %c0{{.*}}, %c1{{.*}}, %c0{{.*}})

// CHECK-LABEL: func.func @laer_train_step(
// CHECK-SAME: %[[CTX:.*]]: !llvm.ptr, %[[IDS:.*]]: memref<?xi32>, %[[TARGETS:.*]]: memref<?xi32>) -> f32
// CHECK: %[[EMBED:.*]] = call @laerrt_dense_parameter(%[[CTX]], %c0{{.*}})
// CHECK: memref.reinterpret_cast %[[EMBED]] to offset: [0], sizes: [16, 8], strides: [8, 1]
// Forward: residual adds stay in MLIR (linalg on buffers).
// CHECK: call @laerrt_embedding(%[[CTX]], {{.*}}, %[[IDS]], {{.*}})
// CHECK: call @laerrt_rms_norm(
// CHECK: call @laerrt_attention(
// CHECK: linalg.add
// CHECK: call @laerrt_moe_forward(%[[CTX]], %c0{{.*}},
// CHECK: call @laerrt_linear(
// CHECK: call @laerrt_cross_entropy(%[[CTX]], {{.*}}, %[[TARGETS]],
// Backward, in reverse.
// CHECK: call @laerrt_cross_entropy_grad(
// CHECK: call @laerrt_linear_grad(
// CHECK: call @laerrt_moe_backward(%[[CTX]], %c0{{.*}},
// CHECK: call @laerrt_attention_grad(
// CHECK: call @laerrt_rms_norm_grad(
// CHECK: call @laerrt_embedding_grad(
// Update: each of the 7 dense gradients averaged over ranks and stepped,
// then the MoE layer's FSEP shards.
// CHECK-COUNT-7: call @laerrt_adamw(
// CHECK: call @laerrt_moe_update(%[[CTX]], %c0{{.*}})
// CHECK: %[[LOSS:.*]] = memref.load
// CHECK: memref.dealloc
// CHECK: return %[[LOSS]] : f32
