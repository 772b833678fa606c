// RUN: not laer-opt %s --convert-laer-to-runtime 2>&1 | FileCheck %s

// Without laer-autodiff there is no `_grad` twin to lower.
// CHECK: error: convert-laer-to-runtime: no loss function '@f' with a differentiated twin (run laer-autodiff first)
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>) -> tensor<f32> {
  %c = arith.constant dense<0.0> : tensor<f32>
  return %c : tensor<f32>
}
