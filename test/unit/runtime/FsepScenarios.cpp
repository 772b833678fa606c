//===- FsepScenarios.cpp - FSEP-vs-reference scenarios, any backend -------===//

#include "FsepScenarios.h"
#include "ReferenceMoE.h"

#include "laer/planner/Planner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

constexpr std::uint64_t kInputStream = 1ull << 50;
constexpr std::uint64_t kGradStream = 2ull << 50;

std::vector<float> globalTensor(std::uint64_t seed, std::uint64_t stream,
                                std::size_t size, float scale) {
  std::vector<float> values(size);
  for (std::size_t i = 0; i < size; ++i)
    values[i] = scale * (2.0f * uniformAt(seed, stream, i) - 1.0f);
  return values;
}

/// Random layouts and uneven splits; a deterministic function of
/// (seed, layer, step, counts), as relayout hooks must be.
class RandomPlanHook : public RelayoutHook {
public:
  RandomPlanHook(std::uint64_t seed, bool dropUnloaded)
      : seed_(seed), dropUnloaded_(dropUnloaded) {}
  std::string name() const override { return "test-random"; }

  Plan plan(const PlanRequest &request) override {
    int N = request.numRanks, C = request.slotsPerRank, E = request.numExperts;
    std::mt19937_64 rng(seed_ * 1000003 + request.layer * 7919 + request.step);
    std::vector<std::int64_t> load(E, 0);
    for (int source = 0; source < N; ++source)
      for (int e = 0; e < E; ++e)
        load[e] += request.counts[source * E + e];

    std::vector<int> slots(static_cast<std::size_t>(N) * C, Layout::kEmpty);
    std::vector<int> experts(E);
    for (int rank = 0; rank < N; ++rank) {
      std::iota(experts.begin(), experts.end(), 0);
      std::shuffle(experts.begin(), experts.end(), rng);
      for (int c = 0; c < C && c < E; ++c)
        if (rng() % 5 != 0) // leave some slots empty
          slots[rank * C + c] = experts[c];
    }
    if (dropUnloaded_)
      for (int &expert : slots)
        if (expert != Layout::kEmpty && load[expert] == 0)
          expert = Layout::kEmpty;
    // Every loaded expert needs a replica: put missing ones into an empty
    // slot, else in place of an expert that has a spare copy.
    auto copies = [&](int e) {
      return std::count(slots.begin(), slots.end(), e);
    };
    auto onRank = [&](int rank, int e) {
      return std::find(slots.begin() + rank * C, slots.begin() + (rank + 1) * C,
                       e) != slots.begin() + (rank + 1) * C;
    };
    for (int e = 0; e < E; ++e) {
      if (load[e] == 0 || copies(e) > 0)
        continue;
      bool placed = false;
      for (std::size_t i = 0; i < slots.size() && !placed; ++i)
        if (slots[i] == Layout::kEmpty && !onRank(int(i) / C, e))
          slots[i] = e, placed = true;
      for (std::size_t i = 0; i < slots.size() && !placed; ++i)
        if (copies(slots[i]) > 1 && !onRank(int(i) / C, e))
          slots[i] = e, placed = true;
    }
    Layout layout(N, C, E, slots, {-1, request.layer, request.step});

    // Split each (source, expert) count at random cut points.
    Routing routing(N, static_cast<int>(layout.replicas().size()));
    for (int source = 0; source < N; ++source) {
      for (int e = 0; e < E; ++e) {
        std::span<const int> replicas = layout.replicasOf(e);
        std::int64_t count = request.counts[source * E + e];
        if (replicas.empty())
          continue;
        std::vector<std::int64_t> cuts = {0, count};
        for (std::size_t i = 1; i < replicas.size(); ++i)
          cuts.push_back(
              count == 0 ? 0 : static_cast<std::int64_t>(rng() % (count + 1)));
        std::sort(cuts.begin(), cuts.end());
        for (std::size_t i = 0; i < replicas.size(); ++i)
          routing.set(source, replicas[i], cuts[i + 1] - cuts[i]);
      }
    }
    return Plan{std::move(layout), std::move(routing)};
  }

private:
  std::uint64_t seed_;
  bool dropUnloaded_;
};

