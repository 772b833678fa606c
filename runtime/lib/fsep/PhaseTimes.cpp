//===- PhaseTimes.cpp -----------------------------------------------------===//

#include "laer/runtime/fsep/PhaseTimes.h"
#include "laer/runtime/io/Trace.h"

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

laer::rt::ScopedPhase::~ScopedPhase() {
  times_[phase_] +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  if (Tracer *tracer = times_.tracer())
    tracer->record(std::string(nameOf(phase_)) + " L" +
                       std::to_string(times_.layer()),
                   "moe", start_, times_.step);
}
