//===- MoEDialectTest.cpp - the moe dialect through its C++ API -----------===//
//
// What a frontend (an importer, the Python bindings) does: build a layer
// with the builders, verify it, decompose it with a pass manager.
//
//===----------------------------------------------------------------------===//

#include "laer/Dialect/MoE/IR/MoEOps.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"
#include "laer/InitAll.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace laer::moe;

namespace {

class MoEDialectTest : public ::testing::Test {
protected:
  MoEDialectTest() {
    DialectRegistry registry;
    laer::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// A function computing one moe.layer of the given shape.
  OwningOpRef<ModuleOp> buildLayer(int64_t tokens, int64_t hidden,
                                   int64_t experts, int64_t ffn, int64_t topK,
                                   bool shared) {
    OpBuilder b(&context);
    Location loc = b.getUnknownLoc();
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
    b.setInsertionPointToEnd(module->getBody());
    Type f32 = b.getF32Type();
    auto x = RankedTensorType::get({tokens, hidden}, f32);
    auto gate = RankedTensorType::get({hidden, experts}, f32);
    auto w13 = RankedTensorType::get({experts, hidden, ffn}, f32);
    auto w2 = RankedTensorType::get({experts, ffn, hidden}, f32);
    SmallVector<Type> inputs = {x, gate, w13, w13, w2};
    if (shared) {
      inputs.push_back(RankedTensorType::get({hidden, 2 * ffn}, f32));
      inputs.push_back(RankedTensorType::get({hidden, 2 * ffn}, f32));
      inputs.push_back(RankedTensorType::get({2 * ffn, hidden}, f32));
    }
    auto func =
        func::FuncOp::create(b, loc, "layer", b.getFunctionType(inputs, {x}));
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    auto args = body->getArguments();
    Value none;
    auto layer = LayerOp::create(
        b, loc, x, /*losses=*/TypeRange{}, args[0], args[1], args[2], args[3],
        args[4], shared ? args[5] : none, shared ? args[6] : none,
        shared ? args[7] : none, /*shared_gate=*/none,
        /*selection_bias=*/none, topK, ScoreFunction::Softmax,
        /*renormalize=*/true, Activation::Silu, /*scale=*/nullptr,
        /*groups=*/nullptr, /*top_groups=*/nullptr, /*group_score=*/nullptr,
        /*bias_update_rate=*/nullptr, /*aux_loss=*/nullptr,
        /*z_loss=*/false);
    func::ReturnOp::create(b, loc, layer.getOutput());
    return module;
  }

  template <typename OpTy> static int count(Operation *root) {
    int n = 0;
    root->walk([&](OpTy) { ++n; });
    return n;
  }

  MLIRContext context;
};

TEST_F(MoEDialectTest, BuiltLayerVerifies) {
  OwningOpRef<ModuleOp> module = buildLayer(16, 64, 8, 128, 2, false);
  EXPECT_TRUE(succeeded(verify(*module)));
}

TEST_F(MoEDialectTest, VerifierRejectsTopKAboveExpertCount) {
  OwningOpRef<ModuleOp> module = buildLayer(16, 64, 8, 128, 9, false);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  EXPECT_TRUE(failed(verify(*module)));
  EXPECT_EQ(message, "'moe.layer' op top_k must be in [1, E = 8], got 9");
}

TEST_F(MoEDialectTest, DecomposeProducesTheFourStages) {
  OwningOpRef<ModuleOp> module = buildLayer(16, 64, 8, 128, 2, false);
  PassManager pm(&context);
  pm.addPass(createMoEDecompose());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  EXPECT_EQ(count<LayerOp>(*module), 0);
  EXPECT_EQ(count<RouterOp>(*module), 1);
  EXPECT_EQ(count<DispatchOp>(*module), 1);
  EXPECT_EQ(count<ExpertsOp>(*module), 1);
  EXPECT_EQ(count<CombineOp>(*module), 1);

  RouterOp router;
  module->walk([&](RouterOp op) { router = op; });
  EXPECT_EQ(router.getTopK(), 2);
  EXPECT_TRUE(router.getRenormalize());
  EXPECT_EQ(router.getNumExperts(), 8);
  DispatchOp dispatch;
  module->walk([&](DispatchOp op) { dispatch = op; });
  EXPECT_EQ(cast<RankedTensorType>(dispatch.getRows().getType()).getShape(),
            ArrayRef<int64_t>({32, 64}));
  EXPECT_TRUE(succeeded(verify(*module)));
}

TEST_F(MoEDialectTest, DecomposeAddsSharedExpertsAsOneExtraExpert) {
  OwningOpRef<ModuleOp> module = buildLayer(16, 64, 8, 128, 2, true);
  PassManager pm(&context);
  pm.addPass(createMoEDecompose());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  EXPECT_EQ(count<ExpertsOp>(*module), 2);
  EXPECT_EQ(count<arith::AddFOp>(*module), 1);
  int singleExpert = 0;
  module->walk([&](ExpertsOp op) {
    if (cast<RankedTensorType>(op.getW1().getType()).getDimSize(0) == 1)
      ++singleExpert;
  });
  EXPECT_EQ(singleExpert, 1);
}

TEST_F(MoEDialectTest, ParsedTextRoundTripsThroughPrinter) {
  const char *text = R"mlir(
    func.func @f(%x: tensor<?x32xf32>, %g: tensor<32x4xf32>)
        -> (tensor<?x2xi32>, tensor<?x2xf32>) {
      %i, %w = moe.router %x, %g top_k = 2 score<sigmoid>
          : (tensor<?x32xf32>, tensor<32x4xf32>)
          -> (tensor<?x2xi32>, tensor<?x2xf32>)
      return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  ASSERT_TRUE(module);
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  OwningOpRef<ModuleOp> reparsed =
      parseSourceString<ModuleOp>(printed, &context);
  ASSERT_TRUE(reparsed);
  std::string reprinted;
  llvm::raw_string_ostream os2(reprinted);
  reparsed->print(os2);
  EXPECT_EQ(printed, reprinted);
  EXPECT_NE(printed.find("score<sigmoid>"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("renormalize"), std::string::npos) << printed;
}

} // namespace