/// Expert 0 in slot 0 of every rank; the other slots round-robin over the
/// remaining experts; tokens split evenly.
class HotExpertHook : public RelayoutHook {
public:
  std::string name() const override { return "test-hot"; }
  Plan plan(const PlanRequest &request) override {
    int N = request.numRanks, C = request.slotsPerRank, E = request.numExperts;
    std::vector<int> slots(static_cast<std::size_t>(N) * C);
    int next = 0;
    for (int rank = 0; rank < N; ++rank) {
      slots[rank * C] = 0;
      for (int c = 1; c < C; ++c)
        slots[rank * C + c] = 1 + (next++ % (E - 1));
    }
    Layout layout(N, C, E, slots, {-1, request.layer, request.step});
    Routing routing = Routing::evenSplit(layout, request.counts);
    return Plan{std::move(layout), std::move(routing)};
  }
};

struct RankData {
  std::vector<float> fullExperts, gate, bias;
};

RankData initialWeights(const Scenario &scenario) {
  const MoELayerConfig &config = scenario.config;
  RankData data;
  std::size_t P = static_cast<std::size_t>(config.shape.parameters());
  data.fullExperts.resize(P * config.numExperts);
  for (int e = 0; e < config.numExperts; ++e)
    for (std::size_t i = 0; i < P; ++i)
      data.fullExperts[e * P + i] =
          0.3f * (2.0f * uniformAt(scenario.seed, e, i) - 1.0f);
  data.gate = globalTensor(scenario.seed, 3ull << 50,
                           config.shape.hidden * config.numExperts, 0.5f);
  // With a starved last expert, feature 0 (set large in every input)
  // drives its logit far below the others.
  if (scenario.starveLastExpert)
    data.gate[config.numExperts - 1] = -20.0f;
  if (config.routing.selectionBias)
    data.bias =
        globalTensor(scenario.seed, 4ull << 50, config.numExperts, 0.1f);
  return data;
}

/// All ranks' inputs for one step.
std::vector<float> stepInput(const Scenario &scenario, long step) {
  std::int64_t H = scenario.config.shape.hidden;
  std::vector<float> x = globalTensor(scenario.seed, kInputStream + step,
                                      scenario.globalTokens * H, 1.0f);
  if (scenario.starveLastExpert)
    for (std::int64_t t = 0; t < scenario.globalTokens; ++t)
      x[t * H] = 4.0f;
  return x;
}

std::vector<float> localSlice(const std::vector<float> &global,
                              std::int64_t width, const Communicator &comm,
                              std::int64_t globalRows) {
  if (globalRows % comm.size() != 0)
    fail({comm.rank(), -1, -1}, "test scenario: ", globalRows,
         " tokens do not split evenly over ", comm.size(), " ranks");
  std::int64_t rows = globalRows / comm.size();
  return std::vector<float>(global.begin() + comm.rank() * rows * width,
                            global.begin() + (comm.rank() + 1) * rows * width);
}

void loadWeights(FsepMoELayer &layer, const RankData &weights,
                 Communicator &comm) {
  layer.experts().loadFull(weights.fullExperts, {comm.rank(), 0, -1});
  std::copy(weights.gate.begin(), weights.gate.end(), layer.gate().begin());
  std::copy(weights.bias.begin(), weights.bias.end(),
            layer.selectionBias().begin());
}

double relativeScalarError(double actual, double expected) {
  return std::abs(actual - expected) / std::max(std::abs(expected), 1e-30);
}

/// The scenario's configuration on `ranks` ranks: at least enough slots
/// for every expert to have a place (N * C >= E).
MoELayerConfig configFor(const Scenario &scenario, int ranks) {
  MoELayerConfig config = scenario.config;
  int needed = (config.numExperts + ranks - 1) / ranks;
  // The hot expert takes one slot on every rank.
  if (scenario.planner == PlannerKind::HotExpert)
    needed = 1 + (config.numExperts - 1 + ranks - 1) / ranks;
  config.slotsPerRank = std::max(config.slotsPerRank, needed);
  return config;
}

} // namespace

