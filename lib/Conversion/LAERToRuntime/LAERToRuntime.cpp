//===- LAERToRuntime.cpp - a differentiated model to runtime calls --------===//
//
// Builds laer_model_declare and laer_train_step from `@f` / `@f_grad`: every
// tensor becomes a memref (allocated here, freed at the end of the step),
// every dense/moe op a call of the runtime's C ABI.
//
//===----------------------------------------------------------------------===//

#include "StepBuilder.h"

#include "laer/Conversion/Passes.h"
#include "laer/Dialect/Dense/IR/DenseOps.h"
#include "laer/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

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
    return grad.emitError() << kPass << ": expected the loss and one "
                               "gradient per parameter, as laer-autodiff "
                               "builds them";

  WalkResult walk = grad.walk([&](Operation *op) -> WalkResult {
    if (auto layer = dyn_cast<moe::LayerOp>(op)) {
      if (layer.getSharedW1())
        return layer.emitError() << kPass << ": split the shared experts "
                                    "off first (moe-split-shared-experts)";
      for (Value weight : {layer.getGate(), layer.getW1(), layer.getW3(),
                           layer.getW2()})
        if (!isa<BlockArgument>(weight))
          return layer.emitError()
                 << kPass << ": the gate and expert weights must be "
                             "arguments of the function: the runtime owns "
                             "them as FSEP shards";
      if (Value bias = layer.getSelectionBias();
          bias && !isa<BlockArgument>(bias))
        return layer.emitError()
               << kPass << ": the selection bias must be an argument of the "
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
               << kPass << ": moe.layer_grad needs exactly one moe.layer "
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
           << kPass << ": a moe.layer beside MoE layers lowered to fsep ops; "
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

LogicalResult lowerOp(Operation *op, StepBuilder &s, const ModelInfo &info) {
  bool handled = false;
  if (failed(lowerFSEPOp(op, s, info, handled)) || handled)
    return failure(!handled);
  Location loc = op->getLoc();
  OpBuilder &b = s.b;
  auto abi = [&](Value v) { return s.abi(loc, v); };
  auto out = [&](Value result, Value like) {
    return s.abi(loc, [&] {
      s.allocate(loc, result, like);
      return result;
    }());
  };
  auto layerIndex = [&](Operation *moeOp) -> int64_t {
    for (size_t l = 0; l < info.layers.size(); ++l)
      if (info.layers[l].forward == moeOp || info.layers[l].backward == moeOp)
        return static_cast<int64_t>(l);
    return -1;
  };

  if (auto c = dyn_cast<arith::ConstantOp>(op)) {
    // Zero gradients of the state the runtime owns (a selection bias) are
    // only returned, and the runtime ignores them.
    if (cast<ShapedType>(c.getType()).getRank() > 0 &&
        llvm::all_of(c->getUsers(),
                     [](Operation *user) { return isa<func::ReturnOp>(user); }))
      return success();
    auto splat = dyn_cast<SplatElementsAttr>(c.getValue());
    auto type = dyn_cast<RankedTensorType>(c.getType());
    if (!splat || !type || type.getRank() != 0 ||
        !type.getElementType().isF32())
      return op->emitError() << kPass << ": only scalar f32 tensor "
                                         "constants can be lowered";
    Value buffer = s.allocate(loc, c.getResult(), Value());
    Value value = arith::ConstantOp::create(b, loc,
                                            splat.getSplatValue<TypedAttr>());
    memref::StoreOp::create(b, loc, value, buffer);
    return success();
  }
  if (isa<arith::AddFOp, arith::MulFOp>(op)) {
    Value lhs = op->getOperand(0), rhs = op->getOperand(1);
    if (!isa<RankedTensorType>(lhs.getType()))
      return op->emitError() << kPass << ": only tensor arithmetic expected";
    Value result = s.allocate(loc, op->getResult(0), lhs);
    SmallVector<Value, 2> inputs{s.map.lookup(lhs), s.map.lookup(rhs)};
    if (isa<arith::AddFOp>(op))
      linalg::AddOp::create(b, loc, inputs, ValueRange{result});
    else
      linalg::MulOp::create(b, loc, inputs, ValueRange{result});
    return success();
  }
  if (auto e = dyn_cast<dense::EmbeddingOp>(op)) {
    Value o = out(e.getOutput(), e.getIds());
    s.call(loc, "embedding", {s.ctx, abi(e.getTable()), abi(e.getIds()), o});
    return success();
  }
  if (auto e = dyn_cast<dense::EmbeddingGradOp>(op)) {
    Value o = out(e.getDTable(), Value());
    s.call(loc, "embedding_grad", {s.ctx, abi(e.getIds()),
                                   abi(e.getDOutput()), o});
    return success();
  }
  if (auto n = dyn_cast<dense::RMSNormOp>(op)) {
    Value o = out(n.getOutput(), n.getInput());
    s.call(loc, "rms_norm", {s.ctx, abi(n.getInput()), abi(n.getWeight()),
                             s.f64(loc, n.getEpsilon().convertToDouble()),
                             o});
    return success();
  }
  if (auto n = dyn_cast<dense::RMSNormGradOp>(op)) {
    Value dx = out(n.getDInput(), n.getInput());
    Value dw = out(n.getDWeight(), Value());
    s.call(loc, "rms_norm_grad",
           {s.ctx, abi(n.getInput()), abi(n.getWeight()), abi(n.getDOutput()),
            s.f64(loc, n.getEpsilon().convertToDouble()), dx, dw});
    return success();
  }
  // Absent optional operands and results cross the ABI as empty memrefs.
  auto optional = [&](Value v, int64_t rank) {
    return v ? abi(v) : s.empty(loc, rank);
  };
  auto optionalOut = [&](Value result, int64_t rank) {
    return result ? out(result, Value()) : s.empty(loc, rank);
  };
  // What attention and attention_grad pass alike: the input and weights,
  // the optional biases and QK-norm weights, and the scalar attributes.
  auto attentionOperands = [&](auto a) {
    return SmallVector<Value>{
        abi(a.getInput()),      abi(a.getWq()),          abi(a.getWk()),
        abi(a.getWv()),         abi(a.getWo()),          optional(a.getBq(), 1),
        optional(a.getBk(), 1), optional(a.getBv(), 1),
        optional(a.getQNorm(), 1), optional(a.getKNorm(), 1)};
  };
  auto attentionAttributes = [&](auto a) {
    std::optional<APFloat> epsilon = a.getQkNormEpsilon();
    return SmallVector<Value>{
        s.i64(loc, a.getHeads()), s.i64(loc, a.getKvHeads()),
        s.i64(loc, a.getSequenceLength()),
        s.f64(loc, a.getRopeTheta().convertToDouble()),
        s.f64(loc, epsilon ? epsilon->convertToDouble() : 0.0)};
  };
  if (auto a = dyn_cast<dense::AttentionOp>(op)) {
    Value o = out(a.getOutput(), a.getInput());
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, attentionOperands(a));
    llvm::append_range(args, attentionAttributes(a));
    args.push_back(o);
    s.call(loc, "attention", args);
    return success();
  }
  if (auto a = dyn_cast<dense::AttentionGradOp>(op)) {
    Value dx = out(a.getDInput(), a.getInput());
    Value dq = out(a.getDWq(), Value()), dk = out(a.getDWk(), Value()),
          dv = out(a.getDWv(), Value()), dO = out(a.getDWo(), Value());
    // The optional gradients, by the optional operand they belong to.
    SmallVector<Value, 5> dOptional(5);
    auto next = a.getDOptional().begin();
    Value optionalOperands[] = {a.getBq(), a.getBk(), a.getBv(),
                                a.getQNorm(), a.getKNorm()};
    for (auto [i, operand] : llvm::enumerate(optionalOperands))
      if (operand)
        dOptional[i] = *next++;
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, attentionOperands(a));
    args.push_back(abi(a.getDOutput()));
    llvm::append_range(args, attentionAttributes(a));
    llvm::append_range(args, ValueRange{dx, dq, dk, dv, dO});
    for (Value d : dOptional)
      args.push_back(optionalOut(d, 1));
    s.call(loc, "attention_grad", args);
    return success();
  }
  // What latent_attention and its gradient pass alike: the input, the
  // weights (absent query forms as empty memrefs) and the attributes (no
  // YaRN: factor 0).
  auto latentOperands = [&](auto a) {
    return SmallVector<Value>{
        abi(a.getInput()),       optional(a.getWq(), 2),
        optional(a.getWqA(), 2), optional(a.getQANorm(), 1),
        optional(a.getWqB(), 2), abi(a.getWkvA()),
        abi(a.getKvANorm()),     abi(a.getWkvB()),
        abi(a.getWo())};
  };
  auto latentAttributes = [&](auto a) {
    auto number = [](std::optional<APFloat> v) {
      return v ? v->convertToDouble() : 0.0;
    };
    return SmallVector<Value>{
        s.i64(loc, a.getHeads()),
        s.i64(loc, a.getQkNopeHeadDim()),
        s.i64(loc, a.getQkRopeHeadDim()),
        s.i64(loc, a.getVHeadDim()),
        s.i64(loc, a.getSequenceLength()),
        s.f64(loc, a.getRopeTheta().convertToDouble()),
        s.f64(loc, a.getSoftmaxScale().convertToDouble()),
        s.f64(loc, a.getEpsilon().convertToDouble()),
        s.f64(loc, number(a.getYarnFactor())),
        s.i64(loc, a.getYarnOriginalMaxPosition().value_or(0)),
        s.f64(loc, number(a.getYarnBetaFast())),
        s.f64(loc, number(a.getYarnBetaSlow())),
        s.f64(loc, number(a.getYarnAttentionFactor()))};
  };
  if (auto a = dyn_cast<dense::LatentAttentionOp>(op)) {
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, latentOperands(a));
    llvm::append_range(args, latentAttributes(a));
    args.push_back(out(a.getOutput(), a.getInput()));
    s.call(loc, "latent_attention", args);
    return success();
  }
  if (auto a = dyn_cast<dense::LatentAttentionGradOp>(op)) {
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, latentOperands(a));
    args.push_back(abi(a.getDOutput()));
    llvm::append_range(args, latentAttributes(a));
    args.push_back(out(a.getDInput(), a.getInput()));
    // One gradient per parameter slot; absent parameters get empty ones.
    Value parameters[] = {a.getWq(),   a.getWqA(),  a.getQANorm(),
                          a.getWqB(),  a.getWkvA(), a.getKvANorm(),
                          a.getWkvB(), a.getWo()};
    const int64_t ranks[] = {2, 2, 1, 2, 2, 1, 2, 2};
    auto next = a.getDParameters().begin();
    for (auto [parameter, rank] : llvm::zip(parameters, ranks))
      args.push_back(parameter ? out(*next++, Value()) : s.empty(loc, rank));
    s.call(loc, "latent_attention_grad", args);
    return success();
  }
  if (auto l = dyn_cast<dense::LinearOp>(op)) {
    Value o = out(l.getOutput(), l.getInput());
    s.call(loc, "linear",
           {s.ctx, abi(l.getInput()), abi(l.getWeight()),
            s.i64(loc, l.getTransposed() ? 1 : 0), o});
    return success();
  }
  if (auto l = dyn_cast<dense::LinearGradOp>(op)) {
    Value dx = out(l.getDInput(), l.getInput());
    Value dw = out(l.getDWeight(), Value());
    s.call(loc, "linear_grad",
           {s.ctx, abi(l.getInput()), abi(l.getWeight()), abi(l.getDOutput()),
            s.i64(loc, l.getTransposed() ? 1 : 0), dx, dw});
    return success();
  }
  if (auto f = dyn_cast<dense::SwiGluOp>(op)) {
    Value o = out(f.getOutput(), f.getInput());
    s.call(loc, "swiglu", {s.ctx, abi(f.getInput()), abi(f.getW1()),
                           abi(f.getW3()), abi(f.getW2()),
                           optional(f.getGate(), 2), o});
    return success();
  }
  if (auto f = dyn_cast<dense::SwiGluGradOp>(op)) {
    Value dx = out(f.getDInput(), f.getInput());
    Value d1 = out(f.getDW1(), Value()), d3 = out(f.getDW3(), Value()),
          d2 = out(f.getDW2(), Value());
    s.call(loc, "swiglu_grad",
           {s.ctx, abi(f.getInput()), abi(f.getW1()), abi(f.getW3()),
            abi(f.getW2()), optional(f.getGate(), 2), abi(f.getDOutput()), dx,
            d1, d3, d2, optionalOut(f.getDGate(), 2)});
    return success();
  }
  if (auto c = dyn_cast<dense::CrossEntropyOp>(op)) {
    Value o = out(c.getLoss(), Value());
    s.call(loc, "cross_entropy",
           {s.ctx, abi(c.getLogits()), abi(c.getTargets()), o});
    return success();
  }
  if (auto c = dyn_cast<dense::CrossEntropyGradOp>(op)) {
    Value o = out(c.getDLogits(), c.getLogits());
    s.call(loc, "cross_entropy_grad", {s.ctx, abi(c.getLogits()),
                                       abi(c.getTargets()),
                                       abi(c.getDLoss()), o});
    return success();
  }
  if (auto m = dyn_cast<moe::LayerOp>(op)) {
    Value o = out(m.getOutput(), m.getInput());
    Value l = s.i64(loc, layerIndex(op));
    s.call(loc, "moe_forward", {s.ctx, l, abi(m.getInput()), o});
    s.allocateRouterLosses(loc, m.getLosses());
    s.fillRouterLosses(loc, l, m.getLosses(), m.getAuxLoss().has_value());
    return success();
  }
  if (auto m = dyn_cast<moe::LayerGradOp>(op)) {
    for (Value grad : {m.getDGate(), m.getDW1(), m.getDW3(), m.getDW2()})
      for (Operation *user : grad.getUsers())
        if (!isa<func::ReturnOp>(user))
          return m.emitError() << kPass << ": the gate and expert "
                                  "gradients may only be returned (the "
                                  "runtime keeps them as FSEP shards)";
    Value dx = out(m.getDInput(), m.getDOutput());
    Value l = s.i64(loc, layerIndex(op));
    s.setRouterLossGradients(loc, l, m.getDLosses(),
                             m.getAuxLoss().has_value());
    s.call(loc, "moe_backward", {s.ctx, l, abi(m.getDOutput()), dx});
    return success();
  }
  return op->emitError() << kPass << ": '" << op->getName()
                         << "' cannot be lowered to the runtime";
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
      auto twin = module.lookupSymbol<func::FuncOp>(
          (f.getSymName() + "_grad").str());
      if (twin && (entry.empty() || f.getSymName() == entry)) {
        if (forward) {
          f.emitError() << kPass << ": more than one loss function; pick "
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
    auto declare = func::FuncOp::create(b, loc, "laer_model_declare",
                                        b.getFunctionType({ptr}, {}));
    declare->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(declare.addEntryBlock());
      StepBuilder s(module, b, declare.getArgument(0));
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
        SmallVector<Value> args{s.ctx, s.i64(loc, l),
                                s.i64(loc, w1.getDimSize(0)),
                                s.i64(loc, w1.getDimSize(1)),
                                s.i64(loc, w1.getDimSize(2))};
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
        SmallVector<Value> args{s.ctx, s.i64(loc, layer.index),
                                s.i64(loc, bank.getExperts()),
                                s.i64(loc, bank.getHidden()),
                                s.i64(loc, bank.getFfn())};
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
    }

    // laer_train_step(ctx, ids, targets) -> loss.
    auto tokens = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
    auto step = func::FuncOp::create(
        b, loc, "laer_train_step",
        b.getFunctionType({ptr, tokens, tokens}, {b.getF32Type()}));
    step->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    b.setInsertionPointToStart(step.addEntryBlock());
    StepBuilder s(module, b, step.getArgument(0));
    s.map.map(grad.getArgument(0), step.getArgument(1));
    s.map.map(grad.getArgument(1), step.getArgument(2));
    SmallVector<Value> flatParams;
    for (auto [index, param] : llvm::enumerate(info.dense)) {
      Value flat = s.call(loc, "dense_parameter",
                          {s.ctx, s.i64(loc, index)}, {s.dyn1()})
                       ->getResult(0);
      flatParams.push_back(flat);
      ArrayRef<int64_t> shape = param.type.getShape();
      SmallVector<int64_t> strides(shape.size(), 1);
      if (shape.size() == 2)
        strides[0] = shape[1];
      auto type = MemRefType::get(shape, b.getF32Type());
      Value view = memref::ReinterpretCastOp::create(
          b, loc, type, flat, /*offset=*/0, shape, strides);
      s.map.map(grad.getArgument(param.argument), view);
    }
    func::ReturnOp ret;
    for (Operation &op : grad.getBody().front()) {
      if (auto r = dyn_cast<func::ReturnOp>(op)) {
        ret = r;
        break;
      }
      if (failed(lowerOp(&op, s, info)))
        return signalPassFailure();
    }

    // The update: dense gradients averaged and stepped, then MoE layers.
    for (auto [index, param] : llvm::enumerate(info.dense)) {
      Value gradient = s.map.lookup(ret.getOperand(param.argument - 1));
      if (!gradient) {
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
            << kPass << ": this FSEP layer has no fsep.grad_reduce: its "
                        "experts get no gradient";
        return signalPassFailure();
      }
      s.call(loc, "moe_update", {s.ctx, s.i64(loc, layer.index)});
    }
    Value loss = memref::LoadOp::create(b, loc, s.map.lookup(ret.getOperand(0)));
    for (Value buffer : s.allocations)
      memref::DeallocOp::create(b, loc, buffer);
    func::ReturnOp::create(b, loc, loss);

    forward.erase();
    grad.erase();
  }
};

} // namespace
