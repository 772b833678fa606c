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
  // expected-error @+1 {{laer-autodiff: 'arith.divf' lies between the parameters and the loss but has no gradient}}
  %y = arith.divf %x, %x : tensor<4x8xf32>
  %l = dense.linear %y, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %loss = dense.cross_entropy %l, %t : tensor<4x16xf32>, tensor<4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Shared experts after moe-split-shared-experts: the dense.swiglu's
// weights get its gradients, and the input's gradient sums the routed, the
// shared and the residual paths.
// CHECK-LABEL: func.func @shared_experts_grad
// CHECK-SAME: -> (tensor<f32>, tensor<16x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>, tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32>, tensor<8x16xf32>)
// CHECK: %[[DY:.*]], %{{.*}} = dense.linear_grad
// CHECK: %[[DXS:[^,]*]], %[[DS1:[^,]*]], %[[DS3:[^,]*]], %[[DS2:[^ ]*]] = dense.swiglu_grad %[[X:[^,]*]], %{{.*}}, %[[DY]]
// CHECK: %[[SUM:.*]] = arith.addf %[[DY]], %[[DXS]]
// CHECK: %[[DXR:[^,]*]], %[[DG:[^,]*]], %[[DW1:[^,]*]], %[[DW3:[^,]*]], %[[DW2:[^ ]*]] = moe.layer_grad %[[X]], {{.*}}, %[[DY]]
// CHECK: %[[ALL:.*]] = arith.addf %[[SUM]], %[[DXR]]
// CHECK: dense.embedding_grad %{{.*}}, %[[ALL]]
// CHECK: return %{{.*}}, %{{.*}}, %[[DG]], %[[DW1]], %[[DW3]], %[[DW2]], %[[DS1]], %[[DS3]], %[[DS2]], %{{.*}} :
func.func @shared_experts(%ids: tensor<?xi32>, %t: tensor<?xi32>,
    %e: tensor<16x8xf32>, %g: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>,
    %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>, %s1: tensor<8x12xf32>,
    %s3: tensor<8x12xf32>, %s2: tensor<12x8xf32>, %head: tensor<8x16xf32>)
    -> tensor<f32> {
  %x = dense.embedding %e, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %r = moe.layer %x, %g, %w1, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %s = dense.swiglu %x, %s1, %s3, %s2 : tensor<?x8xf32>, tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32> -> tensor<?x8xf32>
  %y = arith.addf %r, %s : tensor<?x8xf32>
  %h = arith.addf %x, %y : tensor<?x8xf32>
  %logits = dense.linear %h, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %t : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Before the split, a layer with shared experts says which pass to run.
func.func @unsplit_shared(%ids: tensor<?xi32>, %t: tensor<?xi32>,
    %e: tensor<16x8xf32>, %g: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>,
    %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>, %s1: tensor<8x12xf32>,
    %s3: tensor<8x12xf32>, %s2: tensor<12x8xf32>, %head: tensor<8x16xf32>)
    -> tensor<f32> {
  %x = dense.embedding %e, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  // expected-error @+1 {{laer-autodiff: run moe-split-shared-experts first (it moves the shared experts into a dense.swiglu, which has a gradient)}}
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2) top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>,
         tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32>) -> tensor<?x8xf32>
  %logits = dense.linear %y, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %t : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Router losses enter the loss through arith.mulf by their coefficients:
// d(c * aux) = (d * aux, d * c); the layer's gradient takes the losses'
// gradients; a loss result the model does not use gets a zero gradient;
// the selection bias gets none (zeros).
// CHECK-LABEL: func.func @router_losses_grad
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<4xf32>)
// CHECK: %{{.*}}, %[[LOSSES:[a-z0-9_]+]]:2 = moe.layer
// CHECK: %[[C:.*]] = arith.constant dense<0.00999999977> : tensor<f32>
// CHECK: arith.mulf %[[C]], %[[LOSSES]]#0
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DAUX:.*]] = arith.mulf %[[ONE]], %[[C]]
// CHECK: %[[DZ:.*]] = arith.constant dense<0.000000e+00> : tensor<f32>
// CHECK: moe.layer_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} selection_bias(%[[B]]) d_losses(%[[DAUX]], %[[DZ]]) top_k = 2 score<sigmoid> activation<silu> bias_update_rate = 1.000000e-03 aux_loss<micro_batch> z_loss
// CHECK: %[[DB:.*]] = arith.constant dense<0.000000e+00> : tensor<4xf32>
// CHECK: return {{.*}}, %[[DB]]
func.func @router_losses(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
                         %embed: tensor<16x8xf32>, %g: tensor<8x4xf32>,
                         %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                         %w2: tensor<4x16x8xf32>, %head: tensor<8x16xf32>,
                         %b: tensor<4xf32>) -> tensor<f32> {
  %x = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %y, %aux, %z = moe.layer %x, %g, %w1, %w3, %w2 selection_bias(%b)
      top_k = 2 score<sigmoid> activation<silu> bias_update_rate = 1.0e-3
      aux_loss<micro_batch> z_loss
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>, tensor<4xf32>)
      -> (tensor<?x8xf32>, tensor<f32>, tensor<f32>)
  %logits = dense.linear %y, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %ce = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  %c = arith.constant dense<0.01> : tensor<f32>
  %scaled = arith.mulf %c, %aux : tensor<f32>
  %loss = arith.addf %ce, %scaled : tensor<f32>
  return %loss : tensor<f32>
}
