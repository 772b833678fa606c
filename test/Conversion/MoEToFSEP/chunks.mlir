// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=2 slots-per-device=4 chunks=3" | FileCheck %s

// Three chunks share one plan and one restore; their outputs are summed.
// CHECK: %[[PLAN:.*]] = fsep.relayout
// CHECK-COUNT-1: fsep.restore
// CHECK: fsep.dispatch {{.*}} {chunk = 0 : i64, chunks = 3 : i64}
// CHECK: fsep.expert_compute {{.*}} {chunk = 0 : i64, chunks = 3 : i64}
// CHECK: %[[C0:.*]] = fsep.combine {{.*}} {chunk = 0 : i64, chunks = 3 : i64}
// CHECK: fsep.dispatch {{.*}} {chunk = 1 : i64, chunks = 3 : i64}
// CHECK: %[[C1:.*]] = fsep.combine {{.*}} {chunk = 1 : i64, chunks = 3 : i64}
// CHECK: %[[S1:.*]] = arith.addf %[[C0]], %[[C1]]
// CHECK: %[[C2:.*]] = fsep.combine {{.*}} {chunk = 2 : i64, chunks = 3 : i64}
// CHECK: %[[S2:.*]] = arith.addf %[[S1]], %[[C2]]
// CHECK: return %[[S2]]
func.func @layer(%x: tensor<6x10xf32>, %gate: tensor<10x8xf32>,
                 %w1: tensor<8x10x13xf32>, %w3: tensor<8x10x13xf32>,
                 %w2: tensor<8x13x10xf32>) -> tensor<6x10xf32> {
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x8xf32>, tensor<8x10x13xf32>,
         tensor<8x10x13xf32>, tensor<8x13x10xf32>) -> tensor<6x10xf32>
  return %y : tensor<6x10xf32>
}
