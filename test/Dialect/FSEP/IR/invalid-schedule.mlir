// RUN: laer-opt %s -split-input-file -verify-diagnostics
// Hand-written schedules that read a transfer's value before waiting for
// it, or overwrite a tensor a transfer is still sending.

!bank = !fsep.experts<experts = 8, hidden = 64, ffn = 128, element = f32, shards = 4, shard = 6144>
!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @compute_before_wait(%b: !bank, %p: !plan, %r: tensor<?x64xf32>,
                               %c: tensor<2xi64>) {
  // expected-error @+1 {{async result #0 is used by 'fsep.expert_compute' before an fsep.wait}}
  %a1, %a3, %a2 = fsep.restore %b, %p : !bank, !plan
      -> !fsep.async<tensor<2x64x128xf32>>, !fsep.async<tensor<2x64x128xf32>>,
         !fsep.async<tensor<2x128x64xf32>>
  %w3 = fsep.wait %a3 : !fsep.async<tensor<2x64x128xf32>>
  %w2 = fsep.wait %a2 : !fsep.async<tensor<2x128x64xf32>>
  // expected-note @+1 {{used here}}
  %y = "fsep.expert_compute"(%r, %c, %a1, %w3, %w2) <{activation = #moe.activation<silu>}>
      : (tensor<?x64xf32>, tensor<2xi64>, !fsep.async<tensor<2x64x128xf32>>,
         tensor<2x64x128xf32>, tensor<2x128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @overwrite_while_sending(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>,
                                   %p: !plan) -> tensor<?x64xf32> {
  %zero = arith.constant 0.0 : f32
  // expected-error @+1 {{operand #0 is still being sent, but 'linalg.fill' updates it in place before the fsep.wait}}
  %ar, %ac = fsep.dispatch %x, %i, %p : tensor<?x64xf32>, tensor<?x2xi32>, !plan
      -> !fsep.async<tensor<?x64xf32>>, !fsep.async<tensor<2xi64>>
  // expected-note @+1 {{updated here}}
  %cleared = linalg.fill ins(%zero : f32) outs(%x : tensor<?x64xf32>) -> tensor<?x64xf32>
  %rows = fsep.wait %ar : !fsep.async<tensor<?x64xf32>>
  %counts = fsep.wait %ac : !fsep.async<tensor<2xi64>>
  return %cleared : tensor<?x64xf32>
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

// After the wait the tensor may be reused: no diagnostic.
func.func @overwrite_after_wait(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>,
                                %p: !plan) -> tensor<?x64xf32> {
  %zero = arith.constant 0.0 : f32
  %ar, %ac = fsep.dispatch %x, %i, %p : tensor<?x64xf32>, tensor<?x2xi32>, !plan
      -> !fsep.async<tensor<?x64xf32>>, !fsep.async<tensor<2xi64>>
  %rows = fsep.wait %ar : !fsep.async<tensor<?x64xf32>>
  %counts = fsep.wait %ac : !fsep.async<tensor<2xi64>>
  %cleared = linalg.fill ins(%zero : f32) outs(%x : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %cleared : tensor<?x64xf32>
}

// -----

!plan = !fsep.plan<experts = 8, ranks = 4, slots = 2>

func.func @unknown_stream(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %p: !plan) {
  // expected-error @+1 {{'fsep.stream' must be "params" or "tokens", got "weights"}}
  %r, %c = fsep.dispatch %x, %i, %p {fsep.stream = "weights"}
      : tensor<?x64xf32>, tensor<?x2xi32>, !plan -> tensor<?x64xf32>, tensor<2xi64>
  return
}

// -----

func.func @stream_on_compute(%r: tensor<?x64xf32>, %c: tensor<2xi64>,
                             %w1: tensor<2x64x128xf32>, %w3: tensor<2x64x128xf32>,
                             %w2: tensor<2x128x64xf32>) {
  // expected-error @+1 {{'fsep.stream' belongs on fsep transfers, not on 'fsep.expert_compute'}}
  %y = fsep.expert_compute %r, %c, %w1, %w3, %w2 activation<silu> {fsep.stream = "tokens"}
      : tensor<?x64xf32>, tensor<2xi64>, tensor<2x64x128xf32>,
        tensor<2x64x128xf32>, tensor<2x128x64xf32> -> tensor<?x64xf32>
  return
}
