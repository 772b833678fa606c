//===- PhaseTimes.cpp -----------------------------------------------------===//

#include "laer/runtime/PhaseTimes.h"

#include <numeric>

const char *laer::rt::nameOf(Phase phase) {
  switch (phase) {
  case Phase::Router:
    return "router";
  case Phase::Plan:
    return "plan";
  case Phase::Restore:
    return "restore";
  case Phase::Dispatch:
    return "dispatch";
  case Phase::Compute:
    return "compute";
  case Phase::Combine:
    return "combine";
  case Phase::GradAllToAll:
    return "grad-a2a";
  case Phase::Optimizer:
    return "optimizer";
  case Phase::Count:
    break;
  }
  return "?";
}

double laer::rt::PhaseTimes::total() const {
  return std::accumulate(seconds_.begin(), seconds_.end(), 0.0);
}
