//===- StepBuilder.h - shared state of the runtime lowering ----*- C++ -*-===//
//
// Internal to convert-laer-to-runtime: what the analysis learns about the
// model, the state the conversion patterns share, and the builder they emit
// runtime calls with. The patterns of dense, arith and moe.layer ops live in
// DenseToRuntime.cpp, those of fsep ops and FSEP routers in
// FSEPToRuntime.cpp; LAERToRuntime.cpp drives the conversion.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_LIB_CONVERSION_LAERTORUNTIME_STEPBUILDER_H
#define LAER_LIB_CONVERSION_LAERTORUNTIME_STEPBUILDER_H

#include "laer/Dialect/FSEP/IR/FSEPOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace laer::runtime_lowering {

using namespace mlir;

constexpr const char *kPass = "convert-laer-to-runtime";

/// DenseParam::fanIn of a parameter that starts at zero (biases).
constexpr int64_t kZeroInitialised = -1;

/// A dense parameter: an argument of `@f_grad` the runtime owns.
struct DenseParam {
  unsigned argument;
  RankedTensorType type;
  /// > 0: uniform in +-1/sqrt(fanIn); 0: a norm weight, initialised to one;
  /// kZeroInitialised: zeros.
  int64_t fanIn;
};

/// A MoE layer: its forward op, and the gate/expert arguments it owns.
struct MoELayer {
  moe::LayerOp forward;
  moe::LayerGradOp backward;
};

/// What `@f_grad` says about the model.
/// A MoE layer lowered to fsep ops (convert-moe-to-fsep on the training
/// step): its relayout, router and bank of expert shards.
struct FsepLayer {
  int64_t index;
  fsep::RelayoutOp relayout;
  moe::RouterOp router;
  BlockArgument bank;
  moe::Activation activation = moe::Activation::Silu;
  bool hasGradReduce = false;
};

struct ModelInfo {
  SmallVector<DenseParam> dense;
  SmallVector<MoELayer> layers;
  SmallVector<FsepLayer> fsepLayers;
  /// moe.router of an FSEP layer -> its layer index.
  DenseMap<Operation *, int64_t> routerLayer;
  /// Argument number -> index in `dense` (or -1: ids, targets, MoE-owned).
  SmallVector<int> denseIndex;
  int64_t vocab = 0, sequence = 0;
};

/// What the conversion patterns share while they lower one training step.
struct LoweringState {
  ModuleOp module;
  const ModelInfo &info;
  /// The step function's runtime context argument.
  Value ctx;
  /// Values (of the step as written) an FSEP layer keeps in the runtime
  /// (routing, plans, restored weights, rows, gradient shards): no memref,
  /// no code; the conversion gives them placeholders.
  DenseSet<Value> held;
  /// Transfers whose finish call has been emitted.
  DenseSet<Operation *> waited;
  /// Strings made by StepBuilder::string() so far.
  int strings = 0;
  /// A pattern reported an error (the conversion itself goes on, so that
  /// the error is the only diagnostic).
  bool failed = false;
};

/// Emits runtime calls and buffers with `b` (a conversion's rewriter).
class StepBuilder {
public:
  StepBuilder(LoweringState &state, OpBuilder &builder)
      : module(state.module), b(builder), ctx(state.ctx), state(state) {}

