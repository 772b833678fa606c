// RUN: laer-opt %s | FileCheck %s
// RUN: laer-opt %s | laer-opt | FileCheck %s
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

// One MoE layer as one rank runs it, forward and backward, every transfer
// synchronous.
// CHECK-LABEL: func.func @layer_step
func.func @layer_step(%bank: !bank, %x: tensor<?x64xf32>,
                      %idx: tensor<?x2xi32>, %wts: tensor<?x2xf32>,
                      %dout: tensor<?x64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<8x6144xf32>,
        tensor<?x2xf32>) {
  // CHECK: %[[COUNTS:.*]] = fsep.local_counts %{{.*}} : tensor<?x2xi32> -> tensor<8xi64>
  %counts = fsep.local_counts %idx : tensor<?x2xi32> -> tensor<8xi64>
  // CHECK: %[[PLAN:.*]] = fsep.relayout layer = 3 counts(%[[COUNTS]] : tensor<8xi64>) : !fsep.plan<experts = 8, ranks = 4, slots = 2>
  %plan = fsep.relayout layer = 3 counts(%counts : tensor<8xi64>) : !plan
  // CHECK: fsep.relayout layer = 4 : !fsep.plan<experts = 8, ranks = 4, slots = 2>
  %history = fsep.relayout layer = 4 : !plan
  // CHECK: fsep.restore %{{.*}}, %[[PLAN]] : !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>, !fsep.plan<experts = 8, ranks = 4, slots = 2> -> tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  %w1, %w3, %w2 = fsep.restore %bank, %plan : !bank, !plan
      -> tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  // CHECK: fsep.dispatch %{{.*}}, %{{.*}}, %[[PLAN]] : tensor<?x64xf32>, tensor<?x2xi32>, !fsep.plan<experts = 8, ranks = 4, slots = 2> -> tensor<?x64xf32>, tensor<2xi64>
  %rows, %slots = fsep.dispatch %x, %idx, %plan
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<2xi64>
  // CHECK: fsep.expert_compute {{.*}} activation<silu> : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x64xf32>
  %y = fsep.expert_compute %rows, %slots, %w1, %w3, %w2 activation<silu>
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
        tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x64xf32>
  // CHECK: fsep.combine {{.*}} -> tensor<?x64xf32>
  %out = fsep.combine %y, %idx, %wts, %plan
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, !plan -> tensor<?x64xf32>
  // CHECK: fsep.combine_backward {{.*}} -> tensor<?x64xf32>, tensor<?x2xf32>
  %drows, %dwts = fsep.combine_backward %dout, %y, %idx, %wts, %plan
      : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>,
        !plan -> tensor<?x64xf32>, tensor<?x2xf32>
  // CHECK: fsep.expert_compute_backward {{.*}} activation<silu>
  %dxin, %dw1, %dw3, %dw2 = fsep.expert_compute_backward %rows, %slots, %w1, %w3, %w2, %drows activation<silu>
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
        tensor<2x64x128xf32>, tensor<2x128x64xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<2x64x128xf32>, tensor<2x64x128xf32>,
         tensor<2x128x64xf32>
  // CHECK: fsep.dispatch_backward {{.*}} -> tensor<?x64xf32>
  %dx = fsep.dispatch_backward %dxin, %idx, %plan
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>
  // CHECK: fsep.grad_reduce {{.*}} -> tensor<8x6144xf32>
  %grad = fsep.grad_reduce %dw1, %dw3, %dw2, %plan, %bank
      : tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>,
        !plan, !bank -> tensor<8x6144xf32>
  return %out, %dx, %grad, %dwts
      : tensor<?x64xf32>, tensor<?x64xf32>, tensor<8x6144xf32>, tensor<?x2xf32>
}

// The restore in flight while tokens are dispatched in two chunks.
// CHECK-LABEL: func.func @async_and_chunks
func.func @async_and_chunks(%bank: !bank, %plan: !plan, %x: tensor<?x64xf32>,
                            %idx: tensor<?x2xi32>) -> tensor<?x64xf32> {
  // CHECK: %[[W1:.*]], %{{.*}}, %{{.*}} = fsep.restore {{.*}} -> !fsep.async<tensor<2x64x128xf32>>, !fsep.async<tensor<2x64x128xf32>>, !fsep.async<tensor<2x128x64xf32>>
  %a1, %a3, %a2 = fsep.restore %bank, %plan : !bank, !plan
      -> !fsep.async<tensor<2x64x128xf32>>, !fsep.async<tensor<2x64x128xf32>>,
         !fsep.async<tensor<2x128x64xf32>>
  // CHECK: fsep.dispatch {{.*}} {chunk = 0 : i64, chunks = 2 : i64}
  %rows0, %slots0 = fsep.dispatch %x, %idx, %plan {chunk = 0 : i64, chunks = 2 : i64}
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<2xi64>
  // CHECK: fsep.wait %[[W1]] : !fsep.async<tensor<2x64x128xf32>>
  %w1 = fsep.wait %a1 : !fsep.async<tensor<2x64x128xf32>>
  %w3 = fsep.wait %a3 : !fsep.async<tensor<2x64x128xf32>>
  %w2 = fsep.wait %a2 : !fsep.async<tensor<2x128x64xf32>>
  %y0 = fsep.expert_compute %rows0, %slots0, %w1, %w3, %w2 activation<silu> {chunk = 0 : i64, chunks = 2 : i64}
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
        tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x64xf32>
  return %y0 : tensor<?x64xf32>
}
