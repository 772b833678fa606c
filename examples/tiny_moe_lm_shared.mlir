// The tiny LM of tiny_moe_lm.mlir plus a plain (ungated) shared expert of
// width 96 per layer, DeepSeek-MoE style: H = 64, F = 128, E = 8 experts
// (top-2), 2 layers, 4 heads (2 KV), vocabulary 256, sequence length 64.
// Kept by hand: of laer-import's families, Qwen gates its shared experts
// (tiny_qwen2_moe_lm.mlir) and DeepSeek needs MLA. laer-train --shared-ffn 96
// trains the same model wired by hand (the compiled binary's reference).
func.func @tiny_moe_lm_shared(
    %ids: tensor<?xi32>,
    %targets: tensor<?xi32>,
    %embed: tensor<256x64xf32>,
    %norm1_0: tensor<64xf32>,
    %wq_0: tensor<64x64xf32>,
    %wk_0: tensor<64x32xf32>,
    %wv_0: tensor<64x32xf32>,
    %wo_0: tensor<64x64xf32>,
    %norm2_0: tensor<64xf32>,
    %gate_0: tensor<64x8xf32>,
    %w1_0: tensor<8x64x128xf32>,
    %w3_0: tensor<8x64x128xf32>,
    %w2_0: tensor<8x128x64xf32>,
    %s1_0: tensor<64x96xf32>,
    %s3_0: tensor<64x96xf32>,
    %s2_0: tensor<96x64xf32>,
    %norm1_1: tensor<64xf32>,
    %wq_1: tensor<64x64xf32>,
    %wk_1: tensor<64x32xf32>,
    %wv_1: tensor<64x32xf32>,
    %wo_1: tensor<64x64xf32>,
    %norm2_1: tensor<64xf32>,
    %gate_1: tensor<64x8xf32>,
    %w1_1: tensor<8x64x128xf32>,
    %w3_1: tensor<8x64x128xf32>,
    %w2_1: tensor<8x128x64xf32>,
    %s1_1: tensor<64x96xf32>,
    %s3_1: tensor<64x96xf32>,
    %s2_1: tensor<96x64xf32>,
    %final_norm: tensor<64xf32>,
    %lm_head: tensor<64x256xf32>) -> tensor<f32> {
  %h0 = dense.embedding %embed, %ids : tensor<256x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %n0 = dense.rms_norm %h0, %norm1_0 epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %a0 = dense.attention %n0, %wq_0, %wk_0, %wv_0, %wo_0 heads = 4 kv_heads = 2 sequence_length = 64 rope_theta = 1.0e+04 : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r0 = arith.addf %h0, %a0 : tensor<?x64xf32>
  %m0 = dense.rms_norm %r0, %norm2_0 epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %e0 = moe.layer %m0, %gate_0, %w1_0, %w3_0, %w2_0 shared(%s1_0, %s3_0, %s2_0) top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  %h1 = arith.addf %r0, %e0 : tensor<?x64xf32>
  %n1 = dense.rms_norm %h1, %norm1_1 epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %a1 = dense.attention %n1, %wq_1, %wk_1, %wv_1, %wo_1 heads = 4 kv_heads = 2 sequence_length = 64 rope_theta = 1.0e+04 : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r1 = arith.addf %h1, %a1 : tensor<?x64xf32>
  %m1 = dense.rms_norm %r1, %norm2_1 epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %e1 = moe.layer %m1, %gate_1, %w1_1, %w3_1, %w2_1 shared(%s1_1, %s3_1, %s2_1) top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<64x96xf32>, tensor<64x96xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  %h2 = arith.addf %r1, %e1 : tensor<?x64xf32>
  %out = dense.rms_norm %h2, %final_norm epsilon = 1.0e-05 : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %logits = dense.linear %out, %lm_head : tensor<?x64xf32>, tensor<64x256xf32> -> tensor<?x256xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x256xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
