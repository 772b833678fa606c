// RUN: laer-opt %s --fsep-schedule | FileCheck %s

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

// The backward of two layers, layer 1 first. Each layer's gradient
// reduction is started as soon as its weight gradients exist and waited
// for only at the end, so it overlaps the other layer's backward compute.
// CHECK-LABEL: func.func @backward
// CHECK: fsep.expert_compute_backward
// CHECK-NEXT: %[[G1:.*]] = fsep.grad_reduce {{.*}} {fsep.stream = "params"} {{.*}} -> !fsep.async<tensor<8x6144xf32>>
// CHECK-NEXT: fsep.expert_compute_backward
// CHECK-NEXT: %[[G0:.*]] = fsep.grad_reduce {{.*}} -> !fsep.async<tensor<8x6144xf32>>
// CHECK-NEXT: %[[V1:.*]] = fsep.wait %[[G1]]
// CHECK-NEXT: %[[V0:.*]] = fsep.wait %[[G0]]
// CHECK-NEXT: return %[[V1]], %[[V0]]
func.func @backward(%b0: !bank, %b1: !bank, %p0: !plan, %p1: !plan,
                    %rows: tensor<?x64xf32>, %slots: tensor<2xi64>,
                    %w1: tensor<2x64x128xf32>, %w3: tensor<2x64x128xf32>,
                    %w2: tensor<2x128x64xf32>, %dy: tensor<?x64xf32>)
    -> (tensor<8x6144xf32>, tensor<8x6144xf32>) {
  %dx1, %d11, %d13, %d12 = fsep.expert_compute_backward %rows, %slots, %w1, %w3, %w2, %dy activation<silu>
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>, tensor<2x64x128xf32>,
        tensor<2x128x64xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  %g1 = fsep.grad_reduce %d11, %d13, %d12, %p1, %b1
      : tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>, !plan, !bank
      -> tensor<8x6144xf32>
  %dx0, %d01, %d03, %d02 = fsep.expert_compute_backward %rows, %slots, %w1, %w3, %w2, %dx1 activation<silu>
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>, tensor<2x64x128xf32>,
        tensor<2x128x64xf32>, tensor<?x64xf32>
      -> tensor<?x64xf32>, tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  %g0 = fsep.grad_reduce %d01, %d03, %d02, %p0, %b0
      : tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>, !plan, !bank
      -> tensor<8x6144xf32>
  return %g1, %g0 : tensor<8x6144xf32>, tensor<8x6144xf32>
}
