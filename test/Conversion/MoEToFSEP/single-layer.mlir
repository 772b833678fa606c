// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=4 slots-per-device=2" | FileCheck %s
// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=4 slots-per-device=2 step-plans=true" | FileCheck %s --check-prefix=STEP

// The three expert weights become one bank argument of this rank's shards;
// the layer becomes counts -> relayout -> restore -> dispatch -> compute ->
// combine.

// CHECK-LABEL: func.func @moe_block
// CHECK-SAME: (%[[X:[^:]*]]: tensor<16x64xf32>, %[[G:[^:]*]]: tensor<64x8xf32>, %[[BANK:[^:]*]]: !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144> {fsep.layer = 0 : i64})
// CHECK: %[[IDX:.*]], %[[WTS:.*]] = moe.router %[[X]], %[[G]]
// CHECK-NOT: fsep.local_counts
// CHECK: %[[PLAN:.*]] = fsep.relayout layer = 0 : !fsep.plan<experts = 8, ranks = 4, slots = 2>
// CHECK: %[[W1:.*]], %[[W3:.*]], %[[W2:.*]] = fsep.restore %[[BANK]], %[[PLAN]] : {{.*}} -> tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
// CHECK: %[[ROWS:.*]], %[[SLOTS:.*]] = fsep.dispatch %[[X]], %[[IDX]], %[[PLAN]] : {{.*}} -> tensor<?x64xf32>, tensor<2xi64>
// CHECK: %[[Y:.*]] = fsep.expert_compute %[[ROWS]], %[[SLOTS]], %[[W1]], %[[W3]], %[[W2]] activation<silu>
// CHECK: %[[OUT:.*]] = fsep.combine %[[Y]], %[[IDX]], %[[WTS]], %[[PLAN]] : {{.*}} -> tensor<16x64xf32>
// CHECK: return %[[OUT]]
// CHECK-NOT: moe.dispatch
func.func @moe_block(%x: tensor<16x64xf32>, %gate: tensor<64x8xf32>,
                     %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                     %w2: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// With step-plans the layout follows this step's counts.
// STEP: %[[IDX:.*]], %{{.*}} = moe.router
// STEP: %[[COUNTS:.*]] = fsep.local_counts %[[IDX]] : tensor<16x2xi32> -> tensor<8xi64>
// STEP: fsep.relayout layer = 0 counts(%[[COUNTS]] : tensor<8xi64>) : !fsep.plan<experts = 8, ranks = 4, slots = 2>
