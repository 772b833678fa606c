//===- ExactPlanner.cpp - optimal plans of tiny instances -----------------===//

#include "laer/planner/Exact.h"

#include "PlanBuilding.h"
#include "Planners.h"

#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

using namespace laer;
using namespace laer::planner;

namespace {

struct ProblemDeleter {
  void operator()(glp_prob *problem) const { glp_delete_prob(problem); }
};
using Problem = std::unique_ptr<glp_prob, ProblemDeleter>;

/// Sparse constraint matrix in GLPK's 1-based triplet form.
struct Matrix {
  std::vector<int> rows{0}, cols{0};
  std::vector<double> values{0.0};
  void add(int row, int col, double value) {
    rows.push_back(row);
    cols.push_back(col);
    values.push_back(value);
  }
};

} // namespace

double planner::optimalRoutingCost(const rt::Layout &layout,
                                   const PlannerInput &input,
                                   std::vector<double> *routing) {
  const ClusterSpec &cluster = input.cluster;
  const LayerSpec &layer = input.layer;
  int N = layout.numRanks(), E = layout.numExperts();
  const auto &replicas = layout.replicas();
  auto R = static_cast<int>(replicas.size());
  for (int e = 0; e < E; ++e)
    for (int source = 0; source < N; ++source)
      if (input.counts[source * E + e] > 0 && layout.replicasOf(e).empty())
        return std::numeric_limits<double>::infinity();

  // Work in milliseconds so the coefficients are of moderate size.
  double msPerToken = 1e3 * layer.flopsPerToken() /
                      (cluster.flopsPerSecond * cluster.computeEfficiency);
  double bytes = layer.bytesPerToken();
  double passes = layer.computePasses();
  // Parameter traffic as evaluate() computes it (layout independent).
  double shard = layer.parameterBytesPerExpert() / N;
  int inNode = std::min(cluster.gpusPerNode, N) - 1;
  double param = 1e3 * std::max(layer.slotsPerRank * shard * inNode /
                                    cluster.intraNodeBandwidth,
                                layer.slotsPerRank * shard * (N - 1 - inNode) /
                                    cluster.interNodeBandwidth);

  Problem problem(glp_create_prob());
  glp_set_obj_dir(problem.get(), GLP_MIN);
  // Columns: x[source][replica], then compute, a2a, exposed1, exposed2.
  int x0 = 1, compute = N * R + 1, a2a = compute + 1, exposed1 = a2a + 1,
      exposed2 = exposed1 + 1;
  glp_add_cols(problem.get(), exposed2);
  for (int col = 1; col <= exposed2; ++col)
    glp_set_col_bnds(problem.get(), col, GLP_LO, 0.0, 0.0);
  glp_set_obj_coef(problem.get(), a2a, LayerSpec::kTokenExchanges);
  glp_set_obj_coef(problem.get(), compute, passes);
  glp_set_obj_coef(problem.get(), exposed1, 1.0);
  glp_set_obj_coef(problem.get(), exposed2, 1.0);
  auto x = [&](int source, int replica) { return x0 + source * R + replica; };

  Matrix matrix;
  int row = 0;
  auto newRow = [&](int type, double lower, double upper) {
    glp_add_rows(problem.get(), 1);
    glp_set_row_bnds(problem.get(), ++row, type, lower, upper);
    return row;
  };
  // Every (source, expert) count is routed, to that expert's replicas only.
  for (int source = 0; source < N; ++source)
    for (int e = 0; e < E; ++e) {
      double count = double(input.counts[source * E + e]);
      int r = newRow(GLP_FX, count, count);
      for (int replica : layout.replicasOf(e))
        matrix.add(r, x(source, replica), 1.0);
    }
  // compute >= each rank's expert time; a2a >= each rank's traffic time
  // per link and direction (as in evaluate()).
  for (int rank = 0; rank < N; ++rank) {
    int r = newRow(GLP_UP, 0.0, 0.0);
    matrix.add(r, compute, -1.0);
    for (int replica = 0; replica < R; ++replica)
      if (replicas[replica].rank == rank)
        for (int source = 0; source < N; ++source)
          matrix.add(r, x(source, replica), msPerToken);
    for (int direction = 0; direction < 2; ++direction)
      for (int link = 0; link < 2; ++link) {
        double bandwidth =
            link == 0 ? cluster.intraNodeBandwidth : cluster.interNodeBandwidth;
        int r2 = newRow(GLP_UP, 0.0, 0.0);
        matrix.add(r2, a2a, -1.0);
        for (int source = 0; source < N; ++source)
          for (int replica = 0; replica < R; ++replica) {
            int target = replicas[replica].rank;
            if (source == target || (direction == 0 ? source : target) != rank)
              continue;
            bool sameNode = cluster.nodeOf(source) == cluster.nodeOf(target);
            if (sameNode == (link == 0))
              matrix.add(r2, x(source, replica), 1e3 * bytes / bandwidth);
          }
      }
  }
  // exposed1 >= param - compute; exposed2 >= 2 param - (passes-1) compute.
  int r = newRow(GLP_LO, param, 0.0);
  matrix.add(r, exposed1, 1.0);
  matrix.add(r, compute, 1.0);
  r = newRow(GLP_LO, 2.0 * param, 0.0);
  matrix.add(r, exposed2, 1.0);
  matrix.add(r, compute, passes - 1.0);

  glp_load_matrix(problem.get(), static_cast<int>(matrix.rows.size()) - 1,
                  matrix.rows.data(), matrix.cols.data(), matrix.values.data());
  glp_smcp options;
  glp_init_smcp(&options);
  options.msg_lev = GLP_MSG_OFF;
  options.presolve = GLP_ON;
  if (glp_simplex(problem.get(), &options) != 0 ||
      glp_get_status(problem.get()) != GLP_OPT)
    rt::fail({}, "exact planner: the routing LP did not solve");
  if (routing) {
    routing->assign(static_cast<std::size_t>(N) * R, 0.0);
    for (int source = 0; source < N; ++source)
      for (int replica = 0; replica < R; ++replica)
        (*routing)[source * R + replica] =
            glp_get_col_prim(problem.get(), x(source, replica));
  }
  return glp_get_obj_val(problem.get()) / 1e3;
}