  Type f32() { return b.getF32Type(); }
  MemRefType dyn1() { return MemRefType::get({ShapedType::kDynamic}, f32()); }
  MemRefType dyn2() {
    return MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic}, f32());
  }
  MemRefType tokens() {
    return MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
  }
  Value i64(Location loc, int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
  }
  Value f64(Location loc, double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF64Type(), APFloat(v));
  }

  /// Declares (once) and calls runtime function `name`.
  Operation *call(Location loc, StringRef name, ValueRange args,
                  TypeRange results = {}) {
    std::string symbol = ("laerrt_" + name).str();
    if (!module.lookupSymbol(symbol)) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto decl = func::FuncOp::create(
          b, module.getLoc(), symbol,
          b.getFunctionType(TypeRange(ValueRange(args)), results));
      decl.setPrivate();
      decl->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    }
    return func::CallOp::create(b, loc, symbol, results, args);
  }

  /// `text` as a constant memref<?xi8> (a private global per string).
  Value string(Location loc, StringRef text) {
    auto type =
        MemRefType::get({static_cast<int64_t>(text.size())}, b.getI8Type());
    std::string symbol = "laer_string_" + std::to_string(state.strings++);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto bytes = RankedTensorType::get(type.getShape(), b.getI8Type());
      SmallVector<int8_t> data(text.begin(), text.end());
      memref::GlobalOp::create(
          b, loc, symbol, b.getStringAttr("private"), type,
          DenseElementsAttr::get(bytes, ArrayRef<int8_t>(data)),
          /*constant=*/true, /*alignment=*/nullptr);
    }
    Value global = memref::GetGlobalOp::create(b, loc, type, symbol);
    return memref::CastOp::create(
        b, loc, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()), global);
  }

  /// `memref` cast to the ABI's dynamic type.
  Value abi(Location loc, Value memref) {
    auto type = cast<MemRefType>(memref.getType());
    MemRefType target = type.getElementType().isInteger(32) ? tokens()
                        : type.getRank() == 0               ? type
                        : type.getRank() == 1               ? dyn1()
                                                            : dyn2();
    if (type == target)
      return memref;
    return memref::CastOp::create(b, loc, target, memref);
  }

  /// An empty memref of `rank` (sizes 0) in the ABI's dynamic type: what
  /// an absent optional operand or result crosses the ABI as.
  Value empty(Location loc, int64_t rank) {
    auto type = MemRefType::get(SmallVector<int64_t>(rank, 0), f32());
    Value buffer = memref::AllocaOp::create(b, loc, type);
    return memref::CastOp::create(b, loc, rank == 1 ? dyn1() : dyn2(), buffer);
  }

  /// `memref` in the ABI's type, or (absent) an empty one of `rank`.
  Value abiOrEmpty(Location loc, Value memref, int64_t rank) {
    return memref ? abi(loc, memref) : empty(loc, rank);
  }

  /// A fresh buffer for a value of tensor type `type`, sized like the
  /// memref `like` in its dynamic dims (freed at the end of the step).
  Value allocate(Location loc, Type type, Value like) {
    auto tensor = cast<RankedTensorType>(type);
    auto memrefType =
        MemRefType::get(tensor.getShape(), tensor.getElementType());
    SmallVector<Value> sizes;
    for (int64_t d = 0; d < tensor.getRank(); ++d)
      if (tensor.isDynamicDim(d))
        sizes.push_back(memref::DimOp::create(b, loc, like, d));
    return memref::AllocOp::create(b, loc, memrefType, sizes);
  }

  /// The router losses of MoE layer `layer` (`losses`: 0-d buffers, the aux
  /// loss first when `hasAux`, then the z-loss), filled by the runtime.
  void fillRouterLosses(Location loc, Value layer, ValueRange losses,
                        bool hasAux) {
    for (auto [i, loss] : llvm::enumerate(losses))
      call(loc, i == 0 && hasAux ? "moe_aux_loss" : "moe_z_loss",
           {ctx, layer, abi(loc, loss)});
  }
  /// Hands the gradients of the router losses (0-d buffers) to the runtime
  /// before the layer's backward.
  void setRouterLossGradients(Location loc, Value layer, ValueRange dLosses,
                              bool hasAux) {
    for (auto [i, d] : llvm::enumerate(dLosses))
      call(loc, i == 0 && hasAux ? "moe_aux_loss_grad" : "moe_z_loss_grad",
           {ctx, layer, abi(loc, d)});
  }
  /// The routing arguments of laerrt_declare_moe after the sizes, from a
  /// moe.layer or moe.router: top_k, score, renormalize, scale, groups,
  /// top_groups, group_score, selection bias, bias update rate, aux loss,
  /// z-loss.
  template <typename RoutingOp>
  SmallVector<Value> routingArguments(Location loc, RoutingOp op) {
    std::optional<APFloat> scale = op.getScale();
    std::optional<APFloat> rate = op.getBiasUpdateRate();
    std::optional<moe::AuxLoss> aux = op.getAuxLoss();
    std::optional<moe::GroupScore> groupScore = op.getGroupScore();
    return {i64(loc, op.getTopK()),
            i64(loc, static_cast<int64_t>(op.getScore())),
            i64(loc, op.getRenormalize() ? 1 : 0),
            f64(loc, scale ? scale->convertToDouble() : 1.0),
            i64(loc, static_cast<int64_t>(op.getGroups().value_or(1))),
            i64(loc, static_cast<int64_t>(op.getTopGroups().value_or(1))),
            i64(loc, groupScore ? static_cast<int64_t>(*groupScore) : 0),
            i64(loc, op.getSelectionBias() ? 1 : 0),
            f64(loc, rate ? rate->convertToDouble() : 0.0),
            i64(loc, aux ? static_cast<int64_t>(*aux) : 0),
            i64(loc, op.getZLoss() ? 1 : 0)};
  }

  ModuleOp module;
  OpBuilder &b;
  Value ctx;
  LoweringState &state;
};

