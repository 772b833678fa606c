// RUN: laer-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{argument 0: #moe.parameter<"experts.w1"> names a stack of per-expert matrices: its name needs exactly one '*' for the expert's number}}
func.func @stack_without_star(%w1: tensor<4x8x16xf32> {moe.parameter = #moe.parameter<"experts.w1">}) {
  return
}

// -----

// expected-error @+1 {{argument 0: #moe.parameter<"layers.*.norm"> has a '*' but names a single tensor}}
func.func @star_on_single(%norm: tensor<8xf32> {moe.parameter = #moe.parameter<"layers.*.norm">}) {
  return
}

// -----

// expected-error @+1 {{argument 0: #moe.parameter<"norm"> is transposed but names a vector}}
func.func @transposed_vector(%norm: tensor<8xf32> {moe.parameter = #moe.parameter<"norm", transposed>}) {
  return
}

// -----

// expected-error @+1 {{argument 0: #moe.parameter<""> has an empty name}}
func.func @empty(%norm: tensor<8xf32> {moe.parameter = #moe.parameter<"">}) {
  return
}

// -----

// expected-error @+1 {{argument 0: moe.parameter must be a #moe.parameter (or, on an expert bank, an array of the three weights' #moe.parameter), got "norm"}}
func.func @string(%norm: tensor<8xf32> {moe.parameter = "norm"}) {
  return
}

// -----

// expected-error @+1 {{argument 0: unknown moe argument attribute 'moe.name'}}
func.func @unknown(%norm: tensor<8xf32> {moe.name = "norm"}) {
  return
}

// -----

// expected-error @+1 {{argument 1: #moe.parameter<"ids"> names an argument of type 'i32', not a ranked tensor}}
func.func @scalar(%x: tensor<8xf32>, %ids: i32 {moe.parameter = #moe.parameter<"ids">}) {
  return
}
