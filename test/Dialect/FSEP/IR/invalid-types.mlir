// RUN: laer-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{shard of 97 elements does not cut 3 * hidden * ffn = 390 into 4 equal pieces; expected 98}}
func.func private @bad_shard(!fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 4, shard = 97>)

// -----

// expected-error @+1 {{expert weights must be floating point, got 'i8'}}
func.func private @int_weights(!fsep.experts<experts = 8, hidden = 10, ffn = 13, element = i8, shards = 1, shard = 390>)

// -----

// expected-error @+1 {{experts, hidden, ffn and shards must be >= 1, got 8, 10, 13, 0}}
func.func private @zero_shards(!fsep.experts<experts = 8, hidden = 10, ffn = 13, element = f32, shards = 0, shard = 0>)

// -----

// expected-error @+1 {{ranks * slots = 4 cannot hold 8 experts}}
func.func private @small_plan(!fsep.plan<experts = 8, ranks = 2, slots = 2>)

// -----

// Sizes from the IR multiply with overflow checks (UBSan found these).
// expected-error @+1 {{experts of 3 x 64 x 9223372036854775807 elements, 8 of them, exceed a 64-bit size}}
func.func private @huge_experts(!fsep.experts<experts = 8, hidden = 64, ffn = 9223372036854775807, element = f32, shards = 4, shard = 1>)

// -----

// expected-error @+1 {{ranks * slots = 9223372036854775807 * 2 exceeds a 64-bit size}}
func.func private @huge_plan(!fsep.plan<experts = 8, ranks = 9223372036854775807, slots = 2>)
