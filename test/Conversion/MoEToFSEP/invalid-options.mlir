// RUN: laer-opt %s --convert-moe-to-fsep="num-devices=0 slots-per-device=2" -verify-diagnostics
// RUN: not laer-opt %s --convert-moe-to-fsep="num-devices=4 slots-per-device=2 chunks=0" 2>&1 | FileCheck %s --check-prefix=CHUNKS
// CHUNKS: convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 4, 0, 2
// RUN: not laer-opt %s --convert-moe-to-fsep="num-devices=4294967298 slots-per-device=2" 2>&1 | FileCheck %s --check-prefix=HUGE
// HUGE: convert-moe-to-fsep: at most 65536 devices, 4096 slots per device and 1024 chunks, got num-devices=4294967298 slots-per-device=2 chunks=1

// expected-error @+1 {{convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 0, 1, 2}}
module {
}
