//===- LAERToRuntime.cpp - a differentiated model to runtime calls --------===//
//
// Builds laer_model_declare and laer_train_step from `@f` / `@f_grad`: the
// analysis of the model, then a DialectConversion of `@f_grad`'s body
// (moved into laer_train_step) in which a type converter makes every tensor
// a memref (allocated by the patterns, freed at the end of the step) and one
// pattern per op (DenseToRuntime.cpp, FSEPToRuntime.cpp) makes it calls of
// the runtime's C ABI; then the optimizer update.
//
//===----------------------------------------------------------------------===//

#include "StepBuilder.h"

#include "laer/Conversion/Passes.h"
#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/DialectConversion.h"

namespace laer {
#define GEN_PASS_DEF_CONVERTLAERTORUNTIME
#include "laer/Conversion/Passes.h.inc"
} // namespace laer

using namespace mlir;
using namespace laer;
using namespace laer::runtime_lowering;

namespace {

bool isMoEOwned(func::FuncOp f, unsigned argument, const ModelInfo &info) {
  Value arg = f.getArgument(argument);
  for (const MoELayer &layer : info.layers) {
    moe::LayerOp op = layer.forward;
    if (arg == op.getGate() || arg == op.getW1() || arg == op.getW3() ||
        arg == op.getW2() || arg == op.getSelectionBias())
      return true;
  }
  for (FsepLayer layer : info.fsepLayers)
    if (arg == layer.bank || arg == layer.router.getGate() ||
        arg == layer.router.getSelectionBias())
      return true;
  return false;
}

LogicalResult analyze(func::FuncOp grad, ModelInfo &info) {
  FunctionType type = grad.getFunctionType();
  auto isTokens = [](Type t) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    return tensor && tensor.getRank() == 1 &&
           tensor.getElementType().isInteger(32);
  };
  if (type.getNumInputs() < 2 || !isTokens(type.getInput(0)) ||
      !isTokens(type.getInput(1)))
    return grad.emitError() << kPass
                            << ": the first two arguments must be the token "
                               "ids and targets (tensor<?xi32>)";
  if (type.getNumResults() != type.getNumInputs() - 1)
    return grad.emitError() << kPass
                            << ": expected the loss and one "
                               "gradient per parameter, as laer-autodiff "
                               "builds them";

