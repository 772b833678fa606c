//===- ValidationScenarios.h - bad plans and shards, any backend -*- C++
//-*-===//
//
// Each case feeds the FSEP layer one kind of bad input and returns the
// error message this rank got (empty if none was raised). Every rank must
// raise it, and none may hang.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_VALIDATIONSCENARIOS_H
#define LAER_TEST_VALIDATIONSCENARIOS_H

#include "laer/runtime/comm/Communicator.h"

#include <string>

namespace laer::test {

enum class BadInput {
  ExpertWithoutReplica, // the layout leaves a routed expert out
  RoutingDoesNotAddUp,  // routing moves one token more than counted
  WrongShardSize,       // a checkpoint shard of the wrong length
  RankDependentPlan,    // ranks disagree on the plan
};

/// Runs the case on this rank; returns the RuntimeError message.
std::string runBadInput(rt::Communicator &comm, BadInput kind);

} // namespace laer::test

#endif // LAER_TEST_VALIDATIONSCENARIOS_H
