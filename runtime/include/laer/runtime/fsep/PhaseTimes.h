//===- PhaseTimes.h - wall time per phase of a layer step -------*- C++ -*-===//

#ifndef LAER_RUNTIME_FSEP_PHASETIMES_H
#define LAER_RUNTIME_FSEP_PHASETIMES_H

#include <array>
#include <chrono>

namespace laer::rt {

enum class Phase {
  Router,       // gate GEMM, scores, top-k (forward) and its gradient
  Plan,         // load all-gather, relayout hook, agreement check
  Restore,      // parameter-shard all-to-all
  Dispatch,     // token permute + all-to-all to the experts (and dy in bwd)
  Compute,      // expert FFNs, forward and backward
  Combine,      // all-to-all back + weighted sum (and dx in bwd)
  GradAllToAll, // weight-gradient all-to-all and replica sum at owners
  Optimizer,    // AdamW on the shards and the replicated gate
  Count
};

const char *nameOf(Phase phase);

class Tracer;

/// Seconds spent per phase since the last reset; with a tracer attached,
/// each phase interval is also recorded on the timeline.
class PhaseTimes {
public:
  void attach(Tracer *tracer, int layer) {
    tracer_ = tracer;
    layer_ = layer;
  }
  Tracer *tracer() const { return tracer_; }
  int layer() const { return layer_; }
  long step = -1;

  double &operator[](Phase phase) { return seconds_[static_cast<int>(phase)]; }
  double operator[](Phase phase) const {
    return seconds_[static_cast<int>(phase)];
  }
  double total() const;
  void reset() { seconds_.fill(0.0); }

private:
  std::array<double, static_cast<int>(Phase::Count)> seconds_{};
  Tracer *tracer_ = nullptr;
  int layer_ = -1;
};

/// Adds the lifetime of the scope to one phase.
class ScopedPhase {
public:
  ScopedPhase(PhaseTimes &times, Phase phase)
      : times_(times), phase_(phase), start_(std::chrono::steady_clock::now()) {
  }
  ~ScopedPhase();
  ScopedPhase(const ScopedPhase &) = delete;
  ScopedPhase &operator=(const ScopedPhase &) = delete;

private:
  PhaseTimes &times_;
  Phase phase_;
  std::chrono::steady_clock::time_point start_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_FSEP_PHASETIMES_H
