//===- ValidationScenarios.cpp - bad plans and shards, any backend --------===//

#include "ValidationScenarios.h"
#include "FsepScenarios.h"

#include "laer/runtime/fsep/FsepMoELayer.h"

#include <algorithm>

using namespace laer;
using namespace laer::rt;
using namespace laer::test;

namespace {

/// Wraps the round-robin plan and breaks it in one way.
class BrokenHook : public RelayoutHook {
public:
  BrokenHook(BadInput kind, int rank) : kind_(kind), rank_(rank) {}
  std::string name() const override { return "broken"; }
  Plan plan(const PlanRequest &request) override {
    Plan plan = StaticRoundRobinHook().plan(request);
    int N = request.numRanks, C = request.slotsPerRank;
    std::vector<int> slots = plan.layout.slots();
    switch (kind_) {
    case BadInput::ExpertWithoutReplica:
      // Expert 3 is routed (tokens chosen uniformly) but loses its slots.
      for (int &expert : slots)
        if (expert == 3)
          expert = Layout::kEmpty;
      plan.layout = Layout(N, C, request.numExperts, slots);
      plan.routing = Routing::evenSplit(plan.layout, request.counts);
      break;
    case BadInput::RoutingDoesNotAddUp:
      plan.routing.add(N - 1, plan.layout.replicasOf(1)[0], 1);
      break;
    case BadInput::RankDependentPlan:
      if (rank_ == N - 1 && N > 1)
        std::swap(slots[0], slots[slots.size() - 1]);
      plan.layout = Layout(N, C, request.numExperts, slots);
      plan.routing = Routing::evenSplit(plan.layout, request.counts);
      break;
    case BadInput::WrongShardSize:
      break;
    }
    return plan;
  }

private:
  BadInput kind_;
  int rank_;
};

} // namespace

std::string laer::test::runBadInput(Communicator &comm, BadInput kind) {
  MoELayerConfig config;
  config.shape = {8, 12};
  config.numExperts = 4;
  config.topK = 2;
  config.slotsPerRank = std::max(2, (4 + comm.size() - 1) / comm.size());
  FsepMoELayer layer(comm, config, /*layerIndex=*/3);
  layer.initialize(/*seed=*/5, 0.2f, 0.5f);
  try {
    if (kind == BadInput::WrongShardSize) {
      std::vector<float> shard(layer.experts().shardSize() + 1, 0.0f);
      layer.experts().loadShard(2, shard, {comm.rank(), 3, -1});
      return "";
    }
    // 64 tokens over 4 experts: every expert is routed on every rank.
    std::vector<float> x(64 * 8);
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = 2.0f * uniformAt(9, comm.rank(), i) - 1.0f;
    BrokenHook hook(kind, comm.rank());
    layer.forward(x, /*step=*/12, hook);
  } catch (const RuntimeError &error) {
    return error.what();
  }
  return "";
}
