//===- GroupedGemmTest.cpp - cuBLASLt expert GEMMs against OpenBLAS ------===//

#include "CudaTestSupport.h"

#include "laer/runtime/cpu/Kernels.h"
#include "laer/runtime/cuda/GroupedGemm.h"

using namespace laer::rt;
using namespace laer::rt::cuda;
using namespace laer::test;

namespace {

TEST(GroupedGemm, EveryTransposeAndEmptyExpertsMatchCpu) {
  LAER_REQUIRE_GPU();
  for (Precision precision : {Precision::Float32, Precision::BFloat16}) {
    FreshRandom random;
    SCOPED_TRACE(std::string(name(precision)) + " seed " +
                 std::to_string(random.seed));
    GroupedGemm gemm(precision, precision);
    // Experts with different token counts, one without tokens.
    const std::int64_t rowsPerExpert[] = {37, 0, 128, 5};
    const std::int64_t K = 48, N = 80;
    for (bool transA : {false, true})
      for (bool transB : {false, true}) {
        std::vector<DeviceTensor> as, bs, cs;
        std::vector<std::vector<float>> ha, hb;
        std::vector<GemmProblem> problems;
        for (std::int64_t m : rowsPerExpert) {
          as.emplace_back(m * K, precision);
          bs.emplace_back(K * N, precision);
          cs.emplace_back(m * N, precision);
        }
        for (std::size_t e = 0; e < as.size(); ++e) {
          std::int64_t m = rowsPerExpert[e];
          ha.push_back(as[e].rounded(random.uniform(m * K)));
          hb.push_back(bs[e].rounded(random.uniform(K * N)));
          cs[e].poison();
          problems.push_back({as[e].data(), bs[e].data(), cs[e].data(), m, N, K,
                              transA, transB});
        }
        gemm.run(problems, 1.0f, 0.0f, nullptr);
        synchronize();
        for (std::size_t e = 0; e < as.size(); ++e) {
          std::int64_t m = rowsPerExpert[e];
          if (m == 0)
            continue;
          std::vector<float> want(m * N);
          cpu::gemm(transA, transB, m, N, K, 1.0f, ha[e].data(), hb[e].data(),
                    0.0f, want.data());
          EXPECT_LT(relativeError(cs[e].download(), want), tolerance(precision))
              << "expert " << e << " transA " << transA << " transB " << transB;
        }
      }
    // Three shapes per transpose pair (an empty expert needs none), each
    // planned once.
    EXPECT_EQ(gemm.plannedShapes(), 3u * 4u);
  }
}

TEST(GroupedGemm, AccumulatesWithBetaOne) {
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  GroupedGemm gemm(Precision::BFloat16, Precision::Float32);
  const std::int64_t m = 64, n = 32, k = 96;
  DeviceTensor a(k * m, Precision::BFloat16), b(k * n, Precision::BFloat16);
  std::vector<float> ha = a.rounded(random.uniform(k * m));
  std::vector<float> hb = b.rounded(random.uniform(k * n));
  std::vector<float> c = random.uniform(m * n);
  DeviceBuffer<float> dc(m * n);
  dc.upload(c);
  // A weight gradient: X^T dY accumulated into a float32 buffer.
  GemmProblem p{a.data(), b.data(), dc.data(), m, n, k, true, false};
  gemm.run({&p, 1}, 1.0f, 1.0f, nullptr);
  synchronize();
  cpu::gemm(true, false, m, n, k, 1.0f, ha.data(), hb.data(), 1.0f, c.data());
  EXPECT_LT(relativeError(dc.download(), c), 1e-5);
}

TEST(GroupedGemm, OperandsOffIn256ByteBoundariesGetTheirOwnPlan) {
  // Expert blocks start at any row of a shared buffer; cuBLASLt's
  // heuristic assumes 256-byte operands unless told otherwise.
  LAER_REQUIRE_GPU();
  FreshRandom random;
  SCOPED_TRACE(random.seed);
  GroupedGemm gemm(Precision::BFloat16, Precision::BFloat16);
  const std::int64_t m = 24, n = 40, k = 56, skip = 3; // 3 rows of 112 bytes
  DeviceTensor a((m + skip) * k, Precision::BFloat16),
      b(k * n, Precision::BFloat16), c((m + skip) * n, Precision::BFloat16);
  std::vector<float> ha = a.rounded(random.uniform((m + skip) * k));
  std::vector<float> hb = b.rounded(random.uniform(k * n));
  for (std::int64_t offset : {std::int64_t{0}, skip}) {
    c.poison();
    synchronize();
    auto *aRows = static_cast<std::uint8_t *>(a.data()) + offset * k * 2;
    auto *cRows = static_cast<std::uint8_t *>(c.data()) + offset * n * 2;
    GemmProblem p{aRows, b.data(), cRows, m, n, k};
    gemm.run({&p, 1}, 1.0f, 0.0f, nullptr);
    synchronize();
    std::vector<float> want(m * n);
    cpu::gemm(false, false, m, n, k, 1.0f, ha.data() + offset * k, hb.data(),
              0.0f, want.data());
    std::vector<float> got = c.download();
    got.erase(got.begin(), got.begin() + offset * n);
    got.resize(m * n);
    EXPECT_LT(relativeError(got, want), 1e-2) << "offset " << offset;
  }
  EXPECT_EQ(gemm.plannedShapes(), 2u); // one shape, two alignments
}

TEST(GroupedGemm, ExpertFfnForwardAndBackwardMatchCpu) {
  // One expert's SwiGLU FFN on the GPU (three GEMMs, the activation, and
  // the five GEMMs of backward) against cpu::swigluForward/Backward.
  LAER_REQUIRE_GPU();
  for (Precision precision : {Precision::Float32, Precision::BFloat16}) {
    FreshRandom random;
    SCOPED_TRACE(std::string(name(precision)) + " seed " +
                 std::to_string(random.seed));
    const std::int64_t n = 50, H = 64, F = 96;
    GroupedGemm gemm(precision, precision);
    DeviceTensor x(n * H, precision), w1(H * F, precision),
        w3(H * F, precision), w2(F * H, precision), g(n * F, precision),
        u(n * F, precision), h(n * F, precision), y(n * H, precision),
        dy(n * H, precision), dh(n * F, precision), dg(n * F, precision),
        du(n * F, precision), dx(n * H, precision), dw1(H * F, precision),
        dw3(H * F, precision), dw2(F * H, precision);
    std::vector<float> hx = x.rounded(random.uniform(n * H));
    std::vector<float> h1 = w1.rounded(random.uniform(H * F, 0.2f));
    std::vector<float> h3 = w3.rounded(random.uniform(H * F, 0.2f));
    std::vector<float> h2 = w2.rounded(random.uniform(F * H, 0.2f));
    std::vector<float> hdy = dy.rounded(random.uniform(n * H));
    for (DeviceTensor *out :
         {&g, &u, &h, &y, &dh, &dg, &du, &dx, &dw1, &dw3, &dw2})
      out->poison();
    GemmProblem up[] = {{x.data(), w1.data(), g.data(), n, F, H},
                        {x.data(), w3.data(), u.data(), n, F, H}};
    gemm.run(up, 1.0f, 0.0f, nullptr);
    gatedActivation(g.data(), u.data(), h.data(), precision, n * F,
                    Activation::Silu, nullptr);
    GemmProblem down{h.data(), w2.data(), y.data(), n, H, F};
    gemm.run({&down, 1}, 1.0f, 0.0f, nullptr);
    // Backward: dw2 = h^T dy, dh = dy w2^T, then the activation, then
    // dw1 = x^T dg, dw3 = x^T du, dx = dg w1^T + du w3^T.
    GemmProblem back1[] = {
        {h.data(), dy.data(), dw2.data(), F, H, n, true},
        {dy.data(), w2.data(), dh.data(), n, F, H, false, true}};
    gemm.run(back1, 1.0f, 0.0f, nullptr);
    gatedActivationBackward(g.data(), u.data(), dh.data(), dg.data(), du.data(),
                            precision, n * F, Activation::Silu, nullptr);
    GemmProblem back2[] = {
        {x.data(), dg.data(), dw1.data(), H, F, n, true},
        {x.data(), du.data(), dw3.data(), H, F, n, true},
        {dg.data(), w1.data(), dx.data(), n, H, F, false, true}};
    gemm.run(back2, 1.0f, 0.0f, nullptr);
    GemmProblem back3{du.data(), w3.data(), dx.data(), n, H, F, false, true};
    gemm.run({&back3, 1}, 1.0f, 1.0f, nullptr);
    synchronize();

    std::vector<float> weights;
    for (const auto *part : {&h1, &h3, &h2})
      weights.insert(weights.end(), part->begin(), part->end());
    std::vector<float> wantY(n * H), wantDx(n * H), wantDw(weights.size());
    cpu::SwiGluSaved saved;
    cpu::swigluForward(hx, weights, n, H, F, Activation::Silu, wantY, saved);
    cpu::swigluBackward(hx, weights, saved, hdy, n, H, F, Activation::Silu,
                        wantDx, wantDw);
    double tol = tolerance(precision);
    EXPECT_LT(relativeError(y.download(), wantY), tol);
    EXPECT_LT(relativeError(dx.download(), wantDx), tol);
    std::vector<float> got;
    for (DeviceTensor *part : {&dw1, &dw3, &dw2}) {
      std::vector<float> values = part->download();
      got.insert(got.end(), values.begin(), values.end());
    }
    EXPECT_LT(relativeError(got, wantDw), tol);
  }
}

} // namespace
