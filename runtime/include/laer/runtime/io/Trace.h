//===- Trace.h - per-rank timelines in Chrome trace format -----*- C++ -*-===//
//
// Records named intervals of one rank (a phase of a layer, a whole step)
// and writes them as Chrome trace / Perfetto JSON ("traceEvents" with
// complete events), one process per rank, so every rank's phases line up
// on one timeline.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_RUNTIME_IO_TRACE_H
#define LAER_RUNTIME_IO_TRACE_H

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace laer::rt {

class Communicator;

class Tracer {
public:
  explicit Tracer(int rank)
      : rank_(rank), origin_(std::chrono::steady_clock::now()) {}

  struct Event {
    std::string name;
    std::string category;
    double startMicros;
    double durationMicros;
    long step;
  };

  /// Collective: sets every rank's time origin at the end of one barrier,
  /// so one collective's intervals line up across ranks (each rank's clock
  /// otherwise starts when its Tracer was made, milliseconds apart). Events
  /// already recorded keep their times.
  void alignOrigin(Communicator &comm);

  /// Records an interval that started at `start` and ends now.
  void record(std::string name, std::string category,
              std::chrono::steady_clock::time_point start, long step);
  const std::vector<Event> &events() const { return events_; }

  /// Collective: every rank writes `path.rank<r>`, then rank 0 merges them
  /// into `path` and removes the parts.
  void write(const std::string &path, Communicator &comm) const;

private:
  int rank_;
  std::chrono::steady_clock::time_point origin_;
  std::vector<Event> events_;
};

} // namespace laer::rt

#endif // LAER_RUNTIME_IO_TRACE_H
