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
  // Plain locals and pointers so the loop vectorizes (config fields read
  // through a reference could alias the stores); the arithmetic is the
  // same expression for expression.
  const float beta1 = config.beta1, beta2 = config.beta2,
              learningRate = config.learningRate, epsilon = config.epsilon;
  const float correction1 = 1.0f - std::pow(beta1, static_cast<float>(step));
  const float correction2 = 1.0f - std::pow(beta2, static_cast<float>(step));
  const float decay = 1.0f - learningRate * config.weightDecay;
  float *param = params.data(), *first = firstMoment.data(),
        *second = secondMoment.data();
  const float *grad = grads.data();
  const std::size_t n = params.size();
  for (std::size_t i = 0; i < n; ++i) {
    float g = grad[i];
    float m = first[i] = beta1 * first[i] + (1.0f - beta1) * g;
    float v = second[i] = beta2 * second[i] + (1.0f - beta2) * g * g;
    float update = (m / correction1) / (std::sqrt(v / correction2) + epsilon);
    param[i] = param[i] * decay - learningRate * update;
  }
}
