//===- LatentAttentionKernels.cpp - MLA forward and backward --------------===//

#include "laer/runtime/cpu/LatentAttentionKernels.h"
#include "laer/runtime/Error.h"
#include "laer/runtime/cpu/DenseKernels.h"

#include <algorithm>
#include <cmath>

namespace laer::rt::cpu {

namespace {

/// The sizes of one call, checked against the parameters.
struct MlaLayout {
  std::int64_t T, H, n, dn, dr, dv, dq, S, qRank, kvRank;
  bool lora;
};

void expectSize(const char *what, std::size_t size, std::int64_t expected,
                const char *meaning) {
  if (static_cast<std::int64_t>(size) != expected)
    fail({}, "latent attention: ", what, " has ", size, " elements, expected ",
         expected, " (", meaning, ")");
}

template <typename T>
MlaLayout checkLatentAttention(const LatentAttentionShape &s,
                               std::span<const T> input,
                               const LatentAttentionParams<T> &p) {
  if (s.tokens < 0 || s.hidden < 1 || s.heads < 1 || s.nopeDim < 0 ||
      s.ropeDim < 2 || s.ropeDim % 2 || s.valueDim < 1 ||
      s.sequenceLength < 1 || s.tokens % s.sequenceLength ||
      !(s.softmaxScale > 0) || !(s.epsilon > 0))
    fail({}, "latent attention: inconsistent shape (tokens ", s.tokens,
         ", hidden ", s.hidden, ", heads ", s.heads, ", nope/rope/v sizes ",
         s.nopeDim, "/", s.ropeDim, "/", s.valueDim, ", sequence length ",
         s.sequenceLength, ", softmax scale ", s.softmaxScale, ", epsilon ",
         s.epsilon, "); the rope size must be even and >= 2");
  MlaLayout l;
  l.T = s.tokens;
  l.H = s.hidden;
  l.n = s.heads;
  l.dn = s.nopeDim;
  l.dr = s.ropeDim;
  l.dv = s.valueDim;
  l.dq = s.qkDim();
  l.S = s.sequenceLength;
  l.lora = p.wq.empty();
  l.qRank = static_cast<std::int64_t>(p.qANorm.size());
  l.kvRank = static_cast<std::int64_t>(p.kvANorm.size());
  expectSize("input", input.size(), l.T * l.H, "tokens x hidden");
  if (l.lora) {
    if (l.qRank < 1)
      fail({}, "latent attention: neither wq nor a query LoRA (wqA, qANorm, "
               "wqB) is given");
    expectSize("wqA", p.wqA.size(), l.H * l.qRank, "hidden x q_lora_rank");
    expectSize("wqB", p.wqB.size(), l.qRank * s.qWidth(),
               "q_lora_rank x heads (nope + rope)");
  } else {
    if (!p.wqA.empty() || !p.qANorm.empty() || !p.wqB.empty())
      fail({}, "latent attention: wq and a query LoRA are both given");
    expectSize("wq", p.wq.size(), l.H * s.qWidth(),
               "hidden x heads (nope + rope)");
  }
  if (l.kvRank < 1)
    fail({}, "latent attention: kvANorm is empty (kv_lora_rank 0)");
  expectSize("wkvA", p.wkvA.size(), l.H * (l.kvRank + l.dr),
             "hidden x (kv_lora_rank + rope)");
  expectSize("wkvB", p.wkvB.size(), l.kvRank * s.kvWidth(),
             "kv_lora_rank x heads (nope + v)");
  expectSize("wo", p.wo.size(), l.n * l.dv * l.H, "heads v x hidden");
  return l;
}

RotaryTable rotaryOf(const LatentAttentionShape &s) {
  if (s.yarn)
    return RotaryTable(s.ropeDim, s.ropeTheta, RotaryPairs::Adjacent, *s.yarn);
  return RotaryTable(s.ropeDim, s.ropeTheta, RotaryPairs::Adjacent);
}

CausalAttentionShape coreOf(const MlaLayout &l, double scale) {
  return {l.T, l.S, l.n, l.n, l.dq, l.dv, scale};
}

template <typename T>
void gradSize(const char *what, std::span<const T> param, std::span<T> grad) {
  if (grad.size() != param.size())
    fail({}, "latent attention: the gradient of ", what, " has ", grad.size(),
         " elements, expected ", param.size());
}

} // namespace

template <typename T>
void latentAttentionForward(std::span<const T> input,
                            const LatentAttentionParams<T> &p,
                            const LatentAttentionShape &shape,
                            std::span<T> output,
                            LatentAttentionSaved<T> &saved) {
  MlaLayout l = checkLatentAttention(shape, input, p);
  expectSize("output", output.size(), l.T * l.H, "tokens x hidden");
  const std::int64_t T_ = l.T, H = l.H, qw = shape.qWidth(),
                     kvw = shape.kvWidth(), aw = l.kvRank + l.dr;

  // Queries [T, n dq].
  saved.q.assign(T_ * qw, 0);
  if (l.lora) {
    saved.qA.assign(T_ * l.qRank, 0);
    saved.qAInvRms.assign(T_, 0);
    saved.qANormed.assign(T_ * l.qRank, 0);
    gemmT<T>(false, false, T_, l.qRank, H, 1, input.data(), p.wqA.data(), 0,
             saved.qA.data());
    rmsNormForward<T>(saved.qA, p.qANorm, T_, l.qRank, shape.epsilon,
                      saved.qANormed, saved.qAInvRms);
    gemmT<T>(false, false, T_, qw, l.qRank, 1, saved.qANormed.data(),
             p.wqB.data(), 0, saved.q.data());
  } else {
    saved.qA.clear();
    saved.qAInvRms.clear();
    saved.qANormed.clear();
    gemmT<T>(false, false, T_, qw, H, 1, input.data(), p.wq.data(), 0,
             saved.q.data());
  }

  // The latent and the shared rotary key.
  std::vector<T> compressed(T_ * aw);
  gemmT<T>(false, false, T_, aw, H, 1, input.data(), p.wkvA.data(), 0,
           compressed.data());
  saved.latent.assign(T_ * l.kvRank, 0);
  std::vector<T> keyRope(T_ * l.dr);
  for (std::int64_t t = 0; t < T_; ++t) {
    const T *row = compressed.data() + t * aw;
    std::copy(row, row + l.kvRank, saved.latent.data() + t * l.kvRank);
    std::copy(row + l.kvRank, row + aw, keyRope.data() + t * l.dr);
  }
  saved.latentInvRms.assign(T_, 0);
  saved.latentNormed.assign(T_ * l.kvRank, 0);
  rmsNormForward<T>(saved.latent, p.kvANorm, T_, l.kvRank, shape.epsilon,
                    saved.latentNormed, saved.latentInvRms);
  std::vector<T> kv(T_ * kvw);
  gemmT<T>(false, false, T_, kvw, l.kvRank, 1, saved.latentNormed.data(),
           p.wkvB.data(), 0, kv.data());

  RotaryTable rotary = rotaryOf(shape);
  rotary.rotate<T>(saved.q, qw, l.dn, l.dq, l.n, l.S, false);
  rotary.rotate<T>(keyRope, l.dr, 0, l.dr, 1, l.S, false);

  // Per-head keys (k_nope, then the shared k_pe) and values.
  saved.k.assign(T_ * qw, 0);
  saved.v.assign(T_ * l.n * l.dv, 0);
  for (std::int64_t t = 0; t < T_; ++t)
    for (std::int64_t h = 0; h < l.n; ++h) {
      const T *src = kv.data() + t * kvw + h * (l.dn + l.dv);
      T *k = saved.k.data() + t * qw + h * l.dq;
      std::copy(src, src + l.dn, k);
      std::copy(keyRope.data() + t * l.dr, keyRope.data() + (t + 1) * l.dr,
                k + l.dn);
      std::copy(src + l.dn, src + l.dn + l.dv,
                saved.v.data() + (t * l.n + h) * l.dv);
    }

  saved.probs.assign(l.n * T_ * l.S, 0);
  saved.context.assign(T_ * l.n * l.dv, 0);
  causalAttentionForward<T>(coreOf(l, shape.softmaxScale), saved.q, saved.k,
                            saved.v, saved.probs, saved.context);
  gemmT<T>(false, false, T_, H, l.n * l.dv, 1, saved.context.data(),
           p.wo.data(), 0, output.data());
}

template <typename T>
void latentAttentionBackward(std::span<const T> input,
                             const LatentAttentionParams<T> &p,
                             const LatentAttentionShape &shape,
                             const LatentAttentionSaved<T> &saved,
                             std::span<const T> dOutput, std::span<T> dInput,
                             const LatentAttentionGrads<T> &g) {
  MlaLayout l = checkLatentAttention(shape, input, p);
  const std::int64_t T_ = l.T, H = l.H, qw = shape.qWidth(),
                     kvw = shape.kvWidth(), aw = l.kvRank + l.dr,
                     cw = l.n * l.dv;
  expectSize("dOutput", dOutput.size(), T_ * H, "tokens x hidden");
  expectSize("dInput", dInput.size(), T_ * H, "tokens x hidden");
  gradSize<T>("wq", p.wq, g.wq);
  gradSize<T>("wqA", p.wqA, g.wqA);
  gradSize<T>("qANorm", p.qANorm, g.qANorm);
  gradSize<T>("wqB", p.wqB, g.wqB);
  gradSize<T>("wkvA", p.wkvA, g.wkvA);
  gradSize<T>("kvANorm", p.kvANorm, g.kvANorm);
  gradSize<T>("wkvB", p.wkvB, g.wkvB);
  gradSize<T>("wo", p.wo, g.wo);
  expectSize("saved.q", saved.q.size(), T_ * qw, "the forward's");
  expectSize("saved.k", saved.k.size(), T_ * qw, "the forward's");
  expectSize("saved.v", saved.v.size(), T_ * cw, "the forward's");
  expectSize("saved.probs", saved.probs.size(), l.n * T_ * l.S,
             "the forward's");
  expectSize("saved.context", saved.context.size(), T_ * cw, "the forward's");
  expectSize("saved.latent", saved.latent.size(), T_ * l.kvRank,
             "the forward's");
  expectSize("saved.qA", saved.qA.size(), l.lora ? T_ * l.qRank : 0,
             "the forward's");

  std::vector<T> dContext(T_ * cw);
  gemmT<T>(false, true, T_, cw, H, 1, dOutput.data(), p.wo.data(), 0,
           dContext.data());
  gemmT<T>(true, false, cw, H, T_, 1, saved.context.data(), dOutput.data(), 1,
           g.wo.data());

  std::vector<T> dq(T_ * qw), dk(T_ * qw), dv(T_ * cw);
  causalAttentionBackward<T>(coreOf(l, shape.softmaxScale), saved.q, saved.k,
                             saved.v, saved.probs, dContext, dq, dk, dv);

  // Keys and values back to the latent's projection and the shared k_pe.
  std::vector<T> dkv(T_ * kvw), dKeyRope(T_ * l.dr, 0);
  for (std::int64_t t = 0; t < T_; ++t)
    for (std::int64_t h = 0; h < l.n; ++h) {
      const T *dkh = dk.data() + t * qw + h * l.dq;
      T *dst = dkv.data() + t * kvw + h * (l.dn + l.dv);
      std::copy(dkh, dkh + l.dn, dst);
      const T *dvh = dv.data() + (t * l.n + h) * l.dv;
      std::copy(dvh, dvh + l.dv, dst + l.dn);
      for (std::int64_t x = 0; x < l.dr; ++x)
        dKeyRope[t * l.dr + x] += dkh[l.dn + x];
    }
  RotaryTable rotary = rotaryOf(shape);
  rotary.rotate<T>(dq, qw, l.dn, l.dq, l.n, l.S, true);
  rotary.rotate<T>(dKeyRope, l.dr, 0, l.dr, 1, l.S, true);

  gemmT<T>(true, false, l.kvRank, kvw, T_, 1, saved.latentNormed.data(),
           dkv.data(), 1, g.wkvB.data());
  std::vector<T> dLatentNormed(T_ * l.kvRank), dLatent(T_ * l.kvRank);
  gemmT<T>(false, true, T_, l.kvRank, kvw, 1, dkv.data(), p.wkvB.data(), 0,
           dLatentNormed.data());
  rmsNormBackward<T>(saved.latent, p.kvANorm, saved.latentInvRms, dLatentNormed,
                     T_, l.kvRank, dLatent, g.kvANorm);
  std::vector<T> dCompressed(T_ * aw);
  for (std::int64_t t = 0; t < T_; ++t) {
    T *row = dCompressed.data() + t * aw;
    std::copy(dLatent.data() + t * l.kvRank,
              dLatent.data() + (t + 1) * l.kvRank, row);
    std::copy(dKeyRope.data() + t * l.dr, dKeyRope.data() + (t + 1) * l.dr,
              row + l.kvRank);
  }
  gemmT<T>(true, false, H, aw, T_, 1, input.data(), dCompressed.data(), 1,
           g.wkvA.data());
  gemmT<T>(false, true, T_, H, aw, 1, dCompressed.data(), p.wkvA.data(), 0,
           dInput.data());

  // Queries.
  if (l.lora) {
    gemmT<T>(true, false, l.qRank, qw, T_, 1, saved.qANormed.data(), dq.data(),
             1, g.wqB.data());
    std::vector<T> dqANormed(T_ * l.qRank), dqA(T_ * l.qRank);
    gemmT<T>(false, true, T_, l.qRank, qw, 1, dq.data(), p.wqB.data(), 0,
             dqANormed.data());
    rmsNormBackward<T>(saved.qA, p.qANorm, saved.qAInvRms, dqANormed, T_,
                       l.qRank, dqA, g.qANorm);
    gemmT<T>(true, false, H, l.qRank, T_, 1, input.data(), dqA.data(), 1,
             g.wqA.data());
    gemmT<T>(false, true, T_, H, l.qRank, 1, dqA.data(), p.wqA.data(), 1,
             dInput.data());
  } else {
    gemmT<T>(true, false, H, qw, T_, 1, input.data(), dq.data(), 1,
             g.wq.data());
    gemmT<T>(false, true, T_, H, qw, 1, dq.data(), p.wq.data(), 1,
             dInput.data());
  }
}

#define LAER_INSTANTIATE(T)                                                    \
  template void latentAttentionForward<T>(                                     \
      std::span<const T>, const LatentAttentionParams<T> &,                    \
      const LatentAttentionShape &, std::span<T>, LatentAttentionSaved<T> &);  \
  template void latentAttentionBackward<T>(                                    \
      std::span<const T>, const LatentAttentionParams<T> &,                    \
      const LatentAttentionShape &, const LatentAttentionSaved<T> &,           \
      std::span<const T>, std::span<T>, const LatentAttentionGrads<T> &);

LAER_INSTANTIATE(float)
LAER_INSTANTIATE(double)

} // namespace laer::rt::cpu
