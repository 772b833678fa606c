//===- FSEPLimits.h - the largest FSEP programs laer compiles ---*- C++ -*-===//
//
// Upper bounds on the options that size a lowered FSEP program: beyond
// them the program (one exchange per rank, one copy of the layer's
// transfers per chunk) would take hours to build. The pass, the pipelines
// and the compiler driver all refuse larger values with these numbers;
// they are the runtime's limits (laer/runtime/Limits.h; CompiledAbiTest
// keeps them equal).
//
//===----------------------------------------------------------------------===//

#ifndef LAER_CONVERSION_FSEPLIMITS_H
#define LAER_CONVERSION_FSEPLIMITS_H

#include <cstdint>

namespace laer {

/// Ranks (num-devices, --ranks): the runtime's own limit on a job.
constexpr std::int64_t kMaxFsepDevices = 65536;
/// Experts each rank restores and computes per step.
constexpr std::int64_t kMaxFsepSlotsPerDevice = 4096;
/// Chunks of a layer's token exchanges.
constexpr std::int64_t kMaxFsepChunks = 1024;

} // namespace laer

#endif // LAER_CONVERSION_FSEPLIMITS_H
