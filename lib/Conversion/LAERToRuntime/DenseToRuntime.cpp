//===- DenseToRuntime.cpp - dense and moe.layer ops to runtime calls ------===//
//
// One conversion pattern per op: each allocates its results' buffers
// (sized like an operand), casts its operands to the ABI's dynamic memref
// types and calls its laerrt_* function; tensor adds and products become
// linalg ops, scalar constants stores. Absent optional operands and results
// cross the ABI as empty memrefs.
//
//===----------------------------------------------------------------------===//

#include "StepBuilder.h"

#include "laer/Dialect/Dense/IR/DenseOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;
using namespace laer;
using namespace laer::runtime_lowering;

namespace {

/// The buffer of each result of `op`, sized like `like` (a converted
/// operand, or null for fully static results).
SmallVector<Value> allocateResults(StepBuilder &s, Operation *op,
                                   ArrayRef<Value> likes) {
  SmallVector<Value> buffers;
  for (auto [result, like] : llvm::zip(op->getResults(), likes))
    buffers.push_back(s.allocate(op->getLoc(), result.getType(), like));
  return buffers;
}

struct ConstantLowering : RuntimePattern<arith::ConstantOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(arith::ConstantOp c, OpAdaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    // Zero gradients of the state the runtime owns (a selection bias) are
    // only returned, and the runtime ignores them.
    if (cast<ShapedType>(c.getType()).getRank() > 0 &&
        llvm::all_of(c->getUsers(), [](Operation *user) {
          return isa<func::ReturnOp>(user);
        })) {
      replaceWithPlaceholders(c, rewriter);
      return success();
    }
    auto splat = dyn_cast<SplatElementsAttr>(c.getValue());
    auto type = dyn_cast<RankedTensorType>(c.getType());
    if (!splat || !type || type.getRank() != 0 ||
        !type.getElementType().isF32())
      return refuse(c, rewriter,
                    "only scalar f32 tensor constants can be lowered");
    Location loc = c.getLoc();
    Value buffer = s.allocate(loc, type, Value());
    Value value = arith::ConstantOp::create(rewriter, loc,
                                            splat.getSplatValue<TypedAttr>());
    memref::StoreOp::create(rewriter, loc, value, buffer);
    rewriter.replaceOp(c, buffer);
    return success();
  }
};

/// arith.addf / arith.mulf of tensors as linalg.add / linalg.mul; an
/// addition of values the runtime keeps (chunks' shares of one FSEP value)
/// is the runtime's to sum and stays a placeholder.
template <typename Op, typename LinalgOp>
struct ElementwiseLowering : RuntimePattern<Op> {
  using RuntimePattern<Op>::RuntimePattern;
  bool readsHeldValues() const override { return true; }
  LogicalResult lower(Op op, typename Op::Adaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    bool lhs = this->state.held.contains(op.getLhs()),
         rhs = this->state.held.contains(op.getRhs());
    if (lhs != rhs)
      return this->refuse(op, rewriter,
                          "adds a value an FSEP layer keeps in the runtime "
                          "to a computed tensor");
    if (lhs) {
      this->state.held.insert(op.getResult());
      this->replaceWithPlaceholders(op, rewriter);
      return success();
    }
    Value result = s.allocate(op.getLoc(), op.getType(), adaptor.getLhs());
    LinalgOp::create(rewriter, op.getLoc(),
                     ValueRange{adaptor.getLhs(), adaptor.getRhs()},
                     ValueRange{result});
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct EmbeddingLowering : RuntimePattern<dense::EmbeddingOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::EmbeddingOp e, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = e.getLoc();
    Value o = s.allocate(loc, e.getType(), a.getIds());
    s.call(loc, "embedding",
           {s.ctx, s.abi(loc, a.getTable()), s.abi(loc, a.getIds()),
            s.abi(loc, o)});
    rewriter.replaceOp(e, o);
    return success();
  }
};

struct EmbeddingGradLowering : RuntimePattern<dense::EmbeddingGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::EmbeddingGradOp e, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = e.getLoc();
    Value o = s.allocate(loc, e.getType(), Value());
    s.call(loc, "embedding_grad",
           {s.ctx, s.abi(loc, a.getIds()), s.abi(loc, a.getDOutput()),
            s.abi(loc, o)});
    rewriter.replaceOp(e, o);
    return success();
  }
};

