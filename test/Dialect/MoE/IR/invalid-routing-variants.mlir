// RUN: laer-opt %s -split-input-file -verify-diagnostics

func.func @groups_do_not_divide(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{groups = 3 must be positive and divide E = 8}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax> groups = 3
      top_groups = 1 group_score<max>
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @top_groups_above_groups(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{top_groups = 5 must be in [1, groups = 4]}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax> groups = 4
      top_groups = 5 group_score<max>
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @top_k_above_chosen_groups(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{top_k = 3 exceeds the 1 x 2 experts of the chosen groups}}
  %i, %w = moe.router %x, %g top_k = 3 score<softmax> groups = 4
      top_groups = 1 group_score<max>
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x3xi32>, tensor<4x3xf32>)
  return
}

// -----

func.func @two_best_of_one(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{group_score<top2_sum> needs groups of at least two experts, got 1}}
  %i, %w = moe.router %x, %g top_k = 2 score<sigmoid> groups = 8
      top_groups = 4 group_score<top2_sum>
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @groups_alone(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{groups, top_groups and group_score go together}}
  %i, %w = "moe.router"(%x, %g) <{top_k = 2 : i64, groups = 4 : i64,
      score = #moe.score_function<softmax>}>
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @negative_scale(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{scale must be finite and positive, got -1}}
  %i, %w = moe.router %x, %g top_k = 2 score<softmax> scale = -1.0
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @bias_length(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>,
                       %b: tensor<4xf32>) {
  // expected-error @+1 {{'selection_bias' dimension 0 is 4 but must be 8 (the number of experts E)}}
  %i, %w = moe.router %x, %g selection_bias(%b) top_k = 2 score<sigmoid>
      : (tensor<4x8xf32>, tensor<8x8xf32>, tensor<4xf32>)
      -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @rate_without_bias(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{bias_update_rate needs a selection_bias}}
  %i, %w = moe.router %x, %g top_k = 2 score<sigmoid> bias_update_rate = 1.0e-3
      : (tensor<4x8xf32>, tensor<8x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @negative_rate(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>,
                         %b: tensor<8xf32>) {
  // expected-error @+1 {{bias_update_rate must be finite and >= 0, got -5.000000e-01}}
  %i, %w = moe.router %x, %g selection_bias(%b) top_k = 2 score<sigmoid>
      bias_update_rate = -0.5
      : (tensor<4x8xf32>, tensor<8x8xf32>, tensor<8xf32>)
      -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @loss_not_scalar(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) {
  // expected-error @+1 {{loss results #0 must be a scalar float tensor, got 'tensor<4xf32>'}}
  %i, %w, %z = moe.router %x, %g top_k = 2 score<softmax> z_loss
      : (tensor<4x8xf32>, tensor<8x8xf32>)
      -> (tensor<4x2xi32>, tensor<4x2xf32>, tensor<4xf32>)
  return
}

// -----

func.func @layer_missing_loss(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>,
                              %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                              %w2: tensor<4x16x8xf32>) {
  // expected-error @+1 {{has 1 loss results but its aux_loss/z_loss attributes ask for 2}}
  %y, %a = moe.layer %x, %g, %w1, %w3, %w2 top_k = 2 score<softmax>
      activation<silu> aux_loss<micro_batch> z_loss
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> (tensor<4x8xf32>, tensor<f32>)
  return
}

// -----

func.func @router_grad_missing_loss_gradient(%x: tensor<4x8xf32>,
                                             %g: tensor<8x4xf32>,
                                             %i: tensor<4x2xi32>,
                                             %dw: tensor<4x2xf32>) {
  // expected-error @+1 {{has 0 loss gradients but its aux_loss/z_loss attributes ask for 1}}
  %dx, %dg = moe.router_grad %x, %g, %i, %dw score<softmax> z_loss
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x2xi32>, tensor<4x2xf32>)
      -> (tensor<4x8xf32>, tensor<8x4xf32>)
  return
}
