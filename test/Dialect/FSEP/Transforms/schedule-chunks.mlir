// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=2 slots-per-device=4 chunks=1" | FileCheck %s --check-prefix=K1
// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=2 slots-per-device=4 chunks=4" | FileCheck %s --check-prefix=K4

// One chunk: the token exchanges stay synchronous.
// K1: fsep.dispatch {{.*}} -> tensor<?x10xf32>, tensor<4xi64>
// K1: fsep.expert_compute
// K1-NEXT: fsep.combine {{.*}} -> tensor<6x10xf32>
// K1-NOT: fsep.dispatch

// Four chunks: chunk c+1 is dispatched before chunk c computes; chunk c's
// combine is in flight while chunk c+1 computes; the sums wait for them.
// K4: %[[D0:.*]], %[[S0:.*]] = fsep.dispatch {{.*}} {chunk = 0 : i64, chunks = 4 : i64, fsep.stream = "tokens"} {{.*}} -> !fsep.async<tensor<?x10xf32>>, !fsep.async<tensor<4xi64>>
// K4: %[[D1:.*]], %{{.*}} = fsep.dispatch {{.*}} {chunk = 1 : i64, chunks = 4 : i64, fsep.stream = "tokens"}
// K4-NEXT: %[[ROWS0:.*]] = fsep.wait %[[D0]]
// K4-NEXT: fsep.wait %[[S0]]
// K4-NEXT: fsep.expert_compute %[[ROWS0]], {{.*}} {chunk = 0 : i64, chunks = 4 : i64}
// K4-NEXT: %[[C0:.*]] = fsep.combine {{.*}} {chunk = 0 : i64, chunks = 4 : i64, fsep.stream = "tokens"} {{.*}} -> !fsep.async<tensor<6x10xf32>>
// K4-NEXT: fsep.dispatch {{.*}} {chunk = 2 : i64, chunks = 4 : i64, fsep.stream = "tokens"}
// K4-NEXT: %[[ROWS1:.*]] = fsep.wait %[[D1]]
// K4-NEXT: fsep.wait
// K4-NEXT: fsep.expert_compute %[[ROWS1]], {{.*}} {chunk = 1 : i64, chunks = 4 : i64}
// K4-NEXT: %[[C1:.*]] = fsep.combine {{.*}} {chunk = 1 : i64, chunks = 4 : i64, fsep.stream = "tokens"}
// K4-NEXT: %[[W0:.*]] = fsep.wait %[[C0]]
// K4-NEXT: %[[W1:.*]] = fsep.wait %[[C1]]
// K4-NEXT: arith.addf %[[W0]], %[[W1]]
// K4: fsep.dispatch {{.*}} {chunk = 3 : i64, chunks = 4 : i64, fsep.stream = "tokens"}
// K4: fsep.expert_compute {{.*}} {chunk = 3 : i64, chunks = 4 : i64}
func.func @layer(%x: tensor<6x10xf32>, %gate: tensor<10x8xf32>,
                 %w1: tensor<8x10x13xf32>, %w3: tensor<8x10x13xf32>,
                 %w2: tensor<8x13x10xf32>) -> tensor<6x10xf32> {
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> activation<silu>
      : (tensor<6x10xf32>, tensor<10x8xf32>, tensor<8x10x13xf32>,
         tensor<8x10x13xf32>, tensor<8x13x10xf32>) -> tensor<6x10xf32>
  return %y : tensor<6x10xf32>
}