struct RMSNormLowering : RuntimePattern<dense::RMSNormOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::RMSNormOp n, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = n.getLoc();
    Value o = s.allocate(loc, n.getType(), a.getInput());
    s.call(loc, "rms_norm",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getWeight()),
            s.f64(loc, n.getEpsilon().convertToDouble()), s.abi(loc, o)});
    rewriter.replaceOp(n, o);
    return success();
  }
};

struct RMSNormGradLowering : RuntimePattern<dense::RMSNormGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::RMSNormGradOp n, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = n.getLoc();
    SmallVector<Value> out = allocateResults(s, n, {a.getInput(), Value()});
    s.call(loc, "rms_norm_grad",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getWeight()),
            s.abi(loc, a.getDOutput()),
            s.f64(loc, n.getEpsilon().convertToDouble()), s.abi(loc, out[0]),
            s.abi(loc, out[1])});
    rewriter.replaceOp(n, out);
    return success();
  }
};

/// What attention and attention_grad pass alike: the input and weights,
/// the optional biases and QK-norm weights (absent: empty), the attributes.
template <typename Adaptor>
SmallVector<Value> attentionArguments(StepBuilder &s, Location loc,
                                      Adaptor adaptor) {
  return {s.abi(loc, adaptor.getInput()),
          s.abi(loc, adaptor.getWq()),
          s.abi(loc, adaptor.getWk()),
          s.abi(loc, adaptor.getWv()),
          s.abi(loc, adaptor.getWo()),
          s.abiOrEmpty(loc, adaptor.getBq(), 1),
          s.abiOrEmpty(loc, adaptor.getBk(), 1),
          s.abiOrEmpty(loc, adaptor.getBv(), 1),
          s.abiOrEmpty(loc, adaptor.getQNorm(), 1),
          s.abiOrEmpty(loc, adaptor.getKNorm(), 1)};
}
template <typename Op>
SmallVector<Value> attentionAttributes(StepBuilder &s, Location loc, Op a) {
  std::optional<APFloat> epsilon = a.getQkNormEpsilon();
  return {s.i64(loc, a.getHeads()), s.i64(loc, a.getKvHeads()),
          s.i64(loc, a.getSequenceLength()),
          s.f64(loc, a.getRopeTheta().convertToDouble()),
          s.f64(loc, epsilon ? epsilon->convertToDouble() : 0.0)};
}

struct AttentionLowering : RuntimePattern<dense::AttentionOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::AttentionOp a, OpAdaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = a.getLoc();
    Value o = s.allocate(loc, a.getType(), adaptor.getInput());
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, attentionArguments(s, loc, adaptor));
    llvm::append_range(args, attentionAttributes(s, loc, a));
    args.push_back(s.abi(loc, o));
    s.call(loc, "attention", args);
    rewriter.replaceOp(a, o);
    return success();
  }
};

struct AttentionGradLowering : RuntimePattern<dense::AttentionGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::AttentionGradOp a, OpAdaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = a.getLoc();
    SmallVector<Value> out;
    out.push_back(s.allocate(loc, a.getDInput().getType(), adaptor.getInput()));
    for (Value grad : a->getResults().drop_front())
      out.push_back(s.allocate(loc, grad.getType(), Value()));
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, attentionArguments(s, loc, adaptor));
    args.push_back(s.abi(loc, adaptor.getDOutput()));
    llvm::append_range(args, attentionAttributes(s, loc, a));
    for (Value buffer : ArrayRef<Value>(out).take_front(5))
      args.push_back(s.abi(loc, buffer));
    // The optional gradients, by the optional operand they belong to.
    auto next = out.begin() + 5;
    for (Value operand :
         {a.getBq(), a.getBk(), a.getBv(), a.getQNorm(), a.getKNorm()})
      args.push_back(s.abiOrEmpty(loc, operand ? *next++ : Value(), 1));
    s.call(loc, "attention_grad", args);
    rewriter.replaceOp(a, out);
    return success();
  }
};