/// A value with no code behind it, of `type`: what a value the runtime
/// keeps (or an argument it owns) becomes. Unused ones are erased after
/// the conversion.
inline Value placeholder(OpBuilder &b, Location loc, Type type) {
  return UnrealizedConversionCastOp::create(b, loc, type, ValueRange())
      .getResult(0);
}

/// The base of every pattern of the lowering: the shared state, and a
/// builder of runtime calls on the conversion's rewriter.
template <typename Op> struct RuntimePattern : public OpConversionPattern<Op> {
  RuntimePattern(const TypeConverter &converter, LoweringState &state)
      : OpConversionPattern<Op>(converter, state.module.getContext()),
        state(state) {}

  LogicalResult
  matchAndRewrite(Op op, typename Op::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const final {
    if (!readsHeldValues())
      for (Value operand : op->getOperands())
        if (state.held.contains(operand))
          return refuse(op, rewriter,
                        "uses a value an FSEP layer keeps in the runtime");
    StepBuilder s(state, rewriter);
    return lower(op, adaptor, rewriter, s);
  }
  virtual LogicalResult lower(Op op, typename Op::Adaptor adaptor,
                              ConversionPatternRewriter &rewriter,
                              StepBuilder &s) const = 0;
  /// Ops that take values the runtime keeps (fsep ops) say so.
  virtual bool readsHeldValues() const { return false; }

  /// Reports `message` at `op` and replaces it with placeholders, so that
  /// the conversion ends with this error only.
  LogicalResult refuse(Op op, ConversionPatternRewriter &rewriter,
                       const Twine &message) const {
    op->emitError() << kPass << ": " << message;
    state.failed = true;
    replaceWithPlaceholders(op, rewriter);
    return success();
  }
  /// Replaces every result of `op` with a placeholder of its converted type.
  void replaceWithPlaceholders(Operation *op,
                               ConversionPatternRewriter &rewriter) const {
    SmallVector<Value> values;
    for (Value result : op->getResults())
      values.push_back(
          placeholder(rewriter, op->getLoc(),
                      this->getTypeConverter()->convertType(result.getType())));
    rewriter.replaceOp(op, values);
  }

  LoweringState &state;
};

/// The patterns of dense ops, tensor arith and fused moe.layer /
/// moe.layer_grad.
void populateDenseToRuntimePatterns(const TypeConverter &converter,
                                    RewritePatternSet &patterns,
                                    LoweringState &state);
/// The patterns of fsep ops and the moe.router / moe.router_grad of FSEP
/// layers.
void populateFSEPToRuntimePatterns(const TypeConverter &converter,
                                   RewritePatternSet &patterns,
                                   LoweringState &state);

/// Finds the FSEP layers of `grad` (from its fsep.relayout ops) and checks
/// they have the shape the runtime executes.
LogicalResult analyzeFSEPLayers(func::FuncOp grad, ModelInfo &info);

} // namespace laer::runtime_lowering

#endif // LAER_LIB_CONVERSION_LAERTORUNTIME_STEPBUILDER_H
