//===- consumer.cpp - a program built against the installed laer ---------===//
//
// One FSEP MoE layer step planned by laer+, on one and on two in-process
// ranks from the same weights and tokens: the two ranks' outputs are the
// one rank's rows. Prints "consumer: PASS" when they agree.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Planner.h"
#include "laer/runtime/comm/InProcessCommunicator.h"
#include "laer/runtime/fsep/FsepMoELayer.h"

#include <cmath>
#include <cstdio>
#include <vector>

using namespace laer;

namespace {

constexpr std::int64_t kHidden = 16, kTokens = 24;

std::vector<float> step(int ranks, const std::vector<float> &tokens) {
  rt::MoELayerConfig config;
  config.shape = {kHidden, 32};
  config.numExperts = 4;
  config.topK = 2;
  config.slotsPerRank = 4;
  std::vector<float> out(tokens.size());
  rt::InProcessGroup::run(ranks, [&](rt::Communicator &comm) {
    rt::FsepMoELayer layer(comm, config, 0);
    layer.initialize(/*seed=*/5, 0.2f, 0.5f);
    planner::LayerSpec spec;
    spec.hidden = kHidden;
    spec.ffn = 32;
    spec.numExperts = 4;
    spec.topK = 2;
    spec.slotsPerRank = 4;
    planner::PlannerHook hook(planner::makePlanner("laer+"),
                              planner::ClusterSpec::cpuNode(ranks), spec);
    std::size_t rows = tokens.size() / ranks;
    std::size_t first = rows * comm.rank();
    std::vector<float> mine(tokens.begin() + first,
                            tokens.begin() + first + rows);
    std::vector<float> y = layer.forward(mine, /*step=*/0, hook);
    std::copy(y.begin(), y.end(), out.begin() + first);
  });
  return out;
}

} // namespace

int main() {
  std::vector<float> tokens(kTokens * kHidden);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<float> one = step(1, tokens), two = step(2, tokens);
  double worst = 0, norm = 0;
  for (std::size_t i = 0; i < one.size(); ++i) {
    worst = std::max(worst, std::abs(double(one[i]) - two[i]));
    norm = std::max(norm, std::abs(double(one[i])));
  }
  if (!(norm > 0) || worst > 1e-5 * norm) {
    std::printf("consumer: FAIL: 1 vs 2 ranks differ by %g (max |y| %g)\n",
                worst, norm);
    return 1;
  }
  std::printf("consumer: PASS (max |y| %.3f, 1 vs 2 ranks %.1e)\n", norm,
              worst);
  return 0;
}
