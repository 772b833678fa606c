//===- Planners.h - the planner implementations -----------------*- C++ -*-===//

#ifndef LAER_PLANNER_PLANNERS_H
#define LAER_PLANNER_PLANNERS_H

#include "laer/planner/Planner.h"

namespace laer::planner {

/// Round-robin layout, tokens split evenly over replicas.
class StaticPlanner : public Planner {
public:
  std::string name() const override { return "static"; }
  rt::Plan plan(const PlannerInput &input) override;
};

/// FlexMoE's scheduler as the paper's baseline: starting from round-robin,
/// repeatedly move a spare replica from the coldest rank to the expert with
/// the highest load per replica, while the hottest rank gets cooler.
class FlexMoEPlanner : public Planner {
public:
  std::string name() const override { return "flexmoe"; }
  rt::Plan plan(const PlannerInput &input) override;
};

/// Water-filled replica counts, longest-first placement, equal split: the
/// plain baseline (see GreedyPlanner.cpp).
class GreedyPlanner : public Planner {
public:
  std::string name() const override { return "greedy"; }
  rt::Plan plan(const PlannerInput &input) override;
};

/// The heuristic the LAER-MoE paper ships: "even" and "priority queue"
/// replica counts, LPT placement preferring nodes with fewer copies, even
/// token split over same-node replicas (else remote ones); the candidate
/// with the lower `4*sum(comm) + passes*max(compute)` wins.
class LaerPlanner : public Planner {
public:
  std::string name() const override { return "laer"; }
  rt::Plan plan(const PlannerInput &input) override;
};

/// Ours: replicas placed where their tokens come from (node-aware), routing
/// that gives every replica the same load and keeps tokens on their rank,
/// then their node, and candidates compared on the true critical path.
class LaerPlusPlanner : public Planner {
public:
  std::string name() const override { return "laer+"; }
  rt::Plan plan(const PlannerInput &input) override;
};

/// Exhaustive search for tiny instances (N <= 4, E <= 8, C <= 2): every
/// layout, each with its optimal routing from a linear program (GLPK); the
/// reference the heuristics' optimality gap is measured against. See
/// laer/planner/Exact.h.
class ExactPlanner : public Planner {
public:
  std::string name() const override { return "exact"; }
  rt::Plan plan(const PlannerInput &input) override;
};

} // namespace laer::planner

#endif // LAER_PLANNER_PLANNERS_H