/// What latent_attention and its gradient pass alike: the input, the
/// weights (the absent query form as empty memrefs) and the attributes (no
/// YaRN: factor 0).
template <typename Adaptor>
SmallVector<Value> latentArguments(StepBuilder &s, Location loc, Adaptor a) {
  return {s.abi(loc, a.getInput()),
          s.abiOrEmpty(loc, a.getWq(), 2),
          s.abiOrEmpty(loc, a.getWqA(), 2),
          s.abiOrEmpty(loc, a.getQANorm(), 1),
          s.abiOrEmpty(loc, a.getWqB(), 2),
          s.abi(loc, a.getWkvA()),
          s.abi(loc, a.getKvANorm()),
          s.abi(loc, a.getWkvB()),
          s.abi(loc, a.getWo())};
}
template <typename Op>
SmallVector<Value> latentAttributes(StepBuilder &s, Location loc, Op a) {
  auto number = [](std::optional<APFloat> v) {
    return v ? v->convertToDouble() : 0.0;
  };
  return {s.i64(loc, a.getHeads()),
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
}

struct LatentAttentionLowering : RuntimePattern<dense::LatentAttentionOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::LatentAttentionOp a, OpAdaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = a.getLoc();
    Value o = s.allocate(loc, a.getType(), adaptor.getInput());
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, latentArguments(s, loc, adaptor));
    llvm::append_range(args, latentAttributes(s, loc, a));
    args.push_back(s.abi(loc, o));
    s.call(loc, "latent_attention", args);
    rewriter.replaceOp(a, o);
    return success();
  }
};

struct LatentAttentionGradLowering
    : RuntimePattern<dense::LatentAttentionGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::LatentAttentionGradOp a, OpAdaptor adaptor,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = a.getLoc();
    SmallVector<Value> out;
    out.push_back(s.allocate(loc, a.getDInput().getType(), adaptor.getInput()));
    for (Value grad : a.getDParameters())
      out.push_back(s.allocate(loc, grad.getType(), Value()));
    SmallVector<Value> args{s.ctx};
    llvm::append_range(args, latentArguments(s, loc, adaptor));
    args.push_back(s.abi(loc, adaptor.getDOutput()));
    llvm::append_range(args, latentAttributes(s, loc, a));
    args.push_back(s.abi(loc, out[0]));
    // One gradient per parameter slot; absent parameters get empty ones.
    Value parameters[] = {a.getWq(),   a.getWqA(),  a.getQANorm(),
                          a.getWqB(),  a.getWkvA(), a.getKvANorm(),
                          a.getWkvB(), a.getWo()};
    const int64_t ranks[] = {2, 2, 1, 2, 2, 1, 2, 2};
    auto next = out.begin() + 1;
    for (auto [parameter, rank] : llvm::zip(parameters, ranks))
      args.push_back(s.abiOrEmpty(loc, parameter ? *next++ : Value(), rank));
    s.call(loc, "latent_attention_grad", args);
    rewriter.replaceOp(a, out);
    return success();
  }
};

struct LinearLowering : RuntimePattern<dense::LinearOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::LinearOp l, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = l.getLoc();
    Value o = s.allocate(loc, l.getType(), a.getInput());
    s.call(loc, "linear",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getWeight()),
            s.i64(loc, l.getTransposed() ? 1 : 0), s.abi(loc, o)});
    rewriter.replaceOp(l, o);
    return success();
  }
};

struct LinearGradLowering : RuntimePattern<dense::LinearGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::LinearGradOp l, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = l.getLoc();
    SmallVector<Value> out = allocateResults(s, l, {a.getInput(), Value()});
    s.call(loc, "linear_grad",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getWeight()),
            s.abi(loc, a.getDOutput()), s.i64(loc, l.getTransposed() ? 1 : 0),
            s.abi(loc, out[0]), s.abi(loc, out[1])});
    rewriter.replaceOp(l, out);
    return success();
  }
};

struct SwiGluLowering : RuntimePattern<dense::SwiGluOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::SwiGluOp f, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = f.getLoc();
    Value o = s.allocate(loc, f.getType(), a.getInput());
    s.call(loc, "swiglu",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getW1()),
            s.abi(loc, a.getW3()), s.abi(loc, a.getW2()),
            s.abiOrEmpty(loc, a.getGate(), 2), s.abi(loc, o)});
    rewriter.replaceOp(f, o);
    return success();
  }
};

struct SwiGluGradLowering : RuntimePattern<dense::SwiGluGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::SwiGluGradOp f, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = f.getLoc();
    SmallVector<Value> out = allocateResults(
        s, f, {a.getInput(), Value(), Value(), Value(), Value()});
    s.call(loc, "swiglu_grad",
           {s.ctx, s.abi(loc, a.getInput()), s.abi(loc, a.getW1()),
            s.abi(loc, a.getW3()), s.abi(loc, a.getW2()),
            s.abiOrEmpty(loc, a.getGate(), 2), s.abi(loc, a.getDOutput()),
            s.abi(loc, out[0]), s.abi(loc, out[1]), s.abi(loc, out[2]),
            s.abi(loc, out[3]),
            s.abiOrEmpty(loc, f.getDGate() ? out[4] : Value(), 2)});
    rewriter.replaceOp(f, out);
    return success();
  }
};

