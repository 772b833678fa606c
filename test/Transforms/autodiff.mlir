// RUN: laer-opt %s --laer-autodiff --split-input-file -verify-diagnostics | FileCheck %s

// A residual block: the input's gradient is the sum of the residual path
// and the layer path; a parameter the loss ignores gets zeros; token ids
// get no gradient.
// CHECK-LABEL: func.func @residual_grad
// CHECK-SAME: (%[[IDS:[^:]*]]: tensor<?xi32>, %[[T:[^:]*]]: tensor<?xi32>, %[[E:[^:]*]]: tensor<16x8xf32>, %[[N:[^:]*]]: tensor<8xf32>, %[[H:[^:]*]]: tensor<8x16xf32>, %[[UNUSED:[^:]*]]: tensor<4x4xf32>)
// CHECK-SAME: -> (tensor<f32>, tensor<16x8xf32>, tensor<8xf32>, tensor<8x16xf32>, tensor<4x4xf32>)
// CHECK: %[[LOSS:.*]] = dense.cross_entropy
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DL:.*]] = dense.cross_entropy_grad %{{.*}}, %[[T]], %[[ONE]]
// CHECK: %[[DX:.*]], %[[DHEAD:.*]] = dense.linear_grad %{{.*}}, %[[H]], %[[DL]]
// CHECK: %[[DN:.*]], %[[DNORM:.*]] = dense.rms_norm_grad %[[X:.*]], %[[N]], %[[DX]]
// CHECK: %[[SUM:.*]] = arith.addf %[[DX]], %[[DN]]
// CHECK: %[[DE:.*]] = dense.embedding_grad %[[IDS]], %[[SUM]]
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<4x4xf32>
// CHECK: return %[[LOSS]], %[[DE]], %[[DNORM]], %[[DHEAD]], %[[ZERO]]
func.func @residual(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
                    %embed: tensor<16x8xf32>, %norm: tensor<8xf32>,
                    %head: tensor<8x16xf32>, %unused: tensor<4x4xf32>)
    -> tensor<f32> {
  %x = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %n = dense.rms_norm %x, %norm epsilon = 1.0e-05 : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %r = arith.addf %x, %n : tensor<?x8xf32>
  %logits = dense.linear %r, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Functions that return no scalar loss are left alone.
// CHECK-LABEL: func.func @not_a_loss
// CHECK-NOT: func.func @not_a_loss_grad
func.func @not_a_loss(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  return %x : tensor<4x8xf32>
}

// -----

func.func @no_gradient(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>,
                       %t: tensor<4xi32>) -> tensor<f32> {
  // expected-error @+1 {{laer-autodiff: 'arith.mulf' lies between the parameters and the loss but has no gradient}}
  %y = arith.mulf %x, %x : tensor<4x8xf32>
  %l = dense.linear %y, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %loss = dense.cross_entropy %l, %t : tensor<4x16xf32>, tensor<4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
