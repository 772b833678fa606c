//===- AdamW.cpp - the optimizer on parameter shards ----------------------===//

#include "laer/runtime/AdamW.h"
#include "laer/runtime/Error.h"

#include <cmath>

void laer::rt::adamwStep(std::span<float> params, std::span<const float> grads,
                         std::span<float> firstMoment,
                         std::span<float> secondMoment,
                         const AdamWConfig &config, long step) {
  if (grads.size() != params.size() || firstMoment.size() != params.size() ||
      secondMoment.size() != params.size())
    fail({}, "AdamW: ", params.size(), " parameters but ", grads.size(),
         " gradients and ", firstMoment.size(), "/", secondMoment.size(),
         " moments");
  if (step < 1)
    fail({}, "AdamW: step counts from 1, got ", step);
  float correction1 = 1.0f - std::pow(config.beta1, static_cast<float>(step));
  float correction2 = 1.0f - std::pow(config.beta2, static_cast<float>(step));
  float decay = 1.0f - config.learningRate * config.weightDecay;
  for (std::size_t i = 0; i < params.size(); ++i) {
    float g = grads[i];
    float m = firstMoment[i] = config.beta1 * firstMoment[i] +
                               (1.0f - config.beta1) * g;
    float v = secondMoment[i] = config.beta2 * secondMoment[i] +
                                (1.0f - config.beta2) * g * g;
    float update =
        (m / correction1) / (std::sqrt(v / correction2) + config.epsilon);
    params[i] = params[i] * decay - config.learningRate * update;
  }
}
