// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=2 slots-per-device=4 chunks=2" | FileCheck %s

// Work that needs only the layer's input (the shared experts, and what
// only they feed) moves into the window of the first dispatch: before the
// first wait. What reads the combined output stays after it.
// CHECK-LABEL: func.func @window
// CHECK: fsep.dispatch {{.*}}chunk = 0
// CHECK-NEXT: %[[S:.*]] = dense.swiglu %[[X:[^,]*]],
// CHECK-NEXT: %[[T:.*]] = arith.addf %[[S]], %[[X]]
// CHECK-NEXT: fsep.wait
// CHECK: %[[R0:.*]] = fsep.wait %{{.*}} : !fsep.async<tensor<6x10xf32>>
// CHECK-NEXT: %[[R1:.*]] = fsep.wait %{{.*}} : !fsep.async<tensor<6x10xf32>>
// CHECK-NEXT: %[[ROUTED:.*]] = arith.addf %[[R0]], %[[R1]]
// CHECK-NEXT: %[[Y:.*]] = arith.addf %[[ROUTED]], %[[T]]
// CHECK-NEXT: dense.rms_norm %[[Y]]
func.func @window(%x: tensor<6x10xf32>, %gate: tensor<10x8xf32>,
                  %w1: tensor<8x10x13xf32>, %w3: tensor<8x10x13xf32>,
                  %w2: tensor<8x13x10xf32>, %s1: tensor<10x12xf32>,
                  %s3: tensor<10x12xf32>, %s2: tensor<12x10xf32>,
                  %norm: tensor<10xf32>) -> tensor<6x10xf32> {
  %routed = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x8xf32>, tensor<8x10x13xf32>,
         tensor<8x10x13xf32>, tensor<8x13x10xf32>) -> tensor<6x10xf32>
  %shared = dense.swiglu %x, %s1, %s3, %s2 : tensor<6x10xf32>, tensor<10x12xf32>, tensor<10x12xf32>, tensor<12x10xf32> -> tensor<6x10xf32>
  %residual = arith.addf %shared, %x : tensor<6x10xf32>
  %y = arith.addf %routed, %residual : tensor<6x10xf32>
  %n = dense.rms_norm %y, %norm epsilon = 1.0e-05 : tensor<6x10xf32>, tensor<10xf32> -> tensor<6x10xf32>
  return %n : tensor<6x10xf32>
}
