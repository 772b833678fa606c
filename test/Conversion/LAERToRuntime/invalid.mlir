// RUN: laer-opt %s --split-input-file --laer-autodiff --convert-laer-to-runtime -verify-diagnostics

// The first two arguments must be the token ids and targets.
// expected-error @+1 {{convert-laer-to-runtime: the first two arguments must be the token ids and targets (tensor<?xi32>)}}
func.func @ids_last(%x: tensor<?x8xf32>, %targets: tensor<?xi32>,
                    %head: tensor<8x16xf32>) -> tensor<f32> {
  %logits = dense.linear %x, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The runtime owns expert weights as FSEP shards: they must be arguments.
func.func @computed_experts(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
                            %embed: tensor<16x8xf32>, %gate: tensor<8x4xf32>,
                            %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>,
                            %w2: tensor<4x6x8xf32>,
                            %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %w1x2 = arith.addf %w1, %w1 : tensor<4x8x6xf32>
  // expected-error @+1 {{convert-laer-to-runtime: the gate and expert weights must be arguments of the function: the runtime owns them as FSEP shards}}
  %m = moe.layer %h, %gate, %w1x2, %w3, %w2 top_k = 2 score<softmax> renormalize activation<silu> : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %logits = dense.linear %m, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Without a MoE layer there is nothing for this runtime to place.
// expected-error @+1 {{convert-laer-to-runtime: the model has no moe.layer}}
func.func @dense_only(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
                      %embed: tensor<16x8xf32>,
                      %head: tensor<8x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %logits = dense.linear %h, %head : tensor<?x8xf32>, tensor<8x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The runtime keeps an MoE layer's gate as FSEP state: dense code that also
// reads it (and so needs its gradient) is refused at the layer's gradient.
func.func @lm(%ids: tensor<?xi32>, %targets: tensor<?xi32>,
              %embed: tensor<16x8xf32>,
              %wq: tensor<8x8xf32>, %wk: tensor<8x4xf32>, %wv: tensor<8x4xf32>, %wo: tensor<8x8xf32>,
              %gate: tensor<8x4xf32>, %w1: tensor<4x8x6xf32>, %w3: tensor<4x8x6xf32>, %w2: tensor<4x6x8xf32>,
              %head: tensor<4x16xf32>) -> tensor<f32> {
  %h = dense.embedding %embed, %ids : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = dense.attention %h, %wq, %wk, %wv, %wo heads = 2 kv_heads = 1 sequence_length = 4 rope_theta = 1.0e+04
      : tensor<?x8xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  // expected-error @+1 {{convert-laer-to-runtime: the gate and expert gradients may only be returned (the runtime keeps them as FSEP shards)}}
  %m = moe.layer %a, %gate, %w1, %w3, %w2 top_k = 2 score<softmax> activation<silu>
      : (tensor<?x8xf32>, tensor<8x4xf32>, tensor<4x8x6xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x8xf32>
  %g = dense.linear %m, %gate : tensor<?x8xf32>, tensor<8x4xf32> -> tensor<?x4xf32>
  %logits = dense.linear %g, %head : tensor<?x4xf32>, tensor<4x16xf32> -> tensor<?x16xf32>
  %loss = dense.cross_entropy %logits, %targets : tensor<?x16xf32>, tensor<?xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
