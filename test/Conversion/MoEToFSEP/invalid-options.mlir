// RUN: laer-opt %s --convert-moe-to-fsep="num-devices=0 slots-per-device=2" -verify-diagnostics
// RUN: not laer-opt %s --convert-moe-to-fsep="num-devices=4 slots-per-device=2 chunks=0" 2>&1 | FileCheck %s --check-prefix=CHUNKS
// CHUNKS: convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 4, 0, 2

// expected-error @+1 {{convert-moe-to-fsep: num-devices and chunks must be >= 1 and slots-per-device >= 0, got 0, 1, 2}}
module {
}
