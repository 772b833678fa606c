//===- Trace.cpp - per-rank timelines in Chrome trace format --------------===//

#include "laer/runtime/io/Trace.h"
#include "laer/runtime/comm/Communicator.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

using namespace laer::rt;

void Tracer::record(std::string name, std::string category,
                    std::chrono::steady_clock::time_point start, long step) {
  auto now = std::chrono::steady_clock::now();
  events_.push_back(
      {std::move(name), std::move(category),
       std::chrono::duration<double, std::micro>(start - origin_).count(),
       std::chrono::duration<double, std::micro>(now - start).count(), step});
}

void Tracer::alignOrigin(Communicator &comm) {
  comm.barrier();
  auto now = std::chrono::steady_clock::now();
  double shift =
      std::chrono::duration<double, std::micro>(now - origin_).count();
  for (Event &event : events_)
    event.startMicros -= shift;
  origin_ = now;
}

void Tracer::write(const std::string &path, Communicator &comm) const {
  nlohmann::json events = nlohmann::json::array();
  for (const Event &event : events_)
    events.push_back({{"name", event.name},
                      {"cat", event.category},
                      {"ph", "X"},
                      {"ts", event.startMicros},
                      {"dur", event.durationMicros},
                      {"pid", rank_},
                      {"tid", 0},
                      {"args", {{"step", event.step}}}});
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", rank_},
                    {"args", {{"name", "rank " + std::to_string(rank_)}}}});
  std::string part = path + ".rank" + std::to_string(rank_);
  {
    std::ofstream out(part);
    out << events.dump();
    if (!out.flush())
      fail({rank_, -1, -1}, "cannot write the trace part '", part, "'");
  }
  comm.barrier();
  if (comm.rank() == 0) {
    nlohmann::json merged = nlohmann::json::array();
    for (int rank = 0; rank < comm.size(); ++rank) {
      std::string name = path + ".rank" + std::to_string(rank);
      std::ifstream in(name);
      nlohmann::json partEvents = nlohmann::json::parse(in, nullptr, false);
      if (partEvents.is_discarded())
        fail({0, -1, -1}, "the trace part '", name, "' of rank ", rank,
             " is missing or malformed");
      for (auto &event : partEvents)
        merged.push_back(std::move(event));
      std::remove(name.c_str());
    }
    std::ofstream out(path);
    out << nlohmann::json{{"traceEvents", merged}, {"displayTimeUnit", "ms"}}
               .dump();
    if (!out.flush())
      fail({0, -1, -1}, "cannot write the trace '", path, "'");
  }
  comm.barrier();
}
