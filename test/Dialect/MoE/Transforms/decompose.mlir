// RUN: laer-opt %s --moe-decompose --split-input-file | FileCheck %s

// A layer becomes router -> dispatch -> experts -> combine, with the
// layer's attributes split between the router and the experts.

// CHECK-LABEL: func.func @one_layer
// CHECK-SAME: (%[[X:.*]]: tensor<16x64xf32>, %[[G:.*]]: tensor<64x8xf32>, %[[W1:.*]]: tensor<8x64x128xf32>, %[[W3:.*]]: tensor<8x64x128xf32>, %[[W2:.*]]: tensor<8x128x64xf32>)
// CHECK-NOT: moe.layer
// CHECK: %[[IDX:.*]], %[[WTS:.*]] = moe.router %[[X]], %[[G]] top_k = 2 score<softmax> renormalize : (tensor<16x64xf32>, tensor<64x8xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
// CHECK: %[[ROWS:.*]], %[[COUNTS:.*]] = moe.dispatch %[[X]], %[[IDX]] : (tensor<16x64xf32>, tensor<16x2xi32>) -> (tensor<32x64xf32>, tensor<8xi64>)
// CHECK: %[[Y:.*]] = moe.experts %[[ROWS]], %[[COUNTS]], %[[W1]], %[[W3]], %[[W2]] activation<silu> : {{.*}} -> tensor<32x64xf32>
// CHECK: %[[OUT:.*]] = moe.combine %[[Y]], %[[IDX]], %[[WTS]] : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>) -> tensor<16x64xf32>
// CHECK: return %[[OUT]]
func.func @one_layer(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                     %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                     %w2: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// Chained layers are each decomposed; the second consumes the first's
// combine output. Without `renormalize` the router does not get it either.

// CHECK-LABEL: func.func @two_layers
// CHECK: moe.router %{{.*}}, %{{.*}} top_k = 1 score<sigmoid> :
// CHECK: %[[FIRST:.*]] = moe.combine
// CHECK: moe.router %[[FIRST]], %{{.*}} top_k = 3 score<softmax> renormalize
// CHECK: moe.dispatch %[[FIRST]], %{{.*}} : (tensor<8x32xf32>, tensor<8x3xi32>) -> (tensor<24x32xf32>, tensor<4xi64>)
// CHECK: moe.experts {{.*}} activation<gelu>
// CHECK: moe.combine
// CHECK-NOT: moe.layer
func.func @two_layers(%x: tensor<8x32xf32>, %g: tensor<32x4xf32>,
                      %w1: tensor<4x32x16xf32>, %w3: tensor<4x32x16xf32>,
                      %w2: tensor<4x16x32xf32>) -> tensor<8x32xf32> {
  %a = moe.layer %x, %g, %w1, %w3, %w2 top_k = 1 score<sigmoid>
      activation<silu>
      : (tensor<8x32xf32>, tensor<32x4xf32>, tensor<4x32x16xf32>,
         tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x32xf32>
  %b = moe.layer %a, %g, %w1, %w3, %w2 top_k = 3 score<softmax> renormalize
      activation<gelu>
      : (tensor<8x32xf32>, tensor<32x4xf32>, tensor<4x32x16xf32>,
         tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x32xf32>
  return %b : tensor<8x32xf32>
}

// -----

// Shared experts become one more expert that sees all T tokens; its output
// is added to the routed output.

// CHECK-LABEL: func.func @shared_static_tokens
// CHECK-SAME: %[[X:[^:]*]]: tensor<16x64xf32>
// CHECK-SAME: %[[S1:[^:]*]]: tensor<64x96xf32>, %[[S3:[^:]*]]: tensor<64x96xf32>, %[[S2:[^:]*]]: tensor<96x64xf32>
// CHECK-DAG: %[[ALL:.*]] = arith.constant dense<16> : tensor<1xi64>
// CHECK-DAG: %[[E1:.*]] = tensor.expand_shape %[[S1]] {{\[\[}}0, 1], [2]] output_shape [1, 64, 96] : tensor<64x96xf32> into tensor<1x64x96xf32>
// CHECK-DAG: %[[E3:.*]] = tensor.expand_shape %[[S3]] {{\[\[}}0, 1], [2]] output_shape [1, 64, 96]
// CHECK-DAG: %[[E2:.*]] = tensor.expand_shape %[[S2]] {{\[\[}}0, 1], [2]] output_shape [1, 96, 64]
// CHECK-DAG: %[[ROUTED:.*]] = moe.combine
// CHECK: %[[SHARED:.*]] = moe.experts %[[X]], %[[ALL]], %[[E1]], %[[E3]], %[[E2]] activation<silu> : (tensor<16x64xf32>, tensor<1xi64>, tensor<1x64x96xf32>, tensor<1x64x96xf32>, tensor<1x96x64xf32>) -> tensor<16x64xf32>
// CHECK: %[[SUM:.*]] = arith.addf %[[ROUTED]], %[[SHARED]] : tensor<16x64xf32>
// CHECK: return %[[SUM]]
func.func @shared_static_tokens(
    %x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
    %w1: tensor<8x64x32xf32>, %w3: tensor<8x64x32xf32>,
    %w2: tensor<8x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// With a dynamic token count the rows are dynamic too, and the shared
// expert's count is read from the input at run time.

// CHECK-LABEL: func.func @shared_dynamic_tokens
// CHECK-SAME: %[[X:[^:]*]]: tensor<?x64xf32>
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: moe.router {{.*}} -> (tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK: moe.dispatch {{.*}} -> (tensor<?x64xf32>, tensor<8xi64>)
// CHECK: %[[T:.*]] = tensor.dim %[[X]], %[[C0]] : tensor<?x64xf32>
// CHECK: %[[T64:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK: %[[ALL:.*]] = tensor.from_elements %[[T64]] : tensor<1xi64>
// CHECK: moe.experts %[[X]], %[[ALL]], {{.*}} -> tensor<?x64xf32>
// CHECK: arith.addf {{.*}} : tensor<?x64xf32>
func.func @shared_dynamic_tokens(
    %x: tensor<?x64xf32>, %g: tensor<64x8xf32>,
    %w1: tensor<8x64x32xf32>, %w3: tensor<8x64x32xf32>,
    %w2: tensor<8x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A shared expert with a sigmoid gate (Qwen-MoE) becomes a gated
// dense.swiglu added to the routed output.

// CHECK-LABEL: func.func @gated_shared_expert
// CHECK-SAME: %[[S1:[^:]*]]: tensor<64x96xf32>, %[[S3:[^:]*]]: tensor<64x96xf32>, %[[S2:[^:]*]]: tensor<96x64xf32>, %[[SG:[^:]*]]: tensor<64x1xf32>
// CHECK: %[[ROUTED:.*]] = moe.combine
// CHECK: %[[SHARED:.*]] = dense.swiglu %{{.*}}, %[[S1]], %[[S3]], %[[S2]] gate(%[[SG]])
// CHECK: arith.addf %[[ROUTED]], %[[SHARED]]
func.func @gated_shared_expert(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                               %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                               %w2: tensor<8x128x64xf32>, %s1: tensor<64x96xf32>,
                               %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>,
                               %sg: tensor<64x1xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2) shared_gate(%sg)
      top_k = 2 score<softmax> activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>, tensor<64x1xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// The routing variants, selection bias and router losses move to the
// router, whose losses replace the layer's.

// CHECK-LABEL: func.func @routing_variants
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<8xf32>
// CHECK: %{{.*}}, %{{.*}}, %[[LOSSES:.*]]:2 = moe.router %{{.*}}, %{{.*}} selection_bias(%[[B]]) top_k = 2 score<sigmoid> renormalize scale = 2.500000e+00 groups = 4 top_groups = 2 group_score<top2_sum> bias_update_rate = 1.000000e-03 aux_loss<global_batch> z_loss :
// CHECK: %[[OUT:.*]] = moe.combine
// CHECK: return %[[OUT]], %[[LOSSES]]#0, %[[LOSSES]]#1
func.func @routing_variants(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                            %w1: tensor<8x64x128xf32>,
                            %w3: tensor<8x64x128xf32>,
                            %w2: tensor<8x128x64xf32>, %b: tensor<8xf32>)
    -> (tensor<16x64xf32>, tensor<f32>, tensor<f32>) {
  %y, %aux, %z = moe.layer %x, %g, %w1, %w3, %w2 selection_bias(%b)
      top_k = 2 score<sigmoid> renormalize activation<silu> scale = 2.5
      groups = 4 top_groups = 2 group_score<top2_sum>
      bias_update_rate = 1.0e-3 aux_loss<global_batch> z_loss
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<8xf32>)
      -> (tensor<16x64xf32>, tensor<f32>, tensor<f32>)
  return %y, %aux, %z : tensor<16x64xf32>, tensor<f32>, tensor<f32>
}