  WalkResult walk = grad.walk([&](Operation *op) -> WalkResult {
    if (auto layer = dyn_cast<moe::LayerOp>(op)) {
      if (layer.getSharedW1())
        return layer.emitError() << kPass
                                 << ": split the shared experts "
                                    "off first (moe-split-shared-experts)";
      for (Value weight :
           {layer.getGate(), layer.getW1(), layer.getW3(), layer.getW2()})
        if (!isa<BlockArgument>(weight))
          return layer.emitError()
                 << kPass
                 << ": the gate and expert weights must be "
                    "arguments of the function: the runtime owns "
                    "them as FSEP shards";
      if (Value bias = layer.getSelectionBias();
          bias && !isa<BlockArgument>(bias))
        return layer.emitError()
               << kPass
               << ": the selection bias must be an argument of the "
                  "function: the runtime keeps and updates it";
      info.layers.push_back({layer, {}});
    }
    if (auto backward = dyn_cast<moe::LayerGradOp>(op)) {
      MoELayer *match = nullptr;
      for (MoELayer &layer : info.layers) {
        moe::LayerOp f = layer.forward;
        if (f.getInput() == backward.getInput() &&
            f.getGate() == backward.getGate() &&
            f.getW1() == backward.getW1() && f.getW3() == backward.getW3() &&
            f.getW2() == backward.getW2())
          match = &layer;
      }
      if (!match || match->backward)
        return backward.emitError()
               << kPass
               << ": moe.layer_grad needs exactly one moe.layer "
                  "with the same operands before it (the runtime "
                  "differentiates the layer's last forward)";
      match->backward = backward;
    }
    if (isa<dense::AttentionOp, dense::LatentAttentionOp>(op)) {
      int64_t length =
          cast<IntegerAttr>(op->getAttr("sequence_length")).getInt();
      if (info.sequence && info.sequence != length)
        return op->emitError()
               << kPass << ": sequence_length " << length
               << " differs from an earlier attention's " << info.sequence;
      info.sequence = length;
    }
    if (auto embedding = dyn_cast<dense::EmbeddingOp>(op))
      info.vocab =
          cast<RankedTensorType>(embedding.getTable().getType()).getDimSize(0);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted() || failed(analyzeFSEPLayers(grad, info)))
    return failure();
  if (info.layers.empty() && info.fsepLayers.empty())
    return grad.emitError() << kPass << ": the model has no moe.layer";
  if (!info.layers.empty() && !info.fsepLayers.empty())
    return info.layers.front().forward.emitError()
           << kPass
           << ": a moe.layer beside MoE layers lowered to fsep ops; "
              "convert all of them with convert-moe-to-fsep";
  if (!info.vocab || !info.sequence)
    return grad.emitError() << kPass
                            << ": the model needs a dense.embedding "
                               "(vocabulary) and a dense.attention or "
                               "dense.latent_attention (sequence length)";

  info.denseIndex.assign(type.getNumInputs(), -1);
  for (unsigned i = 2; i < type.getNumInputs(); ++i) {
    if (isMoEOwned(grad, i, info))
      continue;
    Value arg = grad.getArgument(i);
    auto tensor = dyn_cast<RankedTensorType>(arg.getType());
    if (!tensor || !tensor.hasStaticShape() || tensor.getRank() < 1 ||
        tensor.getRank() > 2 || !tensor.getElementType().isF32())
      return emitError(arg.getLoc())
             << kPass << ": dense parameter " << i
             << " must be a static f32 tensor of rank 1 or 2, got "
             << arg.getType();
    // Embedding tables are read by row ([V, H]: fan-in H); norm weights
    // start at one; every other matrix maps its rows ([in, out]).
    int64_t fanIn = tensor.getDimSize(0);
    bool normOnly = true;
    bool bias = false;
    for (Operation *user : arg.getUsers()) {
      if (isa<dense::EmbeddingOp>(user))
        fanIn = tensor.getDimSize(1);
      bool norm = (isa<dense::RMSNormOp>(user) &&
                   cast<dense::RMSNormOp>(user).getWeight() == arg) ||
                  (isa<dense::RMSNormGradOp>(user) &&
                   cast<dense::RMSNormGradOp>(user).getWeight() == arg);
      normOnly &= norm;
      if (auto attention = dyn_cast<dense::AttentionOp>(user))
        bias |= arg == attention.getBq() || arg == attention.getBk() ||
                arg == attention.getBv();
    }
    if (normOnly || tensor.getRank() == 1)
      fanIn = 0;
    // Attention biases start at zero, like nn.Linear's in the HF models.
    if (bias)
      fanIn = kZeroInitialised;
    info.denseIndex[i] = static_cast<int>(info.dense.size());
    info.dense.push_back({i, tensor, fanIn});
  }
  return success();
}

/// Tells the runtime a parameter's name (laerrt_name_dense / _name_moe):
/// `index` is the dense parameter's or the MoE layer's, `part` (MoE only)
/// which of the layer's tensors.
void nameParameter(StepBuilder &s, Location loc, StringRef function,
                   Value index, Value part, moe::ParameterAttr name) {
  SmallVector<Value> args{s.ctx, index};
  if (part)
    args.push_back(part);
  args.append({s.i64(loc, name.getTransposed() ? 1 : 0),
               s.string(loc, name.getName())});
  s.call(loc, function, args);
}

/// Names MoE layer `layer`'s tensors that are named arguments: `parts` are
/// the gate, w1, w3, w2 and the selection bias (absent ones null).
void nameMoEParameters(StepBuilder &s, Location loc, int64_t layer,
                       ArrayRef<Value> parts) {
  for (auto [part, value] : llvm::enumerate(parts)) {
    auto arg = dyn_cast_or_null<BlockArgument>(value);
    if (!arg)
      continue;
    auto f = cast<func::FuncOp>(arg.getOwner()->getParentOp());
    if (auto name = f.getArgAttrOfType<moe::ParameterAttr>(
            arg.getArgNumber(), moe::MoEDialect::kParameterAttrName))
      nameParameter(s, loc, "name_moe", s.i64(loc, layer), s.i64(loc, part),
                    name);
  }
}

struct ConvertLAERToRuntimePass
    : laer::impl::ConvertLAERToRuntimeBase<ConvertLAERToRuntimePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp forward, grad;
    for (auto f : module.getOps<func::FuncOp>()) {
      if (f.isExternal())
        continue;
      auto twin =
          module.lookupSymbol<func::FuncOp>((f.getSymName() + "_grad").str());
      if (twin && (entry.empty() || f.getSymName() == entry)) {
        if (forward) {
          f.emitError() << kPass
                        << ": more than one loss function; pick "
                           "one with entry=";
          return signalPassFailure();
        }
        forward = f;
        grad = twin;
      }
    }
    if (!grad) {
      module.emitError() << kPass << ": no loss function '"
                         << (entry.empty() ? "@f" : "@" + entry)
                         << "' with a differentiated twin (run "
                            "laer-autodiff first)";
      return signalPassFailure();
    }
    ModelInfo info;
    if (failed(analyze(grad, info)))
      return signalPassFailure();

