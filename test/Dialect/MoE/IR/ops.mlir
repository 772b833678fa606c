// RUN: laer-opt %s | FileCheck %s
// Round trip, custom form: printing and re-parsing gives the same IR.
// RUN: laer-opt %s | laer-opt | FileCheck %s
// Round trip through the generic form.
// RUN: laer-opt %s -mlir-print-op-generic | laer-opt | FileCheck %s

// CHECK-LABEL: func.func @router
func.func @router(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  // CHECK: %{{.*}}, %{{.*}} = moe.router %{{.*}}, %{{.*}} top_k = 2 score<softmax> renormalize : (tensor<16x64xf32>, tensor<64x8xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  %i, %w = moe.router %x, %g top_k = 2 score<softmax> renormalize
      : (tensor<16x64xf32>, tensor<64x8xf32>)
      -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return %i, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// CHECK-LABEL: func.func @router_sigmoid_with_z_loss
func.func @router_sigmoid_with_z_loss(%x: tensor<?x32xbf16>,
                                      %g: tensor<32x16xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<f32>) {
  // CHECK: moe.router %{{.*}}, %{{.*}} top_k = 4 score<sigmoid> z_loss : (tensor<?x32xbf16>, tensor<32x16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<f32>)
  // CHECK-NOT: renormalize
  %i, %w, %z = moe.router %x, %g top_k = 4 score<sigmoid> z_loss
      : (tensor<?x32xbf16>, tensor<32x16xf32>)
      -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<f32>)
  return %i, %w, %z : tensor<?x4xi32>, tensor<?x4xf32>, tensor<f32>
}

// CHECK-LABEL: func.func @dispatch
func.func @dispatch(%x: tensor<16x64xf32>, %i: tensor<16x2xi32>)
    -> (tensor<32x64xf32>, tensor<8xi64>) {
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} : (tensor<16x64xf32>, tensor<16x2xi32>) -> (tensor<32x64xf32>, tensor<8xi64>)
  %r, %c = moe.dispatch %x, %i
      : (tensor<16x64xf32>, tensor<16x2xi32>)
      -> (tensor<32x64xf32>, tensor<8xi64>)
  return %r, %c : tensor<32x64xf32>, tensor<8xi64>
}

// CHECK-LABEL: func.func @experts
func.func @experts(%r: tensor<?x64xbf16>, %c: tensor<8xi64>,
                   %w1: tensor<8x64x128xbf16>, %w3: tensor<8x64x128xbf16>,
                   %w2: tensor<8x128x64xbf16>) -> tensor<?x64xbf16> {
  // CHECK: moe.experts %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} activation<gelu> : (tensor<?x64xbf16>, tensor<8xi64>, tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16>) -> tensor<?x64xbf16>
  %y = moe.experts %r, %c, %w1, %w3, %w2 activation<gelu>
      : (tensor<?x64xbf16>, tensor<8xi64>, tensor<8x64x128xbf16>,
         tensor<8x64x128xbf16>, tensor<8x128x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// CHECK-LABEL: func.func @combine
func.func @combine(%y: tensor<32x64xf32>, %i: tensor<16x2xi32>,
                   %w: tensor<16x2xf32>) -> tensor<16x64xf32> {
  // CHECK: moe.combine %{{.*}}, %{{.*}}, %{{.*}} : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>) -> tensor<16x64xf32>
  %o = moe.combine %y, %i, %w
      : (tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>)
      -> tensor<16x64xf32>
  return %o : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @layer
func.func @layer(%x: tensor<16x64xf32>, %g: tensor<64x8xf32>,
                 %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                 %w2: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  // CHECK: moe.layer %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} top_k = 2 score<softmax> renormalize activation<silu> : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  %y = moe.layer %x, %g, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @layer_with_shared_experts
func.func @layer_with_shared_experts(
    %x: tensor<?x64xf32>, %g: tensor<64x16xf32>,
    %w1: tensor<16x64x32xf32>, %w3: tensor<16x64x32xf32>,
    %w2: tensor<16x32x64xf32>, %s1: tensor<64x96xf32>,
    %s3: tensor<64x96xf32>, %s2: tensor<96x64xf32>) -> tensor<?x64xf32> {
  // CHECK: moe.layer %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(%{{.*}}, %{{.*}}, %{{.*}}) top_k = 4 score<sigmoid> activation<silu> : (tensor<?x64xf32>, tensor<64x16xf32>, tensor<16x64x32xf32>, tensor<16x64x32xf32>, tensor<16x32x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  %y = moe.layer %x, %g, %w1, %w3, %w2 shared(%s1, %s3, %s2)
      top_k = 4 score<sigmoid> activation<silu>
      : (tensor<?x64xf32>, tensor<64x16xf32>, tensor<16x64x32xf32>,
         tensor<16x64x32xf32>, tensor<16x32x64xf32>, tensor<64x96xf32>,
         tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @router_grad
// CHECK: %{{.*}}, %{{.*}} = moe.router_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} score<sigmoid> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<?x2xi32>, tensor<?x2xf32>) -> (tensor<?x64xf32>, tensor<64x8xf32>)
func.func @router_grad(%x: tensor<?x64xf32>, %g: tensor<64x8xf32>,
                       %i: tensor<?x2xi32>, %dw: tensor<?x2xf32>)
    -> (tensor<?x64xf32>, tensor<64x8xf32>) {
  %dx, %dg = moe.router_grad %x, %g, %i, %dw score<sigmoid>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<?x2xi32>, tensor<?x2xf32>)
      -> (tensor<?x64xf32>, tensor<64x8xf32>)
  return %dx, %dg : tensor<?x64xf32>, tensor<64x8xf32>
}
