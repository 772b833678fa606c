// RUN: laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=2 prefetch=1" | FileCheck %s
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=0 slots-per-device=2" 2>&1 | FileCheck %s --check-prefix=ZERO-N
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=0" 2>&1 | FileCheck %s --check-prefix=ZERO-K
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=2 slots-per-device=2" 2>&1 | FileCheck %s --check-prefix=FEW-SLOTS
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=5000" 2>&1 | FileCheck %s --check-prefix=HUGE-K
// Without options: one line saying how to give them, no module printed.
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline 2>&1 | count 1
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --convert-moe-to-fsep 2>&1 | count 1

// The whole pipeline on the example model: no moe layer stage is left,
// every transfer of the routed layers is explicit and the result verifies.
// CHECK-NOT: moe.layer
// CHECK-NOT: moe.dispatch
// CHECK: fsep.restore {{.*}} {fsep.stream = "params"} {{.*}} -> !fsep.async
// CHECK: fsep.dispatch {{.*}} {chunk = 0 : i64, chunks = 2 : i64, fsep.stream = "tokens"}
// CHECK: fsep.combine
// CHECK: return

// ZERO-N: error: laer-fsep-pipeline: num-devices in [1, 65536], slots-per-device in [0, 4096], chunks in [1, 1024] and prefetch in [0, 64], got num-devices=0 slots-per-device=2 chunks=1 prefetch=1
// ZERO-K: error: laer-fsep-pipeline: {{.*}} got num-devices=4 slots-per-device=2 chunks=0 prefetch=1
// HUGE-K: error: laer-fsep-pipeline: {{.*}} got num-devices=4 slots-per-device=2 chunks=5000 prefetch=1
// NONE: error: laer-fsep-pipeline: {{.*}} got num-devices=0 {{.*}}; give them as --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=2"
// FEW-SLOTS: tiny_moe_model.mlir:{{[0-9]+}}:{{[0-9]+}}: error: convert-moe-to-fsep: num-devices * slots-per-device = 4 expert slots cannot hold E = 8 experts
