//===- LoadGenerator.h - random skewed loads for planner tests --*- C++ -*-===//

#ifndef LAER_TEST_LOADGENERATOR_H
#define LAER_TEST_LOADGENERATOR_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace laer::test {

/// counts[source * E + e] for N sources routing `tokensPerRank` pairs each,
/// experts drawn from a Zipf(skew) popularity over a random permutation;
/// each source perturbs the popularity a little (sources differ).
inline std::vector<std::int64_t> skewedCounts(std::mt19937_64 &rng, int N,
                                              int E, std::int64_t tokensPerRank,
                                              double skew) {
  std::vector<int> perm(E);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<double> popularity(E);
  for (int i = 0; i < E; ++i)
    popularity[perm[i]] = 1.0 / std::pow(i + 1.0, skew);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(N) * E, 0);
  std::uniform_real_distribution<double> jitter(0.7, 1.3);
  for (int source = 0; source < N; ++source) {
    std::vector<double> weights(E);
    for (int e = 0; e < E; ++e)
      weights[e] = popularity[e] * jitter(rng);
    std::discrete_distribution<int> pickExpert(weights.begin(), weights.end());
    for (std::int64_t t = 0; t < tokensPerRank; ++t)
      ++counts[static_cast<std::size_t>(source) * E + pickExpert(rng)];
  }
  return counts;
}

} // namespace laer::test

#endif // LAER_TEST_LOADGENERATOR_H
