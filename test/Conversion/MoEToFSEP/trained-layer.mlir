// RUN: laer-opt %s --convert-moe-to-fsep="num-devices=2 chunks=2" | FileCheck %s

// A moe.layer and the moe.layer_grad that differentiates it (as
// laer-autodiff leaves them) become the chunked FSEP forward and backward:
// the expert weights become a bank argument (appended; slots default to
// ceil(4 / 2) + 1 = 3), their gradients the bank's gradient shards
// (appended to the results), and the gate's gradient comes from
// moe.router_grad.

// CHECK-LABEL: func.func @step
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x8xf32>, %[[G:[^:]*]]: tensor<8x4xf32>, %[[DY:[^:]*]]: tensor<?x8xf32>, %[[BANK:[^:]*]]: !fsep.experts<experts = 4, hidden = 8, ffn = 6, element = f32, shards = 2, shard = 72> {fsep.layer = 0 : i64})
// CHECK-SAME: -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x72xf32>)
// CHECK: %[[IDX:.*]], %[[WTS:.*]] = moe.router %[[X]], %[[G]] top_k = 2
// CHECK: %[[COUNTS:.*]] = fsep.local_counts %[[IDX]]
// CHECK: %[[PLAN:.*]] = fsep.relayout layer = 0 counts(%[[COUNTS]] : tensor<4xi64>) : !fsep.plan<experts = 4, ranks = 2, slots = 3>
// CHECK: %[[W1:.*]], %[[W3:.*]], %[[W2:.*]] = fsep.restore %[[BANK]], %[[PLAN]]
// CHECK: %[[R0:.*]], %[[S0:.*]] = fsep.dispatch %[[X]], %[[IDX]], %[[PLAN]] {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: %[[Y0:.*]] = fsep.expert_compute %[[R0]], %[[S0]], %[[W1]], %[[W3]], %[[W2]] activation<silu> {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: %[[C0:.*]] = fsep.combine %[[Y0]], %[[IDX]], %[[WTS]], %[[PLAN]] {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: %[[R1:.*]], %[[S1:.*]] = fsep.dispatch {{.*}} {chunk = 1 : i64, chunks = 2 : i64}
// CHECK: %[[Y1:.*]] = fsep.expert_compute %[[R1]], %[[S1]]
// CHECK: %[[C1:.*]] = fsep.combine %[[Y1]]
// CHECK: %[[OUT:.*]] = arith.addf %[[C0]], %[[C1]]
// Backward, chunk by chunk.
// CHECK: %[[DR0:.*]], %[[DW0:.*]] = fsep.combine_backward %[[DY]], %[[Y0]], %[[IDX]], %[[WTS]], %[[PLAN]] {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: %[[DIN0:.*]], %[[G10:.*]], %[[G30:.*]], %[[G20:.*]] = fsep.expert_compute_backward %[[R0]], %[[S0]], %[[W1]], %[[W3]], %[[W2]], %[[DR0]] activation<silu> {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: %[[DX0:.*]] = fsep.dispatch_backward %[[DIN0]], %[[IDX]], %[[PLAN]] {chunk = 0 : i64, chunks = 2 : i64}
// CHECK: fsep.combine_backward %[[DY]], %[[Y1]]
// CHECK: fsep.expert_compute_backward %[[R1]], %[[S1]]
// CHECK: %[[DX1:.*]] = fsep.dispatch_backward
// CHECK: %[[GRAD:.*]] = fsep.grad_reduce {{.*}}, %[[PLAN]], %[[BANK]] : {{.*}} -> tensor<4x72xf32>
// CHECK: %[[DXR:.*]], %[[DG:.*]] = moe.router_grad %[[X]], %[[G]], %[[IDX]], %{{.*}} score<softmax> renormalize
// CHECK: %[[SUM:.*]] = arith.addf %[[DX0]], %[[DX1]]
// CHECK: %[[DX:.*]] = arith.addf %[[SUM]], %[[DXR]]
// CHECK: return %[[OUT]], %[[DX]], %[[DG]], %[[GRAD]]
// CHECK-NOT: moe.layer
func.func @step(%x: tensor<?x8xf32>, %gate: tensor<8x4xf32>,
                %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
                %w2: tensor<4x6x8xf32>, %dy: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>,
        tensor<4x8x6xf32>, tensor<4x6x8xf32>) {
  %y = moe.layer %x, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %gate, %w1, %w3, %w2, %dy top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>, tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>)
  return %y, %dx, %dg, %d1, %d3, %d2 : tensor<?x8xf32>, tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>
}
