//===- AdamW.h - the optimizer on parameter shards -------------*- C++ -*-===//

#ifndef LAER_RUNTIME_ADAMW_H
#define LAER_RUNTIME_ADAMW_H

#include <span>

namespace laer::rt {

struct AdamWConfig {
  float learningRate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float weightDecay = 0.0f;
};

/// One decoupled-weight-decay Adam step (Loshchilov & Hutter), element-wise,
/// with bias correction; `step` counts from 1. Element-wise, so applying it
/// to each rank's shard equals applying it to the full tensor.
void adamwStep(std::span<float> params, std::span<const float> grads,
               std::span<float> firstMoment, std::span<float> secondMoment,
               const AdamWConfig &config, long step);

} // namespace laer::rt

#endif // LAER_RUNTIME_ADAMW_H
