// A tiny two-block MoE model body, the size the CPU demo trains:
// H = 64, 8 experts of FFN size 128, top-2 routing. The first block is
// Mixtral style; the second adds a Qwen/DeepSeek-style shared expert and
// sigmoid routing. Tokens are dynamic (batch * sequence).
//   laer-opt examples/tiny_moe_model.mlir --moe-decompose
func.func @tiny_moe_model(
    %x: tensor<?x64xf32>,
    %proj: tensor<64x64xf32>,
    %gate0: tensor<64x8xf32>, %w1_0: tensor<8x64x128xf32>,
    %w3_0: tensor<8x64x128xf32>, %w2_0: tensor<8x128x64xf32>,
    %gate1: tensor<64x8xf32>, %w1_1: tensor<8x64x128xf32>,
    %w3_1: tensor<8x64x128xf32>, %w2_1: tensor<8x128x64xf32>,
    %sw1: tensor<64x128xf32>, %sw3: tensor<64x128xf32>,
    %sw2: tensor<128x64xf32>) -> tensor<?x64xf32> {
  // Dense input projection (stands in for attention until the dense
  // dialect lands).
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %tokens = tensor.dim %x, %c0 : tensor<?x64xf32>
  %empty = tensor.empty(%tokens) : tensor<?x64xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<?x64xf32>)
      -> tensor<?x64xf32>
  %h0 = linalg.matmul ins(%x, %proj : tensor<?x64xf32>, tensor<64x64xf32>)
      outs(%init : tensor<?x64xf32>) -> tensor<?x64xf32>

  // Block 0: routed experts only, residual add.
  %m0 = moe.layer %h0, %gate0, %w1_0, %w3_0, %w2_0
      top_k = 2 score<softmax> renormalize activation<silu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  %h1 = arith.addf %h0, %m0 : tensor<?x64xf32>

  // Block 1: routed plus one shared expert, residual add.
  %m1 = moe.layer %h1, %gate1, %w1_1, %w3_1, %w2_1 shared(%sw1, %sw3, %sw2)
      top_k = 2 score<sigmoid> renormalize activation<silu>
      : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x128xf32>,
         tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<?x64xf32>
  %h2 = arith.addf %h1, %m1 : tensor<?x64xf32>
  return %h2 : tensor<?x64xf32>
}
