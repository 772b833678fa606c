//===- Exact.h - optimal plans of tiny instances ----------------*- C++ -*-===//
//
// For N <= 4 ranks, E <= 8 experts and C <= 2 slots, enumerates every
// layout that fills each rank's slots with distinct experts (an extra
// replica never costs anything in the cost model, so full layouts contain
// an optimum) and solves, per layout, the linear program of the optimal
// token routing: minimise 4 * max a2a + passes * max compute + exposed
// parameter traffic, the critical path of evaluate(), with tokens allowed
// to split fractionally. The minimum over layouts is a lower bound on the
// best integer plan; heuristics measured against it have at most the
// reported gap.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_PLANNER_EXACT_H
#define LAER_PLANNER_EXACT_H

#include "laer/planner/Planner.h"

namespace laer::planner {

struct ExactSolution {
  /// The lower bound: the optimal critical path with fractional routing.
  double lowerBound = 0;
  /// The best integer plan found: the optimal layout with its routing
  /// rounded (largest remainder) or a heuristic routing, whichever is
  /// cheaper.
  rt::Plan plan;
  double planCost = 0;
  long layoutsSearched = 0;
};

ExactSolution solveExact(const PlannerInput &input);

/// Critical path of the best fractional routing for a fixed layout, or
/// +infinity if the layout cannot serve the load. Fills `routing` (tokens
/// per [source][replica]) when given.
double optimalRoutingCost(const rt::Layout &layout, const PlannerInput &input,
                          std::vector<double> *routing = nullptr);

} // namespace laer::planner

#endif // LAER_PLANNER_EXACT_H
