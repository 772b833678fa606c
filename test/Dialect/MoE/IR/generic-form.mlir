// RUN: laer-opt %s -mlir-print-op-generic | FileCheck %s
// The generic form spells out every attribute with its dialect type, so
// tools that do not know the custom syntax can still read the IR.

// CHECK: "moe.router"(%{{.*}}, %{{.*}}) <{renormalize, score = #moe.score_function<softmax>, top_k = 2 : i64}>
// CHECK: "moe.dispatch"(%{{.*}}, %{{.*}}) : (tensor<4x8xf32>, tensor<4x2xi32>) -> (tensor<8x8xf32>, tensor<4xi64>)
// CHECK: "moe.experts"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{activation = #moe.activation<relu>}>
// CHECK: "moe.combine"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<8x8xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x8xf32>
// CHECK: "moe.layer"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{activation = #moe.activation<silu>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 0, 0>, score = #moe.score_function<sigmoid>, top_k = 1 : i64}>
func.func @stages(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>,
                  %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                  %w2: tensor<4x16x8xf32>, %s1: tensor<8x16xf32>,
                  %s3: tensor<8x16xf32>, %s2: tensor<16x8xf32>)
    -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %i, %w = "moe.router"(%x, %g)
      <{top_k = 2 : i64, score = #moe.score_function<softmax>, renormalize}>
      : (tensor<4x8xf32>, tensor<8x4xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  %r, %c = "moe.dispatch"(%x, %i)
      : (tensor<4x8xf32>, tensor<4x2xi32>) -> (tensor<8x8xf32>, tensor<4xi64>)
  %y = "moe.experts"(%r, %c, %w1, %w3, %w2)
      <{activation = #moe.activation<relu>}>
      : (tensor<8x8xf32>, tensor<4xi64>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<8x8xf32>
  %o = "moe.combine"(%y, %i, %w)
      : (tensor<8x8xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x8xf32>
  %l = "moe.layer"(%x, %g, %w1, %w3, %w2, %s1, %s3, %s2)
      <{top_k = 1 : i64, score = #moe.score_function<sigmoid>,
        activation = #moe.activation<silu>,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 0, 0>}>
      : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>,
         tensor<4x8x16xf32>, tensor<4x16x8xf32>, tensor<8x16xf32>,
         tensor<8x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return %o, %l : tensor<4x8xf32>, tensor<4x8xf32>
}

// The custom printer reads the generic form back into the custom syntax.
// RUN: laer-opt %s | FileCheck %s --check-prefix=CUSTOM
// CUSTOM: moe.router %{{.*}}, %{{.*}} top_k = 2 score<softmax> renormalize
// CUSTOM: moe.experts {{.*}} activation<relu>
// CUSTOM: moe.layer {{.*}} shared(%{{.*}}, %{{.*}}, %{{.*}}) top_k = 1 score<sigmoid> activation<silu>