std::unique_ptr<RelayoutHook> laer::test::makeHook(const Scenario &scenario) {
  switch (scenario.planner) {
  case PlannerKind::Static:
    return std::make_unique<StaticRoundRobinHook>();
  case PlannerKind::Random:
    return std::make_unique<RandomPlanHook>(scenario.seed,
                                            scenario.dropUnloaded);
  case PlannerKind::HotExpert:
    return std::make_unique<HotExpertHook>();
  case PlannerKind::LaerPlus: {
    planner::LayerSpec layer;
    layer.hidden = scenario.config.shape.hidden;
    layer.ffn = scenario.config.shape.ffn;
    return std::make_unique<planner::PlannerHook>(
        planner::makePlanner("laer+"), planner::ClusterSpec{}, layer);
  }
  }
  return nullptr;
}

std::vector<StepCheck> laer::test::runScenario(Communicator &comm,
                                               const Scenario &scenario) {
  const MoELayerConfig config = configFor(scenario, comm.size());
  std::int64_t H = config.shape.hidden;
  RankData weights = initialWeights(scenario);
  FsepMoELayer layer(comm, config, /*layerIndex=*/0);
  loadWeights(layer, weights, comm);
  std::unique_ptr<RelayoutHook> hook = makeHook(scenario);

  std::vector<StepCheck> checks;
  for (long step = 0; step < scenario.steps; ++step) {
    std::vector<float> x = stepInput(scenario, step);
    std::vector<float> dOut = globalTensor(scenario.seed, kGradStream + step,
                                           scenario.globalTokens * H, 1.0f);

    layer.zeroGrads();
    std::vector<float> out = layer.forward(
        localSlice(x, H, comm, scenario.globalTokens), step, *hook);
    cpu::RouterLosses losses = layer.routerLosses();
    if (config.losses.aux != AuxLoss::None)
      layer.setAuxLossGradient(scenario.dAux);
    if (config.losses.z)
      layer.setZLossGradient(scenario.dZ);
    std::vector<float> dx =
        layer.backward(localSlice(dOut, H, comm, scenario.globalTokens));

    ReferenceRouterInputs router{weights.bias, comm.size(), scenario.dAux,
                                 scenario.dZ};
    ReferenceResult ref = referenceMoE(config, x, weights.gate,
                                       weights.fullExperts, dOut, router);
    StepCheck check;
    if (config.losses.aux != AuxLoss::None)
      check.aux = relativeScalarError(losses.aux, ref.aux[comm.rank()]);
    if (config.losses.z)
      check.z = relativeScalarError(losses.z, ref.z[comm.rank()]);
    check.output =
        relativeError(comm.allGather(std::span<const float>(out)), ref.output);
    check.dInput =
        relativeError(comm.allGather(std::span<const float>(dx)), ref.dInput);
    check.dGate = relativeError(layer.gateGrad(), ref.dGate);
    check.dExperts =
        relativeError(layer.experts().gatherFullGrads(comm), ref.dExperts);
    for (int e = 0; e < config.numExperts; ++e)
      check.maxReplicas = std::max<int>(
          check.maxReplicas, layer.lastPlan().layout.replicasOf(e).size());
    if (scenario.starveLastExpert)
      check.starvedExpertTokens = ref.expertCounts[config.numExperts - 1];
    check.slots = layer.lastPlan().layout.slots();
    checks.push_back(check);
  }
  return checks;
}

std::vector<float> laer::test::trainScenario(Communicator &comm,
                                             const Scenario &scenario,
                                             const AdamWConfig &adamw) {
  const MoELayerConfig config = configFor(scenario, comm.size());
  std::int64_t H = config.shape.hidden;
  RankData weights = initialWeights(scenario);
  FsepMoELayer layer(comm, config, 0);
  loadWeights(layer, weights, comm);
  std::unique_ptr<RelayoutHook> hook = makeHook(scenario);
  for (long step = 0; step < scenario.steps; ++step) {
    std::vector<float> x = stepInput(scenario, step);
    std::vector<float> dOut = globalTensor(scenario.seed, kGradStream + step,
                                           scenario.globalTokens * H, 1.0f);
    layer.zeroGrads();
    layer.forward(localSlice(x, H, comm, scenario.globalTokens), step, *hook);
    layer.backward(localSlice(dOut, H, comm, scenario.globalTokens));
    layer.applyAdamW(adamw, step + 1);
  }
  std::vector<float> result = layer.experts().gatherFullParams(comm);
  result.insert(result.end(), layer.gate().begin(), layer.gate().end());
  return result;
}

