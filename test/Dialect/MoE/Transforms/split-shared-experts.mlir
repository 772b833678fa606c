// RUN: laer-opt %s -moe-split-shared-experts -split-input-file -verify-diagnostics | FileCheck %s

// The routed experts stay a moe.layer, the shared ones become a
// dense.swiglu of the same input, and the two are summed.
// CHECK-LABEL: func.func @shared
// CHECK-SAME: %[[X:[^:]*]]: tensor<?x64xf32>, %[[G:[^:]*]]: tensor<64x8xf32>
// CHECK-SAME: %[[W1:[^:]*]]: tensor<8x64x32xf32>, %[[W3:[^:]*]]: tensor<8x64x32xf32>, %[[W2:[^:]*]]: tensor<8x32x64xf32>
// CHECK-SAME: %[[S1:[^:]*]]: tensor<64x96xf32>, %[[S3:[^:]*]]: tensor<64x96xf32>, %[[S2:[^:]*]]: tensor<96x64xf32>
// CHECK: %[[ROUTED:.*]] = moe.layer %[[X]], %[[G]], %[[W1]], %[[W3]], %[[W2]] top_k = 2 score<sigmoid> renormalize activation<silu> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>, tensor<8x64x32xf32>, tensor<8x32x64xf32>) -> tensor<?x64xf32>
// CHECK: %[[SHARED:.*]] = dense.swiglu %[[X]], %[[S1]], %[[S3]], %[[S2]]
// CHECK: %[[SUM:.*]] = arith.addf %[[ROUTED]], %[[SHARED]] : tensor<?x64xf32>
// CHECK: return %[[SUM]]
func.func @shared(
    %x: tensor<?x64xf32>, %g: tensor<64x8xf32>,
    %w1: tensor<8x64x32xf32>, %w3: tensor<8x64x32xf32>,
    %w2: tensor<8x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 2 score<sigmoid> renormalize activation<silu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A layer without shared experts is left as it is.
// CHECK-LABEL: func.func @routed_only
// CHECK: moe.layer
// CHECK-NOT: dense.swiglu
// CHECK: return
func.func @routed_only(
    %x: tensor<?x64xf32>, %g: tensor<64x8xf32>, %w1: tensor<8x64x32xf32>,
    %w3: tensor<8x64x32xf32>, %w2: tensor<8x32x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2 top_k = 2 score<softmax> activation<silu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @gelu_shared(
    %x: tensor<?x64xf32>, %g: tensor<64x8xf32>,
    %w1: tensor<8x64x32xf32>, %w3: tensor<8x64x32xf32>,
    %w2: tensor<8x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe-split-shared-experts: shared experts become a dense.swiglu, which is SiLU-gated; this layer's activation is 'gelu'}}
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 2 score<softmax> activation<gelu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The routed layer keeps the routing variants, the selection bias and the
// router losses; its losses replace the original layer's.
// CHECK-LABEL: func.func @shared_with_losses
// CHECK: %[[ROUTED:.*]], %[[AUX:.*]] = moe.layer %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} selection_bias(%{{.*}}) top_k = 2 score<sigmoid> renormalize activation<silu> scale = 2.500000e+00 aux_loss<micro_batch> :
// CHECK: %[[SHARED:.*]] = dense.swiglu
// CHECK: %[[SUM:.*]] = arith.addf %[[ROUTED]], %[[SHARED]]
// CHECK: return %[[SUM]], %[[AUX]]
func.func @shared_with_losses(
    %x: tensor<?x64xf32>, %g: tensor<64x8xf32>,
    %w1: tensor<8x64x32xf32>, %w3: tensor<8x64x32xf32>,
    %w2: tensor<8x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>, %b: tensor<8xf32>)
    -> (tensor<?x64xf32>, tensor<f32>) {
  %y, %aux = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      selection_bias(%b) top_k = 2 score<sigmoid> renormalize
      activation<silu> scale = 2.5 aux_loss<micro_batch>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>, tensor<8xf32>)
      -> (tensor<?x64xf32>, tensor<f32>)
  return %y, %aux : tensor<?x64xf32>, tensor<f32>
}