struct CrossEntropyLowering : RuntimePattern<dense::CrossEntropyOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::CrossEntropyOp c, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = c.getLoc();
    Value o = s.allocate(loc, c.getType(), Value());
    s.call(loc, "cross_entropy",
           {s.ctx, s.abi(loc, a.getLogits()), s.abi(loc, a.getTargets()),
            s.abi(loc, o)});
    rewriter.replaceOp(c, o);
    return success();
  }
};

struct CrossEntropyGradLowering : RuntimePattern<dense::CrossEntropyGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(dense::CrossEntropyGradOp c, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = c.getLoc();
    Value o = s.allocate(loc, c.getType(), a.getLogits());
    s.call(loc, "cross_entropy_grad",
           {s.ctx, s.abi(loc, a.getLogits()), s.abi(loc, a.getTargets()),
            s.abi(loc, a.getDLoss()), s.abi(loc, o)});
    rewriter.replaceOp(c, o);
    return success();
  }
};

/// The index of the fused MoE layer `op` is the forward or backward of.
int64_t layerIndex(const ModelInfo &info, Operation *op) {
  for (size_t l = 0; l < info.layers.size(); ++l)
    if (info.layers[l].forward == op || info.layers[l].backward == op)
      return static_cast<int64_t>(l);
  return -1;
}

struct MoELayerLowering : RuntimePattern<moe::LayerOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(moe::LayerOp m, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    Location loc = m.getLoc();
    SmallVector<Value> out{
        s.allocate(loc, m.getOutput().getType(), a.getInput())};
    for (Value loss : m.getLosses())
      out.push_back(s.allocate(loc, loss.getType(), Value()));
    Value l = s.i64(loc, layerIndex(state.info, m));
    s.call(loc, "moe_forward",
           {s.ctx, l, s.abi(loc, a.getInput()), s.abi(loc, out[0])});
    s.fillRouterLosses(loc, l, ArrayRef<Value>(out).drop_front(),
                       m.getAuxLoss().has_value());
    rewriter.replaceOp(m, out);
    return success();
  }
};

struct MoELayerGradLowering : RuntimePattern<moe::LayerGradOp> {
  using RuntimePattern::RuntimePattern;
  LogicalResult lower(moe::LayerGradOp m, OpAdaptor a,
                      ConversionPatternRewriter &rewriter,
                      StepBuilder &s) const override {
    for (Value grad : {m.getDGate(), m.getDW1(), m.getDW3(), m.getDW2()})
      for (Operation *user : grad.getUsers())
        if (!isa<func::ReturnOp>(user))
          return refuse(m, rewriter,
                        "the gate and expert gradients may only be returned "
                        "(the runtime keeps them as FSEP shards)");
    Location loc = m.getLoc();
    Value dx = s.allocate(loc, m.getDInput().getType(), a.getDOutput());
    Value l = s.i64(loc, layerIndex(state.info, m));
    s.setRouterLossGradients(loc, l, a.getDLosses(),
                             m.getAuxLoss().has_value());
    s.call(loc, "moe_backward",
           {s.ctx, l, s.abi(loc, a.getDOutput()), s.abi(loc, dx)});
    // The gate and expert gradients stay in the runtime.
    SmallVector<Value> results{dx};
    for (Value grad : m->getResults().drop_front())
      results.push_back(placeholder(
          rewriter, loc, getTypeConverter()->convertType(grad.getType())));
    rewriter.replaceOp(m, results);
    return success();
  }
};

} // namespace

void laer::runtime_lowering::populateDenseToRuntimePatterns(
    const TypeConverter &converter, RewritePatternSet &patterns,
    LoweringState &state) {
  patterns
      .add<ConstantLowering, ElementwiseLowering<arith::AddFOp, linalg::AddOp>,
           ElementwiseLowering<arith::MulFOp, linalg::MulOp>, EmbeddingLowering,
           EmbeddingGradLowering, RMSNormLowering, RMSNormGradLowering,
           AttentionLowering, AttentionGradLowering, LatentAttentionLowering,
           LatentAttentionGradLowering, LinearLowering, LinearGradLowering,
           SwiGluLowering, SwiGluGradLowering, CrossEntropyLowering,
           CrossEntropyGradLowering, MoELayerLowering, MoELayerGradLowering>(
          converter, state);
}
