// RUN: laer-opt %laer_src_root/examples/tiny_moe_model.mlir --moe-decompose --convert-moe-to-fsep="num-devices=8 slots-per-device=1" | FileCheck %s

// Two layers: two banks numbered in order, two relayout hooks; the shared
// expert of the second layer stays a dense moe.experts on replicated
// weights.

// CHECK-LABEL: func.func @tiny_moe_model
// CHECK-SAME: %[[SW1:[^:]*]]: tensor<64x128xf32>, %[[SW3:[^:]*]]: tensor<64x128xf32>, %[[SW2:[^:]*]]: tensor<128x64xf32>
// CHECK-SAME: %[[BANK0:[^:]*]]: !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 8, shard = 3072> {fsep.layer = 0 : i64}
// CHECK-SAME: %[[BANK1:[^:]*]]: !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 8, shard = 3072> {fsep.layer = 1 : i64}
// CHECK: fsep.relayout layer = 0 : !fsep.plan<experts = 8, ranks = 8, slots = 1>
// CHECK: fsep.restore %[[BANK0]]
// CHECK-SAME: -> tensor<1x64x128xf32>, tensor<1x64x128xf32>, tensor<1x128x64xf32>
// CHECK: fsep.combine
// CHECK: fsep.relayout layer = 1
// CHECK: fsep.restore %[[BANK1]]
// CHECK: fsep.combine
// CHECK: tensor.expand_shape %[[SW1]]
// CHECK: moe.experts {{.*}} : (tensor<?x64xf32>, tensor<1xi64>, tensor<1x64x128xf32>
// CHECK-NOT: moe.dispatch
// CHECK-NOT: moe.combine
