// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=4 slots-per-device=2 prefetch=1" | FileCheck %s --check-prefix=P1
// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=4 slots-per-device=2 prefetch=2" | FileCheck %s --check-prefix=P2
// RUN: laer-opt %s --laer-fsep-pipeline="num-devices=4 slots-per-device=2 prefetch=1 step-plans=true" | FileCheck %s --check-prefix=STEP

// Three chained layers. Prefetch depth 1: layer 0's restore starts at the
// top; layer l's restore starts right after layer l-1's dispatch, before
// layer l-1 computes, and is waited for right before layer l computes.

// P1-LABEL: func.func @three_layers
// P1: fsep.relayout layer = 0
// P1-NEXT: %[[R0:.*]], %{{.*}}, %{{.*}} = fsep.restore {{.*}} -> !fsep.async
// P1: moe.router
// P1: fsep.dispatch {{.*}}, %[[PLAN0:.*]] :
// P1-NEXT: fsep.relayout layer = 1
// P1-NEXT: %[[R1:.*]], %{{.*}}, %{{.*}} = fsep.restore {{.*}} -> !fsep.async
// P1-NEXT: fsep.wait %[[R0]]
// P1: fsep.expert_compute
// P1: fsep.combine
// P1: moe.router
// P1: fsep.dispatch
// P1-NEXT: fsep.relayout layer = 2
// P1-NEXT: fsep.restore {{.*}} -> !fsep.async
// P1-NEXT: fsep.wait %[[R1]]
// P1: fsep.expert_compute
// P1: fsep.expert_compute

// Prefetch depth 2: layers 0 and 1 restore at the top, layer 2 right
// after layer 0's dispatch.
// P2-LABEL: func.func @three_layers
// P2: fsep.relayout layer = 0
// P2-NEXT: fsep.restore {{.*}} -> !fsep.async
// P2-NEXT: fsep.relayout layer = 1
// P2-NEXT: fsep.restore {{.*}} -> !fsep.async
// P2: moe.router
// P2-NEXT: fsep.dispatch
// P2-NEXT: fsep.relayout layer = 2
// P2-NEXT: fsep.restore {{.*}} -> !fsep.async
// P2: fsep.expert_compute
// P2: moe.router

// Plans that need this step's counts cannot move above their router: the
// restore only becomes asynchronous where it is, overlapping the dispatch.
// STEP-LABEL: func.func @three_layers
// STEP: moe.router
// STEP: fsep.local_counts
// STEP-NEXT: fsep.relayout layer = 0 counts
// STEP-NEXT: fsep.restore {{.*}} -> !fsep.async
// STEP-NEXT: fsep.dispatch
// STEP-NEXT: fsep.wait
func.func @three_layers(%x: tensor<16x64xf32>, %g0: tensor<64x8xf32>,
                        %a1: tensor<8x64x128xf32>, %a3: tensor<8x64x128xf32>,
                        %a2: tensor<8x128x64xf32>, %g1: tensor<64x8xf32>,
                        %b1: tensor<8x64x128xf32>, %b3: tensor<8x64x128xf32>,
                        %b2: tensor<8x128x64xf32>, %g2: tensor<64x8xf32>,
                        %c1: tensor<8x64x128xf32>, %c3: tensor<8x64x128xf32>,
                        %c2: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  %h0 = moe.layer %x, %g0, %a1, %a3, %a2 top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  %h1 = moe.layer %h0, %g1, %b1, %b3, %b2 top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  %h2 = moe.layer %h1, %g2, %c1, %c3, %c2 top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return %h2 : tensor<16x64xf32>
}