    OpBuilder b(module.getContext());
    b.setInsertionPointToEnd(module.getBody());
    Location loc = grad.getLoc();
    auto ptr = LLVM::LLVMPointerType::get(module.getContext());

    // laer_model_declare(ctx).
    int strings = 0; // string globals made so far (unique names)
    auto declare = func::FuncOp::create(b, loc, "laer_model_declare",
                                        b.getFunctionType({ptr}, {}));
    declare->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(declare.addEntryBlock());
      LoweringState declaring{module, info, declare.getArgument(0), {}, {},
                              0,      false};
      StepBuilder s(declaring, b);
      s.call(loc, "declare_model",
             {s.ctx, s.i64(loc, info.vocab), s.i64(loc, info.sequence)});
      for (auto [index, param] : llvm::enumerate(info.dense)) {
        ArrayRef<int64_t> shape = param.type.getShape();
        s.call(loc, "declare_dense",
               {s.ctx, s.i64(loc, index), s.i64(loc, shape[0]),
                s.i64(loc, shape.size() > 1 ? shape[1] : 0),
                s.i64(loc, param.fanIn)});
        if (auto name = grad.getArgAttrOfType<moe::ParameterAttr>(
                param.argument, moe::MoEDialect::kParameterAttrName))
          nameParameter(s, loc, "name_dense", s.i64(loc, index), {}, name);
      }
      for (auto [l, layer] : llvm::enumerate(info.layers)) {
        moe::LayerOp op = layer.forward;
        auto w1 = cast<RankedTensorType>(op.getW1().getType());
        SmallVector<Value> args{
            s.ctx, s.i64(loc, l), s.i64(loc, w1.getDimSize(0)),
            s.i64(loc, w1.getDimSize(1)), s.i64(loc, w1.getDimSize(2))};
        llvm::append_range(args, s.routingArguments(loc, op));
        args.append({s.i64(loc, static_cast<int64_t>(op.getActivation())),
                     s.i64(loc, 0), s.i64(loc, 0)});
        s.call(op.getLoc(), "declare_moe", args);
        nameMoEParameters(s, loc, l,
                          {op.getGate(), op.getW1(), op.getW3(), op.getW2(),
                           op.getSelectionBias()});
      }
      for (FsepLayer layer : info.fsepLayers) {
        fsep::ExpertsType bank = cast<fsep::ExpertsType>(layer.bank.getType());
        fsep::PlanType plan = layer.relayout.getType();
        moe::RouterOp router = layer.router;
        SmallVector<Value> args{
            s.ctx, s.i64(loc, layer.index), s.i64(loc, bank.getExperts()),
            s.i64(loc, bank.getHidden()), s.i64(loc, bank.getFfn())};
        llvm::append_range(args, s.routingArguments(loc, router));
        args.append({s.i64(loc, static_cast<int64_t>(layer.activation)),
                     s.i64(loc, plan.getRanks()), s.i64(loc, plan.getSlots())});
        s.call(layer.relayout.getLoc(), "declare_moe", args);
        nameMoEParameters(s, loc, layer.index,
                          {router.getGate(), Value(), Value(), Value(),
                           router.getSelectionBias()});
        if (auto names = grad.getArgAttrOfType<ArrayAttr>(
                layer.bank.getArgNumber(), moe::MoEDialect::kParameterAttrName))
          for (auto [part, name] : llvm::enumerate(names))
            nameParameter(s, loc, "name_moe", s.i64(loc, layer.index),
                          s.i64(loc, part + 1), cast<moe::ParameterAttr>(name));
      }
      func::ReturnOp::create(b, loc);
      strings = declaring.strings;
    }

    // laer_train_step(ctx, ids, targets) -> loss: @f_grad's body moved in,
    // its arguments replaced by the token memrefs and the runtime's views
    // of the dense parameters (the MoE layers' weights, which the runtime
    // owns, by placeholders), then every op converted to runtime calls.
    auto tokens = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
    auto step = func::FuncOp::create(
        b, loc, "laer_train_step",
        b.getFunctionType({ptr, tokens, tokens}, {b.getF32Type()}));
    step->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    Block *body = step.addEntryBlock();
    b.setInsertionPointToStart(body);
    LoweringState state{module,  info, step.getArgument(0), {}, {},
                        strings, false};
    StepBuilder s(state, b);
    auto asTensor = [&](Value memref, Type type) {
      return UnrealizedConversionCastOp::create(b, loc, type, memref)
          .getResult(0);
    };
    SmallVector<Value> args(grad.getNumArguments());
    args[0] = asTensor(step.getArgument(1), grad.getArgument(0).getType());
    args[1] = asTensor(step.getArgument(2), grad.getArgument(1).getType());
    SmallVector<Value> flatParams;
    for (auto [index, param] : llvm::enumerate(info.dense)) {
      Value flat =
          s.call(loc, "dense_parameter", {s.ctx, s.i64(loc, index)}, {s.dyn1()})
              ->getResult(0);
      flatParams.push_back(flat);
      ArrayRef<int64_t> shape = param.type.getShape();
      SmallVector<int64_t> strides(shape.size(), 1);
      if (shape.size() == 2)
        strides[0] = shape[1];
      auto type = MemRefType::get(shape, b.getF32Type());
      Value view = memref::ReinterpretCastOp::create(
          b, loc, type, flat, /*offset=*/0, shape, strides);
      args[param.argument] = asTensor(view, param.type);
    }
    for (auto [i, arg] : llvm::enumerate(args))
      if (!arg)
        arg = placeholder(b, loc, grad.getArgument(i).getType());
    Block &gradBody = grad.getBody().front();
    for (auto [arg, value] : llvm::zip(gradBody.getArguments(), args))
      arg.replaceAllUsesWith(value);
    body->getOperations().splice(body->end(), gradBody.getOperations());

    TypeConverter converter;
    converter.addConversion([](Type type) { return type; });
    converter.addConversion([](RankedTensorType type) -> Type {
      return MemRefType::get(type.getShape(), type.getElementType());
    });
    auto materialize = [](OpBuilder &builder, Type type, ValueRange inputs,
                          Location at) -> Value {
      return UnrealizedConversionCastOp::create(builder, at, type, inputs)
          .getResult(0);
    };
    converter.addSourceMaterialization(materialize);
    converter.addTargetMaterialization(materialize);
    ConversionTarget target(getContext());
    target.addLegalDialect<memref::MemRefDialect, linalg::LinalgDialect,
                           LLVM::LLVMDialect>();
    target.addLegalOp<func::FuncOp, func::CallOp, UnrealizedConversionCastOp>();
    target.addIllegalDialect<dense::DenseDialect, moe::MoEDialect,
                             fsep::FSEPDialect>();
    auto noTensors = [](Operation *op) {
      auto isTensor = [](Type t) { return isa<RankedTensorType>(t); };
      return llvm::none_of(op->getOperandTypes(), isTensor) &&
             llvm::none_of(op->getResultTypes(), isTensor);
    };
    target.addDynamicallyLegalDialect<arith::ArithDialect>(noTensors);
    target.addDynamicallyLegalOp<func::ReturnOp>(noTensors);
    RewritePatternSet patterns(&getContext());
    populateDenseToRuntimePatterns(converter, patterns, state);
    populateFSEPToRuntimePatterns(converter, patterns, state);
    populateReturnOpTypeConversionPattern(patterns, converter);
    if (failed(applyPartialConversion(step, target, std::move(patterns))) ||
        state.failed)
      return signalPassFailure();

    // The update: dense gradients averaged and stepped, then MoE layers.
    auto ret = cast<func::ReturnOp>(body->getTerminator());
    b.setInsertionPoint(ret);
    // The buffer behind a returned value (through a materialization).
    auto buffer = [](Value v) {
      if (auto c = v.getDefiningOp<UnrealizedConversionCastOp>();
          c && c.getInputs().size() == 1)
        return c.getInputs()[0];
      return v;
    };
    auto isPlaceholder = [](Value v) {
      auto c = v.getDefiningOp<UnrealizedConversionCastOp>();
      return c && c.getInputs().empty();
    };
    for (auto [index, param] : llvm::enumerate(info.dense)) {
      Value gradient = buffer(ret.getOperand(param.argument - 1));
      if (isPlaceholder(gradient) || !isa<MemRefType>(gradient.getType())) {
        emitError(grad.getArgument(param.argument).getLoc())
            << kPass << ": dense parameter " << param.argument
            << " does not reach the loss";
        return signalPassFailure();
      }
      auto type = cast<MemRefType>(gradient.getType());
      if (type.getRank() == 2)
        gradient = memref::CollapseShapeOp::create(
            b, loc, gradient, ArrayRef<ReassociationIndices>{{0, 1}});
      gradient = memref::CastOp::create(b, loc, s.dyn1(), gradient);
      s.call(loc, "allreduce_mean", {s.ctx, gradient});
      s.call(loc, "adamw",
             {s.ctx, s.i64(loc, index), flatParams[index], gradient});
    }
    for (size_t l = 0; l < info.layers.size(); ++l) {
      if (!info.layers[l].backward) {
        info.layers[l].forward.emitError()
            << kPass << ": this MoE layer has no gradient in the loss";
        return signalPassFailure();
      }
      s.call(loc, "moe_update", {s.ctx, s.i64(loc, l)});
    }
    for (FsepLayer layer : info.fsepLayers) {
      if (!layer.hasGradReduce) {
        layer.relayout.emitError()
            << kPass
            << ": this FSEP layer has no fsep.grad_reduce: its "
               "experts get no gradient";
        return signalPassFailure();
      }
      s.call(loc, "moe_update", {s.ctx, s.i64(loc, layer.index)});
    }
    Value loss = memref::LoadOp::create(b, loc, buffer(ret.getOperand(0)));
    // Every buffer of the step is freed before it returns.
    SmallVector<Value> allocations;
    step.walk([&](memref::AllocOp alloc) { allocations.push_back(alloc); });
    for (Value allocation : allocations)
      memref::DeallocOp::create(b, loc, allocation);
    func::ReturnOp::create(b, loc, loss);
    ret.erase();
    // Placeholders and casts nothing reads any more.
    SmallVector<UnrealizedConversionCastOp> casts;
    step.walk([&](UnrealizedConversionCastOp c) { casts.push_back(c); });
    for (UnrealizedConversionCastOp c : llvm::reverse(casts))
      if (c->use_empty())
        c.erase();
    // A placeholder still read means compiled code would read memory the
    // runtime owns (an MoE layer's weights used by a dense op).
    WalkResult owned = step.walk([&](UnrealizedConversionCastOp c) {
      if (!c.getInputs().empty())
        return WalkResult::advance();
      for (Operation *user : c->getUsers())
        if (!isa<UnrealizedConversionCastOp>(user)) {
          user->emitError()
              << kPass
              << ": reads a value the runtime keeps (an MoE "
                 "layer's gate, experts or routing): give the dense "
                 "code its own parameter";
          return WalkResult::interrupt();
        }
      return WalkResult::advance();
    });
    if (owned.wasInterrupted())
      return signalPassFailure();
    casts.clear();
    step.walk([&](UnrealizedConversionCastOp c) { casts.push_back(c); });
    reconcileUnrealizedCasts(casts);

    forward.erase();
    grad.erase();
  }
};

} // namespace
