//===- FsepScenarios.h - FSEP-vs-reference scenarios, any backend -*- C++
//-*-===//
//
// Test bodies shared by the in-process tests and the MPI integration tests:
// each runs on one rank with whatever communicator it is given, so the same
// scenario is checked on threads and on processes.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_FSEPSCENARIOS_H
#define LAER_TEST_FSEPSCENARIOS_H

#include "laer/runtime/fsep/FsepMoELayer.h"

#include <memory>
#include <string>
#include <vector>

namespace laer::test {

enum class PlannerKind {
  Static,    // round-robin layout, even split
  Random,    // random layout and random uneven split, new every step
  HotExpert, // expert 0 replicated on every rank, the rest round-robin
  LaerPlus,  // the laer+ planner at the relayout hook
};

struct Scenario {
  std::string name;
  rt::MoELayerConfig config;
  /// Tokens over all ranks; each rank gets an equal contiguous slice.
  std::int64_t globalTokens = 48;
  int steps = 1;
  PlannerKind planner = PlannerKind::Static;
  std::uint64_t seed = 7;
  /// Bias the gate so the last expert never receives a token.
  bool starveLastExpert = false;
  /// With the random planner: leave experts without tokens out of the layout.
  bool dropUnloaded = false;
  /// d(loss)/d(aux) and d(loss)/d(z) of every rank's router losses (with
  /// config.losses).
  float dAux = 0, dZ = 0;
};

/// Per step: relative errors (vs. the float64 reference) of the output,
/// input gradient, gate gradient and expert weight gradients, and the
/// number of replicas the plan gave the most replicated expert.
struct StepCheck {
  double output = 0, dInput = 0, dGate = 0, dExperts = 0;
  /// Relative errors of this rank's router losses (0 without them).
  double aux = 0, z = 0;
  int maxReplicas = 0;
  std::int64_t starvedExpertTokens = -1;
  std::vector<int> slots; // the step's layout
};

/// Runs `scenario` on this rank and checks every step against the
/// reference (computed redundantly on every rank).
std::vector<StepCheck> runScenario(rt::Communicator &comm,
                                   const Scenario &scenario);

/// `steps` training steps (forward, backward, AdamW); returns the final
/// full expert weights followed by the gate, identical on every rank.
std::vector<float> trainScenario(rt::Communicator &comm,
                                 const Scenario &scenario,
                                 const rt::AdamWConfig &adamw);

std::unique_ptr<rt::RelayoutHook> makeHook(const Scenario &scenario);

/// The scenarios the issue asks for, small enough for a unit test.
std::vector<Scenario> standardScenarios();

} // namespace laer::test

#endif // LAER_TEST_FSEPSCENARIOS_H
