// One Mixtral-style MoE block: 8 experts, top-2 softmax routing with
// renormalised weights, SwiGLU experts. Try:
//   laer-opt examples/moe_layer.mlir
//   laer-opt examples/moe_layer.mlir --moe-decompose
func.func @moe_block(%x: tensor<16x64xf32>, %gate: tensor<64x8xf32>,
                     %w1: tensor<8x64x128xf32>, %w3: tensor<8x64x128xf32>,
                     %w2: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x, %gate, %w1, %w3, %w2
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<16x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}
