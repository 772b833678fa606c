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

#include "laer/runtime/fsep/FsepMoELayer.h"

#include <span>
#include <vector>

namespace laer::test {

struct ReferenceResult {
  std::vector<double> output;    // [T, H]
  std::vector<double> dInput;    // [T, H]
  std::vector<double> dGate;     // [H, E]
  std::vector<double> dExperts;  // [E, 3 * H * F]
  std::vector<int> expertCounts; // pairs per expert
  std::vector<double> aux, z;    // router losses per rank
};

/// What the router variants and losses need beside the layer's tensors.
struct ReferenceRouterInputs {
  /// The selection bias [E] (with config.routing.selectionBias).
  std::span<const float> bias;
  /// The tokens are split into `ranks` equal contiguous micro-batches, each
  /// with its own router losses (loads over all of them for the
  /// global-batch aux loss).
  int ranks = 1;
  /// d(loss)/d(aux) and d(loss)/d(z) of every rank's losses.
  double dAux = 0, dZ = 0;
};

/// Forward and backward of one MoE layer on all `tokens` tokens.
ReferenceResult referenceMoE(const rt::MoELayerConfig &config,
                             std::span<const float> input,
                             std::span<const float> gate,
                             std::span<const float> experts,
                             std::span<const float> dOutput,
                             const ReferenceRouterInputs &router = {});

/// ||actual - expected|| / max(||expected||, tiny).
double relativeError(std::span<const float> actual,
                     std::span<const double> expected);

} // namespace laer::test

#endif // LAER_TEST_REFERENCEMOE_H
