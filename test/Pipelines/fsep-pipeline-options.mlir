// RUN: laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=2 prefetch=1" | FileCheck %s
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=0 slots-per-device=2" 2>&1 | FileCheck %s --check-prefix=ZERO-N
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=4 slots-per-device=2 chunks=0" 2>&1 | FileCheck %s --check-prefix=ZERO-K
// RUN: not laer-opt %laer_src_root/examples/tiny_moe_model.mlir --laer-fsep-pipeline="num-devices=2 slots-per-device=2" 2>&1 | FileCheck %s --check-prefix=FEW-SLOTS

// The whole pipeline on the example model: no moe layer stage is left,
// every transfer of the routed layers is explicit and the result verifies.
// CHECK-NOT: moe.layer
// CHECK-NOT: moe.dispatch
// CHECK: fsep.restore {{.*}} {fsep.stream = "params"} {{.*}} -> !fsep.async
// CHECK: fsep.dispatch {{.*}} {chunk = 0 : i64, chunks = 2 : i64, fsep.stream = "tokens"}
// CHECK: fsep.combine
// CHECK: return

// ZERO-N: error: convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 0, 1, 2
// ZERO-K: error: convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 4, 0, 2
// FEW-SLOTS: tiny_moe_model.mlir:{{[0-9]+}}:{{[0-9]+}}: error: convert-moe-to-fsep: num-devices * slots-per-device = 4 expert slots cannot hold E = 8 experts