std::vector<Scenario> laer::test::standardScenarios() {
  auto config = [](std::int64_t H, std::int64_t F, int E, int k, int C) {
    MoELayerConfig c;
    c.shape = {H, F};
    c.numExperts = E;
    c.topK = k;
    c.slotsPerRank = C;
    return c;
  };
  std::vector<Scenario> scenarios;
  // H = 10, F = 13: 390 parameters per expert, padded on 4 ranks.
  scenarios.push_back({"static_round_robin", config(10, 13, 8, 2, 2), 48, 1,
                       PlannerKind::Static});
  scenarios.push_back({"random_layouts_new_each_step", config(16, 24, 8, 2, 3),
                       48, 3, PlannerKind::Random, 11});
  scenarios.push_back({"hot_expert_replicated", config(16, 24, 8, 2, 3), 48, 1,
                       PlannerKind::HotExpert});
  Scenario sigmoid{"sigmoid_no_renormalize_gelu",
                   config(10, 13, 6, 3, 2),
                   48,
                   2,
                   PlannerKind::Random,
                   5};
  sigmoid.config.routing.score = ScoreFunction::Sigmoid;
  sigmoid.config.routing.renormalize = false;
  sigmoid.config.activation = Activation::Gelu;
  scenarios.push_back(sigmoid);
  // DeepSeek-V3 routing: sigmoid scores, selection bias, groups ranked by
  // their two best, renormalised and scaled weights; global-batch aux loss
  // and z-loss entering the gradients.
  Scenario v3{"deepseek_v3_routing_with_losses",
              config(10, 13, 8, 3, 2),
              48,
              2,
              PlannerKind::Random,
              19};
  v3.config.routing = {ScoreFunction::Sigmoid, true, 2.5, 4, 2,
                       GroupScore::TopTwoSum,  true};
  v3.config.losses = {AuxLoss::GlobalBatch, true};
  v3.dAux = 0.7f;
  v3.dZ = 0.3f;
  scenarios.push_back(v3);
  // DeepSeek-V2 routing: softmax, groups ranked by their best, scaled
  // weights without renormalisation; micro-batch aux loss.
  Scenario v2{"deepseek_v2_routing_with_aux_loss",
              config(10, 13, 8, 2, 2),
              48,
              2,
              PlannerKind::LaerPlus,
              23};
  v2.config.routing = {ScoreFunction::Softmax, false, 1.5, 4, 2,
                       GroupScore::Max,        false};
  v2.config.losses = {AuxLoss::MicroBatch, true};
  v2.dAux = 1.3f;
  v2.dZ = 0.2f;
  scenarios.push_back(v2);
  Scenario planned{"laer_plus_planner_with_history",
                   config(16, 24, 8, 2, 3),
                   48,
                   3,
                   PlannerKind::LaerPlus,
                   13};
  planned.config.historyWindow = 2;
  scenarios.push_back(planned);
  Scenario starved{"expert_with_zero_tokens",
                   config(10, 13, 8, 2, 2),
                   48,
                   2,
                   PlannerKind::Random,
                   3};
  starved.starveLastExpert = true;
  starved.dropUnloaded = true;
  scenarios.push_back(starved);
  // Token exchanges in chunks: uneven blocks, and more chunks than some
  // blocks have rows (empty sub-blocks).
  Scenario chunked{"random_layouts_three_chunks",
                   config(16, 24, 8, 2, 3),
                   48,
                   2,
                   PlannerKind::Random,
                   17};
  chunked.config.tokenChunks = 3;
  scenarios.push_back(chunked);
  Scenario manyChunks{"hot_expert_eight_chunks", config(10, 13, 8, 2, 3), 48, 1,
                      PlannerKind::HotExpert};
  manyChunks.config.tokenChunks = 8;
  scenarios.push_back(manyChunks);
  return scenarios;
}
