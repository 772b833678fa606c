// The shard of a 3 * 10 * 13 = 390-element expert for 1, 2, 8 and 4 ranks
// (8 and 4 do not divide 390: the last shard is padded).
// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=1 slots-per-device=8" | FileCheck %s --check-prefix=N1
// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=2 slots-per-device=4" | FileCheck %s --check-prefix=N2
// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=8 slots-per-device=1" | FileCheck %s --check-prefix=N8
// RUN: laer-opt %s --moe-decompose --convert-moe-to-fsep="num-devices=4 slots-per-device=3" | FileCheck %s --check-prefix=N4

// N1: !fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 1, shard = 390>
// N1: fsep.restore {{.*}} -> tensor<8x10x13xf32>, tensor<8x10x13xf32>, tensor<8x13x10xf32>
// N2: !fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 2, shard = 195>
// N2: fsep.restore {{.*}} -> tensor<4x10x13xf32>
// N8: !fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 8, shard = 49>
// N8: fsep.restore {{.*}} -> tensor<1x10x13xf32>
// N4: !fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 4, shard = 98>
// N4: fsep.restore {{.*}} -> tensor<3x10x13xf32>
func.func @layer(%x: tensor<6x10xf32>, %gate: tensor<10x8xf32>,
                 %w1: tensor<8x10x13xf32>, %w3: tensor<8x10x13xf32>,
                 %w2: tensor<8x13x10xf32>) -> tensor<6x10xf32> {
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x8xf32>, tensor<8x10x13xf32>,
         tensor<8x10x13xf32>, tensor<8x13x10xf32>) -> tensor<6x10xf32>
  return %y : tensor<6x10xf32>
}
