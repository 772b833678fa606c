// RUN: laer-opt %s -split-input-file -verify-diagnostics

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @relayout_counts(%c: tensor<4xi64>) {
  // expected-error @+1 {{'counts' dimension 0 is 4 but must be 8 (the plan's experts)}}
  %p = fsep.relayout layer = 0 counts(%c : tensor<4xi64>) : !plan
  return
}

// -----

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 2, shard = 12288>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @restore_shards(%b: !bank, %p: !plan) {
  // expected-error @+1 {{the expert bank is sharded over 2 ranks but the plan is for 4}}
  %w1, %w3, %w2 = fsep.restore %b, %p : !bank, !plan
      -> tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  return
}

// -----

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @restore_slots(%b: !bank, %p: !plan) {
  // expected-error @+1 {{'w1' dimension 0 is 3 but must be 2 (the plan's slots)}}
  %w1, %w3, %w2 = fsep.restore %b, %p : !bank, !plan
      -> tensor<3x64x128xf32>, tensor<3x64x128xf32>, tensor<3x128x64xf32>
  return
}

// -----

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @restore_mixed_async(%b: !bank, %p: !plan) {
  // expected-error @+1 {{results of a transfer are either all !fsep.async or none; 1 of 3 are}}
  %w1, %w3, %w2 = fsep.restore %b, %p : !bank, !plan
      -> !fsep.async<tensor<2x64x128xf32>>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  return
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @dispatch_slot_counts(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %p: !plan) {
  // expected-error @+1 {{'slot_counts' dimension 0 is 8 but must be 2 (the plan's slots per rank)}}
  %r, %c = fsep.dispatch %x, %i, %p
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<8xi64>
  return
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @dispatch_chunk(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %p: !plan) {
  // expected-error @+1 {{chunk 4 is not in [0, 4)}}
  %r, %c = fsep.dispatch %x, %i, %p {chunk = 4 : i64, chunks = 4 : i64}
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<2xi64>
  return
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @dispatch_half_chunk(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %p: !plan) {
  // expected-error @+1 {{'chunk' and 'chunks' go together}}
  %r, %c = fsep.dispatch %x, %i, %p {chunk = 1 : i64}
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<2xi64>
  return
}

// -----

func.func @compute_hidden(%r: tensor<?x32xf32>, %c: tensor<2xi64>,
                          %w1: tensor<2x64x128xf32>, %w3: tensor<2x64x128xf32>,
                          %w2: tensor<2x128x64xf32>) {
  // expected-error @+1 {{H mismatch: 'rows' dimension 1 is 32 but 'w1' dimension 1 is 64}}
  %y = fsep.expert_compute %r, %c, %w1, %w3, %w2 activation<silu>
      : tensor<?x32xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
        tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x32xf32>
  return
}

// -----

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @grad_shape(%d1: tensor<2x64x128xf32>, %d3: tensor<2x64x128xf32>,
                      %d2: tensor<2x128x64xf32>, %p: !plan, %b: !bank) {
  // expected-error @+1 {{gradient shards must have type 'tensor<8x6144xf32>' like the bank's parameter shards, got 'tensor<8x6000xf32>'}}
  %g = fsep.grad_reduce %d1, %d3, %d2, %p, %b
      : tensor<2x64x128xf32>, tensor<2x64x128xf32>, tensor<2x128x64xf32>,
        !plan, !bank -> tensor<8x6000xf32>
  return
}
