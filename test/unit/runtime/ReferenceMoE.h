//===- ReferenceMoE.h - single-device MoE layer in float64 ------*- C++ -*-===//
//
// The independent reference the FSEP runtime is checked against: all
// tokens on one device, every (token, choice) pair computed with plain
// loops in double precision, gradients derived by hand. It shares no code
// with the runtime's kernels.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_REFERENCEMOE_H
#define LAER_TEST_REFERENCEMOE_H

#include "laer/runtime/FsepMoELayer.h"

#include <span>
#include <vector>

namespace laer::test {

struct ReferenceResult {
  std::vector<double> output;      // [T, H]
  std::vector<double> dInput;      // [T, H]
  std::vector<double> dGate;       // [H, E]
  std::vector<double> dExperts;    // [E, 3 * H * F]
  std::vector<int> expertCounts;   // pairs per expert
};

/// Forward and backward of one MoE layer on all `tokens` tokens.
ReferenceResult referenceMoE(const rt::MoELayerConfig &config,
                             std::span<const float> input,
                             std::span<const float> gate,
                             std::span<const float> experts,
                             std::span<const float> dOutput);

/// ||actual - expected|| / max(||expected||, tiny).
double relativeError(std::span<const float> actual,
                     std::span<const double> expected);

} // namespace laer::test

#endif // LAER_TEST_REFERENCEMOE_H