namespace {

/// Rounds a fractional routing to integers per (source, expert) by largest
/// remainder, so the tokens counted are exactly the tokens routed.
rt::Routing roundRouting(const rt::Layout &layout,
                         std::span<const std::int64_t> counts,
                         const std::vector<double> &fractional) {
  int N = layout.numRanks(), E = layout.numExperts();
  auto R = static_cast<int>(layout.replicas().size());
  std::vector<rt::Routing::Triplet> triplets;
  for (int source = 0; source < N; ++source)
    for (int e = 0; e < E; ++e) {
      std::span<const int> copies = layout.replicasOf(e);
      std::int64_t count = counts[source * E + e];
      if (count == 0)
        continue;
      std::vector<std::pair<double, int>> remainders;
      std::int64_t assigned = 0;
      for (int replica : copies) {
        double value = std::max(0.0, fractional[source * R + replica]);
        std::int64_t whole =
            std::min(static_cast<std::int64_t>(std::floor(value + 1e-9)),
                     count - assigned);
        triplets.push_back({source, replica, whole});
        assigned += whole;
        remainders.push_back({value - whole, replica});
      }
      std::stable_sort(remainders.begin(), remainders.end(),
                       [](auto &a, auto &b) { return a.first > b.first; });
      for (std::size_t i = 0; assigned < count; ++i, ++assigned)
        triplets.push_back(
            {source, remainders[i % remainders.size()].second, 1});
    }
  return rt::Routing::fromTriplets(N, R, triplets);
}

} // namespace

ExactSolution planner::solveExact(const PlannerInput &input) {
  detail::requireEnoughSlots(input, "exact");
  int N = input.cluster.numRanks, C = input.layer.slotsPerRank,
      E = input.layer.numExperts;
  if (N > 4 || E > 8 || C > 2)
    rt::fail({},
             "exact planner is for tiny instances (N <= 4, E <= 8, "
             "C <= 2), got N = ",
             N, ", E = ", E, ", C = ", C);
  // Every set of min(C, E) distinct experts, per rank.
  int k = std::min(C, E);
  std::vector<std::vector<int>> choices;
  std::vector<int> pick;
  auto enumerate = [&](auto &&self, int start) -> void {
    if (static_cast<int>(pick.size()) == k) {
      choices.push_back(pick);
      return;
    }
    for (int e = start; e < E; ++e) {
      pick.push_back(e);
      self(self, e + 1);
      pick.pop_back();
    }
  };
  enumerate(enumerate, 0);

  ExactSolution best;
  best.lowerBound = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> index(N, 0);
  std::vector<std::vector<int>> perRank(N);
  std::vector<double> fractional, bestFractional;
  rt::Layout bestLayout;
  while (true) {
    for (int rank = 0; rank < N; ++rank)
      perRank[rank] = choices[index[rank]];
    rt::Layout layout = detail::layoutFromRanks(perRank, C, E);
    double cost = optimalRoutingCost(layout, input, &fractional);
    ++best.layoutsSearched;
    if (cost < best.lowerBound) {
      best.lowerBound = cost;
      bestLayout = layout;
      bestFractional = fractional;
    }
    int rank = 0;
    while (rank < N && ++index[rank] == choices.size())
      index[rank++] = 0;
    if (rank == N)
      break;
  }
  if (best.lowerBound == std::numeric_limits<double>::infinity())
    rt::fail({}, "exact planner: no layout can serve the load");
  // The integer plan: the optimal layout with the LP routing rounded, or a
  // heuristic routing of the same layout if that happens to be cheaper.
  best.planCost = std::numeric_limits<double>::infinity();
  for (rt::Routing routing :
       {roundRouting(bestLayout, input.counts, bestFractional),
        detail::routeBalanced(bestLayout, input.counts, input.cluster)}) {
    rt::Plan plan{bestLayout, std::move(routing)};
    double cost = evaluate(plan, input.cluster, input.layer).criticalPath;
    if (cost < best.planCost) {
      best.planCost = cost;
      best.plan = std::move(plan);
    }
  }
  return best;
}

rt::Plan ExactPlanner::plan(const PlannerInput &input) {
  return solveExact(input).plan;
}
