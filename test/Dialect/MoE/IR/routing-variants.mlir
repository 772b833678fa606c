// RUN: laer-opt %s | FileCheck %s
// RUN: laer-opt %s | laer-opt | FileCheck %s
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s
// The routing variants and router losses of the HF MoE families print and
// parse back in the custom and the generic form.

// CHECK-LABEL: func.func @deepseek_v3_router
// CHECK: moe.router %{{.*}}, %{{.*}} selection_bias(%{{.*}}) top_k = 8 score<sigmoid> renormalize scale = 2.500000e+00 groups = 8 top_groups = 4 group_score<top2_sum> bias_update_rate = 1.000000e-03 aux_loss<global_batch> z_loss : (tensor<16x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> (tensor<16x8xi32>, tensor<16x8xf32>, tensor<f32>, tensor<f32>)
func.func @deepseek_v3_router(%x: tensor<16x64xf32>, %g: tensor<64x64xf32>,
                              %b: tensor<64xf32>)
    -> (tensor<16x8xi32>, tensor<16x8xf32>, tensor<f32>, tensor<f32>) {
  %i, %w, %aux, %z = moe.router %x, %g selection_bias(%b) top_k = 8
      score<sigmoid> renormalize scale = 2.5
      groups = 8 top_groups = 4 group_score<top2_sum>
      bias_update_rate = 1.0e-3 aux_loss<global_batch> z_loss
      : (tensor<16x64xf32>, tensor<64x64xf32>, tensor<64xf32>)
      -> (tensor<16x8xi32>, tensor<16x8xf32>, tensor<f32>, tensor<f32>)
  return %i, %w, %aux, %z
      : tensor<16x8xi32>, tensor<16x8xf32>, tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func.func @deepseek_v2_layer
// CHECK: moe.layer %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} top_k = 2 score<softmax> activation<silu> scale = 1.600000e+01 groups = 4 top_groups = 2 group_score<max> aux_loss<micro_batch> : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>, tensor<8x64x32xf32>, tensor<8x32x64xf32>) -> (tensor<16x64xf32>, tensor<f32>)
// CHECK: moe.layer_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} d_losses(%{{.*}}) top_k = 2 score<softmax> activation<silu> scale = 1.600000e+01 groups = 4 top_groups = 2 group_score<max> aux_loss<micro_batch> :
// CHECK: moe.router_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} d_losses(%{{.*}}) score<softmax> scale = 1.600000e+01 aux_loss<micro_batch> :
func.func @deepseek_v2_layer(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                             %w1: tensor<8x64x32xf32>,
                             %w3: tensor<8x64x32xf32>,
                             %w2: tensor<8x32x64xf32>, %d: tensor<f32>,
                             %i: tensor<16x2xi32>, %dw: tensor<16x2xf32>)
    -> (tensor<16x64xf32>, tensor<f32>, tensor<16x64xf32>, tensor<64x8xf32>) {
  %y, %aux = moe.layer %x, %g, %w1, %w3, %w2 top_k = 2 score<softmax>
      activation<silu> scale = 16.0 groups = 4 top_groups = 2
      group_score<max> aux_loss<micro_batch>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>)
      -> (tensor<16x64xf32>, tensor<f32>)
  %dx, %dg, %d1, %d3, %d2 = moe.layer_grad %x, %g, %w1, %w3, %w2, %y
      d_losses(%d) top_k = 2 score<softmax> activation<silu> scale = 16.0
      groups = 4 top_groups = 2 group_score<max> aux_loss<micro_batch>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<16x64xf32>,
         tensor<f32>)
      -> (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
          tensor<8x64x32xf32>, tensor<8x32x64xf32>)
  %rx, %rg = moe.router_grad %x, %g, %i, %dw d_losses(%d) score<softmax>
      scale = 16.0 aux_loss<micro_batch>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<16x2xi32>,
         tensor<16x2xf32>, tensor<f32>)
      -> (tensor<16x64xf32>, tensor<64x8xf32>)
  return %y, %aux, %rx, %rg
      : tensor<16x64xf32>, tensor<f32>, tensor<16x64xf32>, tensor<64x8xf32>
}

// DeepSeek's sequence-wise balance loss (seq_aux).
// CHECK-LABEL: func.func @sequence_aux_loss
// CHECK: moe.layer {{.*}} score<sigmoid> renormalize activation<silu> aux_loss<sequence> : (
func.func @sequence_aux_loss(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                             %w1: tensor<8x64x32xf32>,
                             %w3: tensor<8x64x32xf32>,
                             %w2: tensor<8x32x64xf32>)
    -> (tensor<16x64xf32>, tensor<f32>) {
  %y, %aux = moe.layer %x, %g, %w1, %w3, %w2 top_k = 2 score<sigmoid>
      renormalize activation<silu> aux_loss<sequence>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x32xf32>,
         tensor<8x64x32xf32>, tensor<8x32x64xf32>)
      -> (tensor<16x64xf32>, tensor<f32>)
  return %y, %aux : tensor<16x64xf32>, tensor<f32>
}
