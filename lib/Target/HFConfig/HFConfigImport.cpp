//===- HFConfigImport.cpp - Hugging Face config.json to model IR ----------===//
//
// Three steps: read the config into a `Model` (every field checked against
// what HF transformers' modelling code does with it), write the model IR as
// MLIR text with readable argument names, then parse and verify that text
// with laer's dialects. The first error stops the import; its message names
// the field and its value.
//
//===----------------------------------------------------------------------===//

#include "laer/Target/HFConfigImport.h"
#include "laer/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;
namespace json = llvm::json;

namespace {

//===----------------------------------------------------------------------===//
// Formatting
//===----------------------------------------------------------------------===//

Error fail(const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.str());
}

/// The shortest `%.Ne` (N >= 1) spelling of `value` that reads back as the
/// same double: `1.0e-05`, `1.0e+06`, `1.25e-06`. MLIR's parser takes it and
/// the F64 attribute holds exactly `value`.
std::string formatFloat(double value) {
  char buffer[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*e", precision, value);
    if (std::strtod(buffer, nullptr) == value)
      break;
  }
  return buffer;
}

/// A JSON value as a message shows it: numbers without noise (0.02, not
/// 0.020000000000000000416), strings quoted.
std::string show(const json::Value &value) {
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return *value.getAsBoolean() ? "true" : "false";
  case json::Value::Number: {
    if (std::optional<int64_t> integer = value.getAsInteger())
      return llvm::itostr(*integer);
    double number = *value.getAsNumber();
    char buffer[64];
    for (int precision = 1; precision <= 17; ++precision) {
      std::snprintf(buffer, sizeof(buffer), "%.*g", precision, number);
      if (std::strtod(buffer, nullptr) == number)
        break;
    }
    return buffer;
  }
  default:
    return llvm::formatv("{0}", value).str();
  }
}

std::string showNumber(double number) { return show(json::Value(number)); }

/// `tensor<2x3xf32>`.
std::string tensorType(std::initializer_list<int64_t> dims) {
  std::string text = "tensor<";
  for (int64_t dim : dims)
    text += llvm::itostr(dim) + "x";
  return text + "f32>";
}

//===----------------------------------------------------------------------===//
// The model
//===----------------------------------------------------------------------===//

enum class Family {
  Mixtral,
  Qwen2Moe,
  Qwen3Moe,
  Olmoe,
  DeepseekV2,
  DeepseekV3
};

enum class QKNorm { None, PerHead, WholeProjection };

/// What the IR needs, after every check and the scale-down options.
struct Model {
  std::string modelType;
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kvHeads = 0,
          headDim = 0, sequenceLength = 0;
  double epsilon = 0, ropeTheta = 0;
  bool qkvBias = false;
  /// The LM head is the embedding table (tie_word_embeddings).
  bool tiedEmbeddings = false;
  QKNorm qkNorm = QKNorm::None;
  // Routed experts (MoE layers).
  int64_t experts = 0, topK = 0, expertWidth = 0;
  bool renormalize = false;
  // Shared expert (0: none) and its sigmoid gate.
  int64_t sharedWidth = 0;
  bool sharedGate = false;
  // Dense SwiGLU layers.
  int64_t denseWidth = 0;
  /// Per emitted layer: MoE (true) or dense MLP.
  std::vector<bool> moeLayer;
  /// HF's router_aux_loss_coef and router_z_loss_coef where HF applies
  /// them (0: not applied).
  double auxLossCoef = 0, zLossCoef = 0;
  /// DeepSeek: auxLossCoef multiplies each layer's loss as it is (not
  /// k / MoE layers), the sequence-wise form with seq_aux.
  bool auxPerLayer = false, sequenceAux = false;

  // DeepSeek's multi-head latent attention (MLA): query LoRA rank (0: none),
  // latent rank, per-head sizes, the softmax scale and YaRN.
  bool latentAttention = false;
  int64_t qLoraRank = 0, kvLoraRank = 0, nopeDim = 0, ropeDim = 0, valueDim = 0;
  double softmaxScale = 0;
  struct Yarn {
    double factor = 1;
    int64_t originalMaxPosition = 0;
    double betaFast = 32, betaSlow = 1, attentionFactor = 1;
    /// mscale_all_dim (0: the softmax scale stays qk_head_dim^-0.5).
    double mscaleAllDim = 0;
  };
  std::optional<Yarn> yarn;
  // DeepSeek's routing: sigmoid scores, routed_scaling_factor, group-limited
  // top-k, e_score_correction_bias and its update rate.
  bool sigmoidScores = false;
  double routedScale = 1.0;
  int64_t groups = 0, topGroups = 0;
  bool groupTopTwoSum = false;
  bool selectionBias = false;
  double biasUpdateRate = 0;

  bool anyMoE() const { return llvm::is_contained(moeLayer, true); }
  bool anyDense() const { return llvm::is_contained(moeLayer, false); }
};

//===----------------------------------------------------------------------===//
// Which fields each family knows
//===----------------------------------------------------------------------===//

/// Fields that never change the model's math (bookkeeping, generation and
/// serving settings, token ids).
constexpr StringRef kMetadataFields[] = {
    "_attn_implementation", "_name_or_path",
    "architectures",        "auto_map",
    "bos_token_id",         "dtype",
    "eos_token_id",         "id2label",
    "initializer_range",    "label2id",
    "model_type",           "output_attentions",
    "output_hidden_states", "pad_token_id",
    "return_dict",          "tokenizer_class",
    "torch_dtype",          "transformers_version",
    "use_bfloat16",         "use_cache",
};

/// Fields every supported family maps or checks.
constexpr StringRef kCommonFields[] = {
    "attention_dropout",
    "head_dim",
    "hidden_act",
    "hidden_size",
    "max_position_embeddings",
    "num_attention_heads",
    "num_experts_per_tok",
    "num_hidden_layers",
    "num_key_value_heads",
    "output_router_logits",
    "rms_norm_eps",
    "rope_parameters",
    "rope_scaling",
    "rope_theta",
    "router_aux_loss_coef",
    "tie_word_embeddings",
    "vocab_size",
};

llvm::ArrayRef<StringRef> familyFields(Family family) {
  // DeepSeek-V2's and V3's config classes (with the fields the checkpoints'
  // own configuration_deepseek.py adds).
  static constexpr StringRef deepseek[] = {
      "attention_bias",
      "aux_loss_alpha",
      "ep_size",
      "first_k_dense_replace",
      "intermediate_size",
      "kv_lora_rank",
      "moe_intermediate_size",
      "moe_layer_freq",
      "n_group",
      "n_routed_experts",
      "n_shared_experts",
      "norm_topk_prob",
      "num_nextn_predict_layers",
      "pretraining_tp",
      "q_lora_rank",
      "qk_nope_head_dim",
      "qk_rope_head_dim",
      "quantization_config",
      "rope_interleave",
      "routed_scaling_factor",
      "scoring_func",
      "seq_aux",
      "topk_group",
      "topk_method",
      "v_head_dim",
  };
  static constexpr StringRef mixtral[] = {
      "attention_bias",    "intermediate_size",   "num_experts",
      "num_local_experts", "router_jitter_noise", "sliding_window",
  };
  static constexpr StringRef qwen2Moe[] = {
      "decoder_sparse_step",
      "intermediate_size",
      "layer_types",
      "max_window_layers",
      "mlp_only_layers",
      "moe_intermediate_size",
      "norm_topk_prob",
      "num_experts",
      "num_local_experts",
      "qkv_bias",
      "shared_expert_intermediate_size",
      "sliding_window",
      "use_sliding_window",
  };
  static constexpr StringRef qwen3Moe[] = {
      "attention_bias",    "decoder_sparse_step", "intermediate_size",
      "max_window_layers", "mlp_only_layers",     "moe_intermediate_size",
      "norm_topk_prob",    "num_experts",         "num_local_experts",
      "sliding_window",    "use_sliding_window",
  };
  static constexpr StringRef olmoe[] = {
      "attention_bias",     "clip_qkv",       "intermediate_size",
      "norm_topk_prob",     "num_experts",    "num_local_experts",
      "router_z_loss_coef", "sliding_window",
  };
  switch (family) {
  case Family::Mixtral:
    return mixtral;
  case Family::Qwen2Moe:
    return qwen2Moe;
  case Family::Qwen3Moe:
    return qwen3Moe;
  case Family::Olmoe:
    return olmoe;
  case Family::DeepseekV2:
  case Family::DeepseekV3:
    return deepseek;
  }
  llvm_unreachable("family");
}

/// HF's defaults where a config leaves a field out.
struct FamilyDefaults {
  double epsilon, ropeTheta, auxLossCoef;
  int64_t maxPositions;
};

FamilyDefaults familyDefaults(Family family) {
  switch (family) {
  case Family::Mixtral:
    return {1e-5, 1e6, 0.001, 4096 * 32};
  case Family::Qwen2Moe:
    return {1e-6, 10000.0, 0.001, 32768};
  case Family::Qwen3Moe:
    return {1e-6, 10000.0, 0.001, 32768};
  case Family::Olmoe:
    return {1e-5, 10000.0, 0.01, 4096};
  case Family::DeepseekV2:
    return {1e-6, 10000.0, 0.0, 2048};
  case Family::DeepseekV3:
    return {1e-6, 10000.0, 0.0, 4096};
  }
  llvm_unreachable("family");
}

//===----------------------------------------------------------------------===//
// Typed field access; absent and null read alike
//===----------------------------------------------------------------------===//

class Config {
public:
  Config(const json::Object &object, StringRef modelType)
      : object(object), modelType(modelType) {}

  const json::Value *get(StringRef name) const {
    const json::Value *value = object.get(name);
    if (value && value->kind() == json::Value::Null)
      return nullptr;
    return value;
  }
  bool has(StringRef name) const { return get(name) != nullptr; }

  Error refuse(StringRef name, const json::Value &value,
               const Twine &why) const {
    return fail("field '" + name + "' = " + show(value) + ": " + why);
  }
  Error missing(StringRef name, StringRef why = "") const {
    std::string message = "field '" + name.str() + "' is missing (model_type " +
                          modelType + " needs it)";
    if (!why.empty())
      message += ": " + why.str();
    return fail(message);
  }

  Expected<std::optional<int64_t>> integer(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::optional<int64_t>();
    std::optional<double> number = value->getAsNumber();
    std::optional<int64_t> integer = value->getAsInteger();
    if (!number || !integer)
      return refuse(name, *value, "expected an integer");
    if (std::fabs(*number) >= 0x1p62)
      return refuse(name, *value, "too large");
    return integer;
  }
  Expected<int64_t> integer(StringRef name, int64_t fallback) const {
    Expected<std::optional<int64_t>> value = integer(name);
    if (!value)
      return value.takeError();
    return value->value_or(fallback);
  }
  /// A required integer > 0 (>= 0 with `allowZero`).
  Expected<int64_t> size(StringRef name, bool allowZero = false) const {
    Expected<std::optional<int64_t>> value = integer(name);
    if (!value)
      return value.takeError();
    if (!*value)
      return missing(name);
    if (**value < 0 || (**value == 0 && !allowZero))
      return refuse(name, *get(name),
                    allowZero ? "must not be negative" : "must be positive");
    return **value;
  }

  Expected<std::optional<double>> number(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::optional<double>();
    std::optional<double> number = value->getAsNumber();
    if (!number || !std::isfinite(*number))
      return refuse(name, *value, "expected a number");
    return number;
  }
  Expected<double> number(StringRef name, double fallback) const {
    Expected<std::optional<double>> value = number(name);
    if (!value)
      return value.takeError();
    return value->value_or(fallback);
  }

  Expected<bool> boolean(StringRef name, bool fallback) const {
    const json::Value *value = get(name);
    if (!value)
      return fallback;
    std::optional<bool> flag = value->getAsBoolean();
    if (!flag)
      return refuse(name, *value, "expected true or false");
    return *flag;
  }

  Expected<std::optional<StringRef>> string(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::optional<StringRef>();
    std::optional<StringRef> text = value->getAsString();
    if (!text)
      return refuse(name, *value, "expected a string");
    return text;
  }

  const json::Object &object;
  std::string modelType;
};

/// Propagates an llvm::Error out of a function that returns Error.
#define LAER_TRY(var, expr)                                                    \
  auto var##OrErr = (expr);                                                    \
  if (!var##OrErr)                                                             \
    return var##OrErr.takeError();                                             \
  auto var = std::move(*var##OrErr)

//===----------------------------------------------------------------------===//
// Reading the config
//===----------------------------------------------------------------------===//

class Importer {
public:
  Importer(const Config &config, Family family,
           const laer::HFImportOptions &options,
           std::vector<std::string> &notes)
      : config(config), family(family), options(options), notes(notes),
        defaults(familyDefaults(family)) {}

  Expected<Model> run() {
    model.modelType = config.modelType;
    // In this order, so that the first refusal is always the same one.
    for (Error (Importer::*step)() :
         {&Importer::unknownFields, &Importer::sizes,
          &Importer::activationAndEmbeddings, &Importer::attention,
          &Importer::latentAttention, &Importer::rotary, &Importer::feedForward,
          &Importer::deepseekRouting, &Importer::auxiliaryLosses,
          &Importer::scaleDown, &Importer::latentSoftmaxScale,
          &Importer::overflow})
      if (Error error = (this->*step)())
        return error;
    return model;
  }

private:
  bool isQwen() const {
    return family == Family::Qwen2Moe || family == Family::Qwen3Moe;
  }
  bool isDeepSeek() const {
    return family == Family::DeepseekV2 || family == Family::DeepseekV3;
  }

  Error unknownFields() {
    llvm::StringSet<> known;
    for (StringRef name : kMetadataFields)
      known.insert(name);
    for (StringRef name : kCommonFields)
      known.insert(name);
    for (StringRef name : familyFields(family))
      known.insert(name);
    std::vector<std::string> names;
    for (const auto &entry : config.object)
      names.push_back(entry.first.str());
    llvm::sort(names);
    for (const std::string &name : names)
      if (!known.contains(name))
        return fail("field '" + name + "' is not known for model_type " +
                    config.modelType +
                    ": laer cannot tell whether it changes the math");
    return Error::success();
  }

  Error sizes() {
    LAER_TRY(vocab, config.size("vocab_size"));
    LAER_TRY(hidden, config.size("hidden_size"));
    LAER_TRY(layers, config.size("num_hidden_layers"));
    LAER_TRY(heads, config.size("num_attention_heads"));
    model.vocab = vocab;
    model.hidden = hidden;
    totalLayers = layers;
    model.heads = heads;

    // HF's default number of KV heads is the number of heads only for
    // OLMoE (and for Mixtral when the field is null); Mixtral's and Qwen's
    // config classes default to a fixed count, so say it.
    LAER_TRY(kvHeads, config.integer("num_key_value_heads"));
    if (!kvHeads) {
      bool nullInConfig = config.object.get("num_key_value_heads") != nullptr;
      if (family == Family::Olmoe || isDeepSeek() ||
          (family == Family::Mixtral && nullInConfig))
        kvHeads = heads;
      else
        return config.missing("num_key_value_heads",
                              "HF's default is a fixed count, not "
                              "num_attention_heads; state it");
    }
    if (*kvHeads <= 0)
      return config.refuse("num_key_value_heads",
                           *config.get("num_key_value_heads"),
                           "must be positive");
    if (heads % *kvHeads != 0)
      return config.refuse(
          "num_key_value_heads", *config.get("num_key_value_heads"),
          "does not divide num_attention_heads = " + Twine(heads));
    model.kvHeads = *kvHeads;
    if (isDeepSeek() && *kvHeads != heads)
      return config.refuse("num_key_value_heads",
                           *config.get("num_key_value_heads"),
                           "MLA gives every head its own key and value: "
                           "expected num_attention_heads = " +
                               Twine(heads));

    if (isDeepSeek()) {
      if (Error error = latentHeadDim())
        return error;
    } else if (Error error = headSize()) {
      return error;
    }

    LAER_TRY(maxPositions,
             config.integer("max_position_embeddings", defaults.maxPositions));
    if (maxPositions <= 0)
      return config.refuse("max_position_embeddings",
                           *config.get("max_position_embeddings"),
                           "must be positive");
    model.sequenceLength = maxPositions;

    LAER_TRY(epsilon, config.number("rms_norm_eps", defaults.epsilon));
    if (epsilon <= 0)
      return config.refuse("rms_norm_eps", *config.get("rms_norm_eps"),
                           "must be positive");
    model.epsilon = epsilon;
    return Error::success();
  }

  /// The attention head size of the families with one (all but DeepSeek).
  Error headSize() {
    int64_t hidden = model.hidden, heads = model.heads;
    LAER_TRY(headDim, config.integer("head_dim"));
    if (headDim) {
      explicitHeadDim = true;
      if (*headDim <= 0)
        return config.refuse("head_dim", *config.get("head_dim"),
                             "must be positive");
      // OLMoE's q_norm/k_norm are hidden_size and
      // (hidden_size / heads) * kv_heads wide: only the default head size
      // fits them.
      if (family == Family::Olmoe &&
          (hidden % heads != 0 || *headDim != hidden / heads))
        return config.refuse(
            "head_dim", *config.get("head_dim"),
            "OLMoE's q_norm and k_norm widths assume hidden_size / "
            "num_attention_heads");
      model.headDim = *headDim;
    } else {
      if (hidden % heads != 0)
        return config.refuse(
            "hidden_size", *config.get("hidden_size"),
            "not divisible by num_attention_heads = " + Twine(heads) +
                " (the head size when head_dim is absent)");
      model.headDim = hidden / heads;
    }
    if (model.headDim % 2 != 0) {
      if (explicitHeadDim)
        return config.refuse("head_dim", *config.get("head_dim"),
                             "the head size must be even (rotary embedding)");
      return config.refuse("hidden_size", *config.get("hidden_size"),
                           "the head size hidden_size / num_attention_heads "
                           "= " +
                               Twine(model.headDim) +
                               " must be even (rotary embedding)");
    }
    return Error::success();
  }

  Error activationAndEmbeddings() {
    LAER_TRY(act, config.string("hidden_act"));
    // HF's ACT2FN maps both names to SiLU.
    if (act && *act != "silu" && *act != "swish")
      return config.refuse("hidden_act", *config.get("hidden_act"),
                           "only SiLU (SwiGLU) feed-forward networks are "
                           "supported");
    LAER_TRY(tied, config.boolean("tie_word_embeddings", false));
    model.tiedEmbeddings = tied;
    return Error::success();
  }

  Error attention() {
    LAER_TRY(dropout, config.number("attention_dropout", 0.0));
    if (dropout != 0)
      return config.refuse("attention_dropout",
                           *config.get("attention_dropout"),
                           "attention dropout is not supported yet");

    // Sliding windows: Mixtral and OLMoE use `sliding_window` whenever it
    // is set; Qwen only with use_sliding_window (the window is then unused
    // otherwise, so its value does not matter).
    if (isQwen()) {
      LAER_TRY(sliding, config.boolean("use_sliding_window", false));
      if (sliding)
        return config.refuse("use_sliding_window",
                             *config.get("use_sliding_window"),
                             "sliding-window attention is not supported yet");
    } else if (const json::Value *window = config.get("sliding_window")) {
      return config.refuse("sliding_window", *window,
                           "sliding-window attention is not supported yet");
    }
    if (family == Family::Qwen2Moe) {
      // transformers 5 writes the per-layer attention kinds out.
      if (const json::Value *types = config.get("layer_types")) {
        const json::Array *array = types->getAsArray();
        if (!array)
          return config.refuse("layer_types", *types, "expected a list");
        if (static_cast<int64_t>(array->size()) != totalLayers)
          return config.refuse("layer_types", *types,
                               "expected num_hidden_layers = " +
                                   Twine(totalLayers) + " entries");
        for (auto [index, kind] : llvm::enumerate(*array))
          if (kind.getAsString() != std::optional<StringRef>("full_attention"))
            return config.refuse(
                ("layer_types[" + Twine(index) + "]").str(), kind,
                kind.getAsString() ==
                        std::optional<StringRef>("sliding_attention")
                    ? "sliding-window attention is not supported yet"
                    : "only full_attention is supported");
      }
    }

    // Biases: Qwen2-MoE puts them on q, k and v (qkv_bias, always on before
    // transformers 5); Qwen3-MoE and OLMoE follow attention_bias, which
    // gives o_proj one too; Mixtral's attention never has biases (HF's
    // Mixtral ignores attention_bias).
    if (family == Family::Qwen2Moe) {
      LAER_TRY(bias, config.boolean("qkv_bias", true));
      model.qkvBias = bias;
    } else {
      LAER_TRY(bias, config.boolean("attention_bias", false));
      if (bias && family == Family::Mixtral)
        notes.push_back("field 'attention_bias' = true is ignored, as HF's "
                        "Mixtral ignores it: its projections have no biases");
      else if (bias && isDeepSeek())
        return config.refuse("attention_bias", *config.get("attention_bias"),
                             "HF then puts biases on the query and latent "
                             "projections and o_proj, which laer's MLA does "
                             "not support yet");
      else if (bias)
        return config.refuse("attention_bias", *config.get("attention_bias"),
                             "HF then puts a bias on o_proj as well, which "
                             "laer's attention does not support yet");
    }

    if (family == Family::Qwen3Moe)
      model.qkNorm = QKNorm::PerHead;
    if (family == Family::Olmoe) {
      model.qkNorm = QKNorm::WholeProjection;
      if (const json::Value *clip = config.get("clip_qkv"))
        return config.refuse("clip_qkv", *clip,
                             "QKV clipping is not supported yet");
    }
    return Error::success();
  }

  /// DeepSeek's per-head sizes; head_dim, where transformers writes it, is
  /// the rotary part's.
  Error latentHeadDim() {
    LAER_TRY(nope, config.size("qk_nope_head_dim", /*allowZero=*/true));
    LAER_TRY(rope, config.size("qk_rope_head_dim"));
    LAER_TRY(value, config.size("v_head_dim"));
    if (rope % 2 != 0)
      return config.refuse("qk_rope_head_dim", *config.get("qk_rope_head_dim"),
                           "must be even (the rotation turns pairs)");
    LAER_TRY(headDim, config.integer("head_dim"));
    if (headDim && *headDim != rope)
      return config.refuse("head_dim", *config.get("head_dim"),
                           "DeepSeek's head_dim is qk_rope_head_dim = " +
                               Twine(rope));
    model.nopeDim = nope;
    model.ropeDim = rope;
    model.valueDim = value;
    return Error::success();
  }

  /// DeepSeek's multi-head latent attention: the two LoRA ranks and the
  /// rotation's pairing.
  Error latentAttention() {
    if (!isDeepSeek())
      return Error::success();
    model.latentAttention = true;
    LAER_TRY(kvRank, config.size("kv_lora_rank"));
    LAER_TRY(qRank, config.integer("q_lora_rank"));
    if (qRank && *qRank <= 0)
      return config.refuse("q_lora_rank", *config.get("q_lora_rank"),
                           "must be positive, or null for no query LoRA");
    model.kvLoraRank = kvRank;
    model.qLoraRank = qRank.value_or(0);
    LAER_TRY(interleave, config.boolean("rope_interleave", true));
    if (!interleave)
      return config.refuse("rope_interleave", *config.get("rope_interleave"),
                           "laer's MLA rotates adjacent pairs, as DeepSeek's "
                           "checkpoints store them; the half-split rotation "
                           "is not supported yet");
    LAER_TRY(tp, config.integer("pretraining_tp", 1));
    if (tp != 1)
      return config.refuse("pretraining_tp", *config.get("pretraining_tp"),
                           "only 1 (no tensor-parallel slicing of the "
                           "projections) is supported");
    if (const json::Value *quantization = config.get("quantization_config"))
      notes.push_back("field 'quantization_config' = " + show(*quantization) +
                      " describes how the published weights are stored, "
                      "not the model: laer trains in f32 and --load-weights "
                      "reads F32, BF16 and F16 safetensors (dequantize FP8 "
                      "checkpoints first)");
    LAER_TRY(nextN, config.integer("num_nextn_predict_layers", 0));
    if (nextN != 0)
      notes.push_back(
          "field 'num_nextn_predict_layers' = " + Twine(nextN).str() +
          " is not applied, as transformers' DeepSeek-V3 does "
          "not: the multi-token-prediction modules are not part "
          "of its forward pass or loss");
    return Error::success();
  }

  /// A `rope_scaling` (or `rope_parameters`) object of type yarn, as HF's
  /// _compute_yarn_parameters and DeepSeek's attention read it.
  Error yarnScaling(const json::Object &object, StringRef field) {
    Model::Yarn yarn;
    std::optional<double> mscale, mscaleAllDim, attentionFactor;
    std::optional<double> factor;
    yarn.originalMaxPosition = 0;
    std::vector<std::string> keys;
    for (const auto &entry : object)
      keys.push_back(entry.first.str());
    llvm::sort(keys);
    for (const std::string &key : keys) {
      const json::Value &value = *object.get(key);
      std::string name = (field + "." + key).str();
      if (key == "type" || key == "rope_type" || key == "rope_theta")
        continue;
      if (key == "truncate") {
        if (value.getAsBoolean() != std::optional<bool>(true))
          return config.refuse(name, value,
                               "only the truncated correction range "
                               "(DeepSeek's) is supported");
        continue;
      }
      if (key == "original_max_position_embeddings") {
        std::optional<int64_t> positions = value.getAsInteger();
        if (!positions || *positions < 1)
          return config.refuse(name, value, "expected a positive integer");
        yarn.originalMaxPosition = *positions;
        continue;
      }
      std::optional<double> number = value.getAsNumber();
      bool known = key == "factor" || key == "beta_fast" ||
                   key == "beta_slow" || key == "mscale" ||
                   key == "mscale_all_dim" || key == "attention_factor";
      if (!known)
        return config.refuse(name, value,
                             "laer cannot tell whether it changes the math");
      if (value.kind() == json::Value::Null)
        continue;
      if (!number || !std::isfinite(*number))
        return config.refuse(name, value, "expected a number");
      if (key == "factor") {
        if (*number < 1)
          return config.refuse(name, value, "must be >= 1");
        factor = number;
      } else if (key == "beta_fast" || key == "beta_slow") {
        if (*number <= 0)
          return config.refuse(name, value, "must be positive");
        (key == "beta_fast" ? yarn.betaFast : yarn.betaSlow) = *number;
      } else if (key == "mscale") {
        mscale = number;
      } else if (key == "mscale_all_dim") {
        mscaleAllDim = number;
      } else {
        if (*number <= 0)
          return config.refuse(name, value, "must be positive");
        attentionFactor = number;
      }
    }
    if (!factor)
      return fail("field '" + field + ".factor' is missing (YaRN needs it)");
    yarn.factor = *factor;
    if (!yarn.originalMaxPosition) {
      LAER_TRY(positions, config.integer("max_position_embeddings",
                                         defaults.maxPositions));
      yarn.originalMaxPosition = positions;
    }
    // HF's get_mscale: 0.1 * m * ln(factor) + 1 (1 without scaling).
    auto magnitude = [&](double m) {
      return yarn.factor <= 1 ? 1.0 : 0.1 * m * std::log(yarn.factor) + 1.0;
    };
    if (attentionFactor)
      yarn.attentionFactor = *attentionFactor;
    else if (mscale && *mscale != 0 && mscaleAllDim && *mscaleAllDim != 0)
      yarn.attentionFactor = magnitude(*mscale) / magnitude(*mscaleAllDim);
    else
      yarn.attentionFactor = magnitude(1.0);
    yarn.mscaleAllDim = mscaleAllDim.value_or(0.0);
    if (yarn.mscaleAllDim != 0)
      softmaxMagnitude = magnitude(yarn.mscaleAllDim);
    model.yarn = yarn;
    return Error::success();
  }

  /// qk_head_dim^-0.5, times get_mscale(factor, mscale_all_dim)^2 with YaRN
  /// (DeepSeek's attention), from the sizes after any scale-down.
  Error latentSoftmaxScale() {
    if (!model.latentAttention)
      return Error::success();
    double qkHeadDim = double(model.nopeDim + model.ropeDim);
    model.softmaxScale =
        softmaxMagnitude * softmaxMagnitude / std::sqrt(qkHeadDim);
    return Error::success();
  }

  /// DeepSeek's router: the score function and top-k method its version
  /// implements, routed_scaling_factor, the expert groups and (V3) the
  /// selection bias and its update rate.
  Error deepseekRouting() {
    bool v3 = family == Family::DeepseekV3;
    if (options.biasUpdateRate && !v3)
      return fail("--bias-update-rate: model_type " + config.modelType +
                  " has no e_score_correction_bias to update");
    if (!isDeepSeek() || !llvm::is_contained(layerIsMoE, true))
      return Error::success();
    StringRef scoring = v3 ? "sigmoid" : "softmax";
    LAER_TRY(function, config.string("scoring_func"));
    if (function && *function != scoring)
      return config.refuse("scoring_func", *config.get("scoring_func"),
                           "model_type " + config.modelType + " implements " +
                               scoring + " scores only");
    model.sigmoidScores = v3;

    StringRef methods = v3 ? "noaux_tc" : "greedy or group_limited_greedy";
    LAER_TRY(method, config.string("topk_method"));
    StringRef topkMethod = method.value_or(v3 ? "noaux_tc" : "greedy");
    if ((v3 && topkMethod != "noaux_tc") ||
        (!v3 && topkMethod != "greedy" && topkMethod != "group_limited_greedy"))
      return config.refuse("topk_method", *config.get("topk_method"),
                           "model_type " + config.modelType + " implements " +
                               methods);
    bool grouped = topkMethod != "greedy";

    LAER_TRY(scale, config.number("routed_scaling_factor", v3 ? 2.5 : 1.0));
    if (!(scale > 0))
      return config.refuse("routed_scaling_factor",
                           *config.get("routed_scaling_factor"),
                           "must be positive");
    // DeepSeek-V2's own code scales only weights it does not renormalise.
    if (!v3 && model.renormalize && scale != 1.0)
      return config.refuse(
          "routed_scaling_factor", *config.get("routed_scaling_factor"),
          "with norm_topk_prob, DeepSeek-V2's code and transformers' differ "
          "on whether the renormalised weights are scaled; laer refuses "
          "rather than guess");
    model.routedScale = scale;

    if (grouped) {
      LAER_TRY(groups, config.integer("n_group", v3 ? 8 : 1));
      LAER_TRY(top, config.integer("topk_group", v3 ? 4 : 1));
      if (groups < 1 || model.experts % groups != 0)
        return fail("field 'n_group' = " + Twine(groups) +
                    ": must be positive and divide n_routed_experts = " +
                    Twine(model.experts));
      if (top < 1 || top > groups)
        return fail("field 'topk_group' = " + Twine(top) +
                    ": must lie in [1, n_group = " + Twine(groups) + "]");
      int64_t perGroup = model.experts / groups;
      if (model.topK > top * perGroup)
        return fail("field 'num_experts_per_tok' = " + Twine(model.topK) +
                    ": more than the " + Twine(top * perGroup) +
                    " experts of topk_group = " + Twine(top) + " groups");
      if (v3 && perGroup < 2)
        return fail("field 'n_group' = " + Twine(groups) +
                    ": DeepSeek-V3 scores a group by its two best experts, "
                    "so each group needs at least two");
      if (groups > 1) {
        model.groups = groups;
        model.topGroups = top;
        model.groupTopTwoSum = v3;
      }
    }
    if (v3) {
      model.selectionBias = true;
      if (options.biasUpdateRate) {
        if (!(*options.biasUpdateRate >= 0) ||
            !std::isfinite(*options.biasUpdateRate))
          return fail("--bias-update-rate " +
                      formatFloat(*options.biasUpdateRate) +
                      ": must be finite and >= 0");
        model.biasUpdateRate = *options.biasUpdateRate;
      } else {
        model.biasUpdateRate = 0.001;
        notes.push_back("e_score_correction_bias moves by 0.001 x sign(mean "
                        "load - expert load) after every step (DeepSeek-V3's "
                        "bias update speed; the config does not say it): "
                        "--bias-update-rate sets it, 0 turns it off");
      }
    }
    return Error::success();
  }

  Error rotary() {
    LAER_TRY(theta, config.number("rope_theta", defaults.ropeTheta));
    StringRef thetaField = "rope_theta";
    if (const json::Value *scaling = config.get("rope_scaling")) {
      const json::Object *object = scaling->getAsObject();
      if (!object)
        return config.refuse("rope_scaling", *scaling,
                             "expected null or an object");
      StringRef key = object->get("rope_type") ? "rope_type" : "type";
      const json::Value *type = object->get(key);
      std::optional<StringRef> name = type ? type->getAsString() : std::nullopt;
      if (!name)
        return config.refuse("rope_scaling", *scaling,
                             "rotary embedding scaling is not supported yet");
      if (*name == "yarn" && isDeepSeek()) {
        if (Error error = yarnScaling(*object, "rope_scaling"))
          return error;
      } else if (*name != "default") {
        return config.refuse(("rope_scaling." + key).str(), *type,
                             *name == "yarn"
                                 ? std::string("YaRN is supported for "
                                               "DeepSeek's MLA only, not yet "
                                               "for this family")
                                 : "rotary embedding scaling '" + name->str() +
                                       "' is not supported yet");
      }
    }
    // transformers 5 moves rope_theta into rope_parameters.
    if (const json::Value *parameters = config.get("rope_parameters")) {
      const json::Object *object = parameters->getAsObject();
      if (!object)
        return config.refuse("rope_parameters", *parameters,
                             "expected null or an object");
      // The rotary kind first, then the rest in name order.
      std::vector<std::string> keys;
      for (const auto &entry : *object)
        keys.push_back(entry.first.str());
      llvm::sort(keys, [](const std::string &a, const std::string &b) {
        bool aType = a == "rope_type" || a == "type";
        bool bType = b == "rope_type" || b == "type";
        return aType != bType ? aType : a < b;
      });
      bool yarnParameters = false;
      for (const std::string &key : keys) {
        const json::Value &value = *object->get(key);
        if (key == "rope_type" || key == "type") {
          yarnParameters = isDeepSeek() && value.getAsString() ==
                                               std::optional<StringRef>("yarn");
          if (yarnParameters) {
            if (Error error = yarnScaling(*object, "rope_parameters"))
              return error;
          } else if (value.getAsString() != std::optional<StringRef>("default"))
            return config.refuse("rope_parameters." + key, value,
                                 value.getAsString() ==
                                         std::optional<StringRef>("yarn")
                                     ? "YaRN is not supported yet"
                                     : "only the default rotary embedding "
                                       "is supported");
        } else if (key == "rope_theta") {
          std::optional<double> number = value.getAsNumber();
          if (!number)
            return config.refuse("rope_parameters.rope_theta", value,
                                 "expected a number");
          theta = *number;
          thetaField = "rope_parameters.rope_theta";
        } else if (!yarnParameters) {
          return config.refuse("rope_parameters." + key, value,
                               "laer cannot tell whether it changes the "
                               "math");
        }
      }
    }
    if (!(theta > 0) || !std::isfinite(theta))
      return fail("field '" + thetaField + "' = " + showNumber(theta) +
                  ": must be positive");
    model.ropeTheta = theta;
    return Error::success();
  }

  Error feedForward() {
    // The expert count: Mixtral calls it num_local_experts, the others
    // num_experts; HF maps either name onto the other.
    if (isDeepSeek())
      return deepseekFeedForward();
    StringRef primary =
        family == Family::Mixtral ? "num_local_experts" : "num_experts";
    StringRef alias =
        family == Family::Mixtral ? "num_experts" : "num_local_experts";
    StringRef expertsField =
        config.has(primary) || !config.has(alias) ? primary : alias;
    if (config.has(primary) && config.has(alias)) {
      LAER_TRY(a, config.integer(primary));
      LAER_TRY(b, config.integer(alias));
      if (*a != *b)
        return config.refuse(alias, *config.get(alias),
                             "disagrees with " + primary + " = " + Twine(*a));
    }
    // Qwen may have no experts at all (every layer dense).
    LAER_TRY(experts, config.size(expertsField, /*allowZero=*/isQwen()));
    model.experts = experts;

    // Which layers are MoE.
    std::vector<bool> moe(totalLayers, true);
    if (isQwen()) {
      LAER_TRY(step, config.integer("decoder_sparse_step", 1));
      if (step <= 0)
        return config.refuse("decoder_sparse_step",
                             *config.get("decoder_sparse_step"),
                             "must be positive");
      for (int64_t layer = 0; layer < totalLayers; ++layer)
        moe[layer] = experts > 0 && (layer + 1) % step == 0;
      if (const json::Value *only = config.get("mlp_only_layers")) {
        const json::Array *array = only->getAsArray();
        if (!array)
          return config.refuse("mlp_only_layers", *only, "expected a list");
        for (const json::Value &entry : *array) {
          std::optional<int64_t> layer = entry.getAsInteger();
          if (!layer || *layer < 0 || *layer >= totalLayers)
            return config.refuse("mlp_only_layers", *only,
                                 "entry " + show(entry) +
                                     " is not a layer index in [0, " +
                                     Twine(totalLayers) + ")");
          moe[*layer] = false;
        }
      }
    }
    bool anyMoE = llvm::is_contained(moe, true);
    bool anyDense = llvm::is_contained(moe, false);

    if (experts > 0) {
      LAER_TRY(topK, config.size("num_experts_per_tok"));
      if (topK > experts)
        return config.refuse("num_experts_per_tok",
                             *config.get("num_experts_per_tok"),
                             "more than the " + Twine(experts) + " experts (" +
                                 expertsField + ")");
      model.topK = topK;
    }
    // Mixtral always renormalises the top-k softmax weights; the others
    // only with norm_topk_prob (default false).
    if (family == Family::Mixtral) {
      model.renormalize = true;
      LAER_TRY(jitter, config.number("router_jitter_noise", 0.0));
      if (jitter != 0)
        return config.refuse("router_jitter_noise",
                             *config.get("router_jitter_noise"),
                             "router jitter noise is not supported yet");
    } else {
      LAER_TRY(norm, config.boolean("norm_topk_prob", false));
      model.renormalize = norm;
    }

    expertWidthField = isQwen() ? "moe_intermediate_size" : "intermediate_size";
    if (anyMoE) {
      LAER_TRY(width, config.size(expertWidthField));
      model.expertWidth = width;
    }
    if (anyDense) {
      LAER_TRY(width, config.size("intermediate_size"));
      model.denseWidth = width;
    }
    if (family == Family::Qwen2Moe && anyMoE) {
      // A zero-width shared expert adds nothing (HF still builds its gate).
      LAER_TRY(width, config.size("shared_expert_intermediate_size",
                                  /*allowZero=*/true));
      model.sharedWidth = width;
      model.sharedGate = width > 0;
    }
    layerIsMoE = std::move(moe);
    return Error::success();
  }

  /// DeepSeek's layers: dense up to first_k_dense_replace, then MoE every
  /// moe_layer_freq-th layer, with n_shared_experts ungated shared experts
  /// (one MLP of their summed width, as HF builds it).
  Error deepseekFeedForward() {
    LAER_TRY(experts, config.size("n_routed_experts", /*allowZero=*/true));
    model.experts = experts;
    LAER_TRY(firstMoE, config.integer("first_k_dense_replace", 0));
    LAER_TRY(frequency, config.integer("moe_layer_freq", 1));
    if (firstMoE < 0)
      return config.refuse("first_k_dense_replace",
                           *config.get("first_k_dense_replace"),
                           "must not be negative");
    if (frequency < 1)
      return config.refuse("moe_layer_freq", *config.get("moe_layer_freq"),
                           "must be positive");
    std::vector<bool> moe(totalLayers);
    for (int64_t layer = 0; layer < totalLayers; ++layer)
      moe[layer] = experts > 0 && layer >= firstMoE && layer % frequency == 0;
    bool anyMoE = llvm::is_contained(moe, true);
    if (anyMoE) {
      LAER_TRY(topK, config.size("num_experts_per_tok"));
      if (topK > experts)
        return config.refuse(
            "num_experts_per_tok", *config.get("num_experts_per_tok"),
            "more than the " + Twine(experts) + " experts (n_routed_experts)");
      model.topK = topK;
      bool v3 = family == Family::DeepseekV3;
      LAER_TRY(norm, config.boolean("norm_topk_prob", v3));
      // DeepSeek-V2's code renormalises only more than one weight.
      model.renormalize = norm && (v3 || topK > 1);
      expertWidthField = "moe_intermediate_size";
      LAER_TRY(width, config.size(expertWidthField));
      model.expertWidth = width;
      LAER_TRY(shared, config.integer("n_shared_experts", 0));
      if (shared < 0)
        return config.refuse("n_shared_experts",
                             *config.get("n_shared_experts"),
                             "must not be negative");
      std::optional<int64_t> sharedWidth = llvm::checkedMul(shared, width);
      if (!sharedWidth)
        return config.refuse("n_shared_experts",
                             *config.get("n_shared_experts"), "too large");
      model.sharedWidth = *sharedWidth;
    }
    if (llvm::is_contained(moe, false)) {
      LAER_TRY(width, config.size("intermediate_size"));
      model.denseWidth = width;
    }
    layerIsMoE = std::move(moe);
    return Error::success();
  }

  /// HF adds router_aux_loss_coef x the load-balancing loss (and nothing
  /// for a z-loss) only when output_router_logits is set.
  Error auxiliaryLosses() {
    if (isDeepSeek()) {
      // DeepSeek's own modelling code (the configs' auto_map) adds
      // aux_loss_alpha x each MoE layer's balance loss, per sequence with
      // seq_aux; transformers' port adds none.
      LAER_TRY(alpha, config.number("aux_loss_alpha", 0.0));
      LAER_TRY(perSequence, config.boolean("seq_aux", true));
      if (alpha < 0)
        return config.refuse("aux_loss_alpha", *config.get("aux_loss_alpha"),
                             "a loss coefficient must be >= 0");
      if (alpha == 0 || !llvm::is_contained(layerIsMoE, true))
        return Error::success();
      if (perSequence && options.globalBatchAuxLoss)
        return fail("--aux-loss-batch global: field 'seq_aux' = true asks "
                    "for DeepSeek's sequence-wise loss, whose loads are each "
                    "sequence's");
      model.auxLossCoef = alpha;
      model.auxPerLayer = true;
      model.sequenceAux = perSequence;
      notes.push_back(
          "field 'aux_loss_alpha' = " + showNumber(alpha) +
          " multiplies "
          "each MoE layer's " +
          (perSequence ? "sequence-wise (seq_aux)" : "batch") +
          " load-balancing loss, as DeepSeek's own modelling code trains "
          "(transformers' port adds none); set it to 0 to train without");
      return Error::success();
    }
    LAER_TRY(outputLogits, config.boolean("output_router_logits", false));
    LAER_TRY(coef, config.number("router_aux_loss_coef", defaults.auxLossCoef));
    if (outputLogits && coef != 0) {
      if (!std::isfinite(coef) || coef < 0)
        return config.refuse("router_aux_loss_coef",
                             *config.get("router_aux_loss_coef"),
                             "a loss coefficient must be finite and >= 0");
      model.auxLossCoef = coef;
      notes.push_back(
          "the auxiliary load-balancing loss is each MoE layer's "
          "(Switch / Megatron form) with coefficient router_aux_loss_coef x "
          "top_k / MoE layers: equal to HF's, which averages the router "
          "statistics over all layers first, for one layer or when the "
          "layers route alike");
    }
    if (!outputLogits && coef != 0 && config.has("router_aux_loss_coef"))
      notes.push_back("field 'router_aux_loss_coef' = " + showNumber(coef) +
                      " is not applied: HF adds the auxiliary load-balancing "
                      "loss only when output_router_logits is true");
    if (family == Family::Olmoe) {
      LAER_TRY(zCoef, config.number("router_z_loss_coef", 0.0));
      if (zCoef != 0 && outputLogits) {
        if (!std::isfinite(zCoef) || zCoef < 0)
          return config.refuse("router_z_loss_coef",
                               *config.get("router_z_loss_coef"),
                               "a loss coefficient must be finite and >= 0");
        model.zLossCoef = zCoef;
      } else if (zCoef != 0)
        notes.push_back("field 'router_z_loss_coef' = " + showNumber(zCoef) +
                        " is not applied: HF's OLMoE adds the z-loss only "
                        "when output_router_logits is true");
    }
    return Error::success();
  }

  Error scaleDown() {
    const laer::HFImportOptions &o = options;
    model.layers = totalLayers;
    if (o.layers) {
      if (*o.layers <= 0)
        return fail("--layers " + Twine(*o.layers) + ": must be positive");
      if (*o.layers > totalLayers)
        return fail(
            "--layers " + Twine(*o.layers) +
            ": the config has num_hidden_layers = " + Twine(totalLayers));
      model.layers = *o.layers;
    }
    model.moeLayer.assign(layerIsMoE.begin(),
                          layerIsMoE.begin() + model.layers);

    if (o.hiddenDiv <= 0)
      return fail("--hidden-div " + Twine(o.hiddenDiv) + ": must be positive");
    if (o.hiddenDiv > 1) {
      int64_t d = o.hiddenDiv;
      auto divide = [&](StringRef field, int64_t &size) -> Error {
        if (size % d != 0)
          return fail("--hidden-div " + Twine(d) + ": field '" + field +
                      "' = " + Twine(size) + " is not divisible by " +
                      Twine(d));
        size /= d;
        return Error::success();
      };
      if (Error error = divide("hidden_size", model.hidden))
        return error;
      if (model.latentAttention) {
        for (auto [field, size] : {std::pair<StringRef, int64_t *>{
                                       "kv_lora_rank", &model.kvLoraRank},
                                   {"q_lora_rank", &model.qLoraRank},
                                   {"qk_nope_head_dim", &model.nopeDim},
                                   {"qk_rope_head_dim", &model.ropeDim},
                                   {"v_head_dim", &model.valueDim}})
          if (Error error = divide(field, *size))
            return error;
        if (model.ropeDim % 2 != 0 || model.ropeDim < 2)
          return fail("--hidden-div " + Twine(d) +
                      ": qk_rope_head_dim would be " + Twine(model.ropeDim) +
                      ", it must stay even and positive (rotation)");
      } else if (explicitHeadDim) {
        if (Error error = divide("head_dim", model.headDim))
          return error;
      } else if (model.headDim % d != 0) {
        return fail("--hidden-div " + Twine(d) +
                    ": the head size hidden_size / num_attention_heads = " +
                    Twine(model.headDim) + " is not divisible by " + Twine(d));
      } else {
        model.headDim /= d;
      }
      if (model.headDim % 2 != 0)
        return fail("--hidden-div " + Twine(d) + ": the head size would be " +
                    Twine(model.headDim) +
                    ", it must stay even (rotary embedding)");
      if (model.expertWidth)
        if (Error error = divide(expertWidthField, model.expertWidth))
          return error;
      if (model.denseWidth)
        if (Error error = divide("intermediate_size", model.denseWidth))
          return error;
      if (model.sharedWidth)
        if (Error error =
                divide(isDeepSeek() ? "n_shared_experts x moe_intermediate_size"
                                    : "shared_expert_intermediate_size",
                       model.sharedWidth))
          return error;
    }

    if (o.vocab) {
      if (*o.vocab <= 0)
        return fail("--vocab " + Twine(*o.vocab) + ": must be positive");
      model.vocab = *o.vocab;
    }
    if (o.sequenceLength) {
      if (*o.sequenceLength <= 0)
        return fail("--seq-len " + Twine(*o.sequenceLength) +
                    ": must be positive");
      model.sequenceLength = *o.sequenceLength;
    }
    return Error::success();
  }

  /// Every parameter's element count fits in 64 bits.
  Error overflow() {
    const Model &m = model;
    auto product = [&](std::initializer_list<int64_t> dims,
                       StringRef what) -> Error {
      int64_t total = 1;
      for (int64_t dim : dims) {
        std::optional<int64_t> next = llvm::checkedMul(total, dim);
        if (!next) {
          std::string shape;
          for (int64_t d : dims)
            shape += (shape.empty() ? "" : " x ") + llvm::itostr(d);
          return fail("model_type " + m.modelType + ": the " + what + " has " +
                      shape +
                      " elements, more than 64-bit sizes "
                      "hold");
        }
        total = *next;
      }
      return Error::success();
    };
    if (Error e = product({m.vocab, m.hidden}, "embedding"))
      return e;
    if (Error e = product({m.hidden, m.heads, m.headDim}, "query projection"))
      return e;
    if (Error e = product(
            {std::max(m.hidden, m.qLoraRank), m.heads, m.nopeDim + m.ropeDim},
            "MLA query projection"))
      return e;
    if (Error e = product({m.kvLoraRank, m.heads, m.nopeDim + m.valueDim},
                          "MLA key/value projection"))
      return e;
    if (Error e = product({m.hidden, m.kvHeads, m.headDim}, "key projection"))
      return e;
    if (Error e =
            product({m.experts, m.hidden, m.expertWidth}, "expert weight"))
      return e;
    if (Error e = product({m.hidden, m.sharedWidth}, "shared expert weight"))
      return e;
    if (Error e = product({m.hidden, m.denseWidth}, "dense MLP weight"))
      return e;
    return Error::success();
  }

  const Config &config;
  Family family;
  const laer::HFImportOptions &options;
  std::vector<std::string> &notes;
  FamilyDefaults defaults;
  Model model;
  /// get_mscale(factor, mscale_all_dim): squared into MLA's softmax scale.
  double softmaxMagnitude = 1.0;
  int64_t totalLayers = 0;
  bool explicitHeadDim = false;
  StringRef expertWidthField;
  std::vector<bool> layerIsMoE;
};

#undef LAER_TRY

//===----------------------------------------------------------------------===//
// Writing the IR
//===----------------------------------------------------------------------===//

/// `parts`, comma-separated, as `// ` comment lines of at most 80 columns;
/// lines break between parts, or between the words of the first part.
std::string comment(llvm::ArrayRef<std::string> parts) {
  std::vector<std::string> units;
  for (auto [index, part] : llvm::enumerate(parts)) {
    std::string unit = part + (index + 1 < parts.size() ? "," : ".");
    if (index == 0) {
      llvm::SmallVector<StringRef> words;
      StringRef(unit).split(words, ' ', -1, /*KeepEmpty=*/false);
      for (StringRef word : words)
        units.push_back(word.str());
    } else {
      units.push_back(unit);
    }
  }
  std::string out, line;
  for (const std::string &unit : units) {
    if (!line.empty() && line.size() + 1 + unit.size() > 77) {
      out += "// " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + unit;
  }
  if (!line.empty())
    out += "// " + line + "\n";
  return out;
}

std::string header(const Model &m, const laer::HFImportOptions &o) {
  std::string command =
      "Generated by laer-import " +
      (o.sourceName.empty() ? std::string("config.json") : o.sourceName);
  if (o.layers)
    command += " --layers " + llvm::itostr(*o.layers);
  if (o.hiddenDiv != 1)
    command += " --hidden-div " + llvm::itostr(o.hiddenDiv);
  if (o.vocab)
    command += " --vocab " + llvm::itostr(*o.vocab);
  if (o.sequenceLength)
    command += " --seq-len " + llvm::itostr(*o.sequenceLength);
  if (!o.functionName.empty())
    command += " --name " + o.functionName;

  std::vector<std::string> parts;
  parts.push_back(command + ": a MoE transformer LM (" + m.modelType + ")");
  parts.push_back("H = " + llvm::itostr(m.hidden));
  if (m.anyMoE()) {
    parts.push_back("F = " + llvm::itostr(m.expertWidth));
    parts.push_back("E = " + llvm::itostr(m.experts) + " experts (top-" +
                    llvm::itostr(m.topK) + ")");
  }
  int64_t dense = llvm::count(m.moeLayer, false);
  parts.push_back(llvm::itostr(m.layers) + " layers" +
                  (dense ? " (" + llvm::itostr(dense) +
                               " dense, F = " + llvm::itostr(m.denseWidth) + ")"
                         : std::string()));
  if (m.latentAttention) {
    parts.push_back(llvm::itostr(m.heads) + " heads of MLA (" +
                    (m.qLoraRank
                         ? "query LoRA " + llvm::itostr(m.qLoraRank) + ", "
                         : std::string()) +
                    "latent " + llvm::itostr(m.kvLoraRank) + ", head sizes " +
                    llvm::itostr(m.nopeDim) + " + " + llvm::itostr(m.ropeDim) +
                    " rotary, values " + llvm::itostr(m.valueDim) + ")");
    if (m.yarn)
      parts.push_back("YaRN x " + formatFloat(m.yarn->factor));
  } else {
    parts.push_back(llvm::itostr(m.heads) + " heads (" +
                    llvm::itostr(m.kvHeads) + " KV)");
    if (m.headDim * m.heads != m.hidden)
      parts.push_back("head size " + llvm::itostr(m.headDim));
  }
  parts.push_back("vocabulary " + llvm::itostr(m.vocab));
  parts.push_back("sequence length " + llvm::itostr(m.sequenceLength));
  if (m.sharedWidth && m.anyMoE())
    parts.push_back(std::string(m.sharedGate ? "a sigmoid-gated" : "a") +
                    " shared expert of width " + llvm::itostr(m.sharedWidth));
  if (m.anyMoE() && m.sigmoidScores)
    parts.push_back("sigmoid scores");
  if (m.anyMoE() && m.groups)
    parts.push_back("top-" + llvm::itostr(m.topGroups) + " of " +
                    llvm::itostr(m.groups) + " expert groups");
  if (m.anyMoE() && m.routedScale != 1.0)
    parts.push_back("routed weights x " + formatFloat(m.routedScale));
  if (m.anyMoE() && m.selectionBias)
    parts.push_back("selection bias updated at " +
                    formatFloat(m.biasUpdateRate));
  if (m.qkvBias)
    parts.push_back("q/k/v biases");
  if (m.tiedEmbeddings)
    parts.push_back("LM head tied to the embedding");
  if (m.qkNorm == QKNorm::PerHead)
    parts.push_back("per-head QK-norm");
  if (m.qkNorm == QKNorm::WholeProjection)
    parts.push_back("QK-norm over the whole projections");
  if (m.auxLossCoef > 0)
    parts.push_back(std::string(m.sequenceAux ? "sequence-wise " : "") +
                    "aux load-balancing loss x " + formatFloat(m.auxLossCoef));
  if (m.zLossCoef > 0)
    parts.push_back("router z-loss x " + formatFloat(m.zLossCoef));
  return comment(parts);
}

/// The argument attribute naming a parameter as the family's HF
/// checkpoints do; `transposed`: stored as nn.Linear's [out, in].
std::string named(StringRef name, bool transposed) {
  return (" {moe.parameter = #moe.parameter<\"" + name + "\"" +
          (transposed ? ", transposed" : "") + ">}")
      .str();
}

/// dense.attention of layer `l` (`arg` declares a parameter, `ref` names
/// one).
template <typename Arg, typename Ref>
void writeAttention(llvm::raw_ostream &os, const Model &m, int64_t l, Arg &&arg,
                    Ref &&ref) {
  const int64_t H = m.hidden;
  const int64_t qWidth = m.heads * m.headDim, kvWidth = m.kvHeads * m.headDim;
  const std::string act = "tensor<?x" + llvm::itostr(H) + "xf32>";
  const std::string eps = formatFloat(m.epsilon);

  arg("wq", tensorType({H, qWidth}), "self_attn.q_proj.weight");
  arg("wk", tensorType({H, kvWidth}), "self_attn.k_proj.weight");
  arg("wv", tensorType({H, kvWidth}), "self_attn.v_proj.weight");
  arg("wo", tensorType({qWidth, H}), "self_attn.o_proj.weight");
  std::string clauses;
  if (m.qkvBias) {
    arg("bq", tensorType({qWidth}), "self_attn.q_proj.bias", false);
    arg("bk", tensorType({kvWidth}), "self_attn.k_proj.bias", false);
    arg("bv", tensorType({kvWidth}), "self_attn.v_proj.bias", false);
    clauses += " bias(" + ref("bq") + ", " + ref("bk") + ", " + ref("bv") +
               " : " + tensorType({qWidth}) + ", " + tensorType({kvWidth}) +
               ", " + tensorType({kvWidth}) + ")";
  }
  if (m.qkNorm != QKNorm::None) {
    bool perHead = m.qkNorm == QKNorm::PerHead;
    std::string qType = tensorType({perHead ? m.headDim : qWidth});
    std::string kType = tensorType({perHead ? m.headDim : kvWidth});
    arg("qnorm", qType, "self_attn.q_norm.weight", false);
    arg("knorm", kType, "self_attn.k_norm.weight", false);
    clauses += " qk_norm(" + ref("qnorm") + ", " + ref("knorm") + " : " +
               qType + ", " + kType + ") epsilon = " + eps;
  }
  os << "  %a" << l << " = dense.attention %n" << l << ", " << ref("wq") << ", "
     << ref("wk") << ", " << ref("wv") << ", " << ref("wo") << clauses
     << " heads = " << m.heads << " kv_heads = " << m.kvHeads
     << " sequence_length = " << m.sequenceLength
     << " rope_theta = " << formatFloat(m.ropeTheta) << " : " << act << ", "
     << tensorType({H, qWidth}) << ", " << tensorType({H, kvWidth}) << ", "
     << tensorType({H, kvWidth}) << ", " << tensorType({qWidth, H}) << " -> "
     << act << "\n";
}

/// dense.latent_attention (DeepSeek MLA) of layer `l`, named as HF's
/// DeepSeek checkpoints.
template <typename Arg, typename Ref>
void writeLatentAttention(llvm::raw_ostream &os, const Model &m, int64_t l,
                          Arg &&arg, Ref &&ref) {
  const int64_t H = m.hidden, n = m.heads, dq = m.nopeDim + m.ropeDim;
  const int64_t Rq = m.qLoraRank, Rkv = m.kvLoraRank;
  const std::string act = "tensor<?x" + llvm::itostr(H) + "xf32>";
  std::string query;
  if (Rq) {
    arg("wqa", tensorType({H, Rq}), "self_attn.q_a_proj.weight");
    arg("qan", tensorType({Rq}), "self_attn.q_a_layernorm.weight", false);
    arg("wqb", tensorType({Rq, n * dq}), "self_attn.q_b_proj.weight");
    query = "q_lora(" + ref("wqa") + ", " + ref("qan") + ", " + ref("wqb") +
            " : " + tensorType({H, Rq}) + ", " + tensorType({Rq}) + ", " +
            tensorType({Rq, n * dq}) + ")";
  } else {
    arg("wq", tensorType({H, n * dq}), "self_attn.q_proj.weight");
    query = "q(" + ref("wq") + " : " + tensorType({H, n * dq}) + ")";
  }
  const std::string aType = tensorType({H, Rkv + m.ropeDim}),
                    normType = tensorType({Rkv}),
                    bType = tensorType({Rkv, n * (m.nopeDim + m.valueDim)}),
                    oType = tensorType({n * m.valueDim, H});
  arg("wkva", aType, "self_attn.kv_a_proj_with_mqa.weight");
  arg("kvan", normType, "self_attn.kv_a_layernorm.weight", false);
  arg("wkvb", bType, "self_attn.kv_b_proj.weight");
  arg("wo", oType, "self_attn.o_proj.weight");
  os << "  %a" << l << " = dense.latent_attention %n" << l << " " << query
     << " kv_lora(" << ref("wkva") << ", " << ref("kvan") << ", " << ref("wkvb")
     << " : " << aType << ", " << normType << ", " << bType << ") out("
     << ref("wo") << " : " << oType << ") heads = " << n
     << " qk_nope_head_dim = " << m.nopeDim
     << " qk_rope_head_dim = " << m.ropeDim << " v_head_dim = " << m.valueDim
     << " sequence_length = " << m.sequenceLength
     << " rope_theta = " << formatFloat(m.ropeTheta);
  if (m.yarn)
    os << " yarn(factor = " << formatFloat(m.yarn->factor)
       << " original_max_position = " << m.yarn->originalMaxPosition
       << " beta_fast = " << formatFloat(m.yarn->betaFast)
       << " beta_slow = " << formatFloat(m.yarn->betaSlow)
       << " attention_factor = " << formatFloat(m.yarn->attentionFactor) << ")";
  os << " softmax_scale = " << formatFloat(m.softmaxScale)
     << " epsilon = " << formatFloat(m.epsilon) << " : " << act << " -> " << act
     << "\n";
}

std::string writeIR(const Model &m, const laer::HFImportOptions &o,
                    StringRef functionName) {
  const int64_t H = m.hidden, V = m.vocab, E = m.experts, F = m.expertWidth,
                S = m.sharedWidth, D = m.denseWidth;
  const std::string act = "tensor<?x" + llvm::itostr(H) + "xf32>";
  const std::string vecH = tensorType({H});
  const std::string eps = formatFloat(m.epsilon);

  std::vector<std::string> args = {
      "%ids: tensor<?xi32>", "%targets: tensor<?xi32>",
      "%embed: " + tensorType({V, H}) +
          named("model.embed_tokens.weight", false)};
  // Mixtral calls its MoE block block_sparse_moe and its experts' weights
  // w1 (gate), w3 (up), w2 (down); the other families mlp and
  // gate_proj, up_proj, down_proj.
  bool mixtral = m.modelType == "mixtral";
  bool deepseek = m.latentAttention;
  std::string moeBlock = mixtral ? "block_sparse_moe" : "mlp";
  std::string up = mixtral ? "w3" : "up_proj",
              gateProj = mixtral ? "w1" : "gate_proj",
              down = mixtral ? "w2" : "down_proj";
  std::string body;
  llvm::raw_string_ostream os(body);
  // (loss value, coefficient) of every router loss, in layer order.
  std::vector<std::pair<std::string, std::string>> routerLosses;
  os << "  %h0 = dense.embedding %embed, %ids : " << tensorType({V, H})
     << ", tensor<?xi32> -> " << act << "\n";

  for (int64_t l = 0; l < m.layers; ++l) {
    std::string L = llvm::itostr(l);
    // `file`: the tensor's name in the layer (HF's, after
    // "model.layers.<l>."); matrices are stored transposed.
    auto arg = [&](StringRef name, const std::string &type, StringRef file,
                   bool transposed = true) {
      args.push_back(
          ("%" + name + "_" + L + ": ").str() + type +
          named(("model.layers." + L + "." + file).str(), transposed));
    };
    auto ref = [&](StringRef name) { return ("%" + name + "_" + L).str(); };

    // Attention.
    arg("norm1", vecH, "input_layernorm.weight", false);
    os << "  %n" << l << " = dense.rms_norm %h" << l << ", " << ref("norm1")
       << " epsilon = " << eps << " : " << act << ", " << vecH << " -> " << act
       << "\n";
    if (m.latentAttention)
      writeLatentAttention(os, m, l, arg, ref);
    else
      writeAttention(os, m, l, arg, ref);
    os << "  %r" << l << " = arith.addf %h" << l << ", %a" << l << " : " << act
       << "\n";

    // Feed-forward.
    arg("norm2", vecH, "post_attention_layernorm.weight", false);
    os << "  %m" << l << " = dense.rms_norm %r" << l << ", " << ref("norm2")
       << " epsilon = " << eps << " : " << act << ", " << vecH << " -> " << act
       << "\n";
    std::string ffn;
    if (m.moeLayer[l]) {
      ffn = "%e" + L;
      arg("gate", tensorType({H, E}), moeBlock + ".gate.weight");
      arg("w1", tensorType({E, H, F}),
          moeBlock + ".experts.*." + gateProj + ".weight");
      arg("w3", tensorType({E, H, F}),
          moeBlock + ".experts.*." + up + ".weight");
      arg("w2", tensorType({E, F, H}),
          moeBlock + ".experts.*." + down + ".weight");
      std::string shared, sharedTypes;
      if (S) {
        // DeepSeek's MLP of all shared experts is `shared_experts`.
        std::string sharedBlock =
            deepseek ? "mlp.shared_experts." : "mlp.shared_expert.";
        arg("s1", tensorType({H, S}), sharedBlock + "gate_proj.weight");
        arg("s3", tensorType({H, S}), sharedBlock + "up_proj.weight");
        arg("s2", tensorType({S, H}), sharedBlock + "down_proj.weight");
        shared =
            " shared(" + ref("s1") + ", " + ref("s3") + ", " + ref("s2") + ")";
        sharedTypes = ", " + tensorType({H, S}) + ", " + tensorType({H, S}) +
                      ", " + tensorType({S, H});
        if (m.sharedGate) {
          arg("sgate", tensorType({H, 1}), "mlp.shared_expert_gate.weight");
          shared += " shared_gate(" + ref("sgate") + ")";
          sharedTypes += ", " + tensorType({H, 1});
        }
      }
      if (m.selectionBias) {
        arg("ebias", tensorType({E}), "mlp.gate.e_score_correction_bias",
            false);
        shared += " selection_bias(" + ref("ebias") + ")";
        sharedTypes += ", " + tensorType({E});
      }
      std::string variants;
      if (m.routedScale != 1.0)
        variants += " scale = " + formatFloat(m.routedScale);
      if (m.groups)
        variants +=
            " groups = " + llvm::itostr(m.groups) +
            " top_groups = " + llvm::itostr(m.topGroups) +
            (m.groupTopTwoSum ? " group_score<top2_sum>" : " group_score<max>");
      if (m.selectionBias)
        variants += " bias_update_rate = " + formatFloat(m.biasUpdateRate);
      // The router losses HF applies, one result each.
      std::string results = ffn, resultTypes = act, losses;
      if (m.auxLossCoef > 0) {
        results += ", %aux" + L;
        resultTypes += ", tensor<f32>";
        losses += m.sequenceAux          ? " aux_loss<sequence>"
                  : o.globalBatchAuxLoss ? " aux_loss<global_batch>"
                                         : " aux_loss<micro_batch>";
        routerLosses.push_back({"%aux" + L, "%aux_coef"});
      }
      if (m.zLossCoef > 0) {
        results += ", %z" + L;
        resultTypes += ", tensor<f32>";
        losses += " z_loss";
        routerLosses.push_back({"%z" + L, "%z_coef"});
      }
      if (!losses.empty())
        resultTypes = "(" + resultTypes + ")";
      os << "  " << results << " = moe.layer %m" << l << ", " << ref("gate")
         << ", " << ref("w1") << ", " << ref("w3") << ", " << ref("w2")
         << shared << " top_k = " << m.topK
         << (m.sigmoidScores ? " score<sigmoid>" : " score<softmax>")
         << (m.renormalize ? " renormalize" : "") << " activation<silu>"
         << variants << losses << " : (" << act << ", " << tensorType({H, E})
         << ", " << tensorType({E, H, F}) << ", " << tensorType({E, H, F})
         << ", " << tensorType({E, F, H}) << sharedTypes << ") -> "
         << resultTypes << "\n";
    } else {
      ffn = "%d" + L;
      arg("mlp1", tensorType({H, D}), "mlp.gate_proj.weight");
      arg("mlp3", tensorType({H, D}), "mlp.up_proj.weight");
      arg("mlp2", tensorType({D, H}), "mlp.down_proj.weight");
      os << "  " << ffn << " = dense.swiglu %m" << l << ", " << ref("mlp1")
         << ", " << ref("mlp3") << ", " << ref("mlp2") << " : " << act << ", "
         << tensorType({H, D}) << ", " << tensorType({H, D}) << ", "
         << tensorType({D, H}) << " -> " << act << "\n";
    }
    os << "  %h" << l + 1 << " = arith.addf %r" << l << ", " << ffn << " : "
       << act << "\n";
  }

  args.push_back("%final_norm: " + vecH + named("model.norm.weight", false));
  // A tied LM head reads the embedding table [V, H] transposed (HF's
  // checkpoints then keep only model.embed_tokens.weight).
  if (!m.tiedEmbeddings)
    args.push_back("%lm_head: " + tensorType({H, V}) +
                   named("lm_head.weight", true));
  std::string logits = "tensor<?x" + llvm::itostr(V) + "xf32>";
  os << "  %out = dense.rms_norm %h" << m.layers
     << ", %final_norm epsilon = " << eps << " : " << act << ", " << vecH
     << " -> " << act << "\n";
  if (m.tiedEmbeddings)
    os << "  %logits = dense.linear %out, %embed transposed : " << act << ", "
       << tensorType({V, H}) << " -> " << logits << "\n";
  else
    os << "  %logits = dense.linear %out, %lm_head : " << act << ", "
       << tensorType({H, V}) << " -> " << logits << "\n";
  std::string loss = routerLosses.empty() ? "%loss" : "%ce";
  os << "  " << loss << " = dense.cross_entropy %logits, %targets : " << logits
     << ", tensor<?xi32> -> tensor<f32>\n";
  if (!routerLosses.empty()) {
    // loss = ce + sum over MoE layers of coefficient x loss, HF's
    // coefficients spread over the layers (see auxiliaryLosses).
    auto moeLayers = static_cast<double>(llvm::count(m.moeLayer, true));
    if (m.auxLossCoef > 0)
      os << "  %aux_coef = arith.constant dense<"
         << formatFloat(m.auxPerLayer
                            ? m.auxLossCoef
                            : m.auxLossCoef * static_cast<double>(m.topK) /
                                  moeLayers)
         << "> : tensor<f32>\n";
    if (m.zLossCoef > 0)
      os << "  %z_coef = arith.constant dense<"
         << formatFloat(m.zLossCoef / moeLayers) << "> : tensor<f32>\n";
    std::string sum = "%ce";
    for (auto [i, term] : llvm::enumerate(routerLosses)) {
      std::string index = llvm::itostr(i);
      os << "  %rl" << index << " = arith.mulf " << term.second << ", "
         << term.first << " : tensor<f32>\n";
      std::string next =
          i + 1 == routerLosses.size() ? "%loss" : "%sum" + index;
      os << "  " << next << " = arith.addf " << sum << ", %rl" << index
         << " : tensor<f32>\n";
      sum = next;
    }
  }
  os << "  return %loss : tensor<f32>\n";

  return header(m, o) + "func.func @" + functionName.str() + "(\n    " +
         llvm::join(args, ",\n    ") + ") -> tensor<f32> {\n" + body + "}\n";
}

/// A bare MLIR symbol name: (letter | _) (letter | digit | _ | $ | .)*.
bool isSymbolName(StringRef name) {
  if (name.empty() || !(llvm::isAlpha(name[0]) || name[0] == '_'))
    return false;
  return llvm::all_of(name, [](char c) {
    return llvm::isAlnum(c) || c == '_' || c == '$' || c == '.';
  });
}

/// Parses and verifies `ir`; the diagnostics on failure.
std::optional<std::string> verifyIR(const std::string &ir) {
  mlir::DialectRegistry registry;
  laer::registerAllDialects(registry);
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(ir, "<laer-import output>",
                                       /*RequiresNullTerminator=*/false),
      llvm::SMLoc());
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr,
                                            mlir::ParserConfig(&context));
  if (module)
    return std::nullopt;
  return diagnostics.empty() ? std::string("the IR does not parse")
                             : diagnostics;
}

Expected<Family> familyOf(const json::Object &object) {
  const json::Value *type = object.get("model_type");
  if (!type)
    return fail("field 'model_type' is missing: laer imports mixtral, "
                "qwen2_moe, qwen3_moe, olmoe, deepseek_v2 and deepseek_v3 "
                "configs");
  std::optional<StringRef> name = type->getAsString();
  if (name == std::optional<StringRef>("mixtral"))
    return Family::Mixtral;
  if (name == std::optional<StringRef>("qwen2_moe"))
    return Family::Qwen2Moe;
  if (name == std::optional<StringRef>("qwen3_moe"))
    return Family::Qwen3Moe;
  if (name == std::optional<StringRef>("olmoe"))
    return Family::Olmoe;
  if (name == std::optional<StringRef>("deepseek_v2"))
    return Family::DeepseekV2;
  if (name == std::optional<StringRef>("deepseek_v3"))
    return Family::DeepseekV3;
  return fail("field 'model_type' = " + show(*type) +
              ": not a supported MoE model type (laer imports mixtral, "
              "qwen2_moe, qwen3_moe, olmoe, deepseek_v2 and deepseek_v3)");
}

} // namespace

laer::HFImportResult laer::importHFConfig(StringRef configJson,
                                          const HFImportOptions &options) {
  HFImportResult result;
  auto failWith = [&](Error error) {
    result.ok = false;
    result.ir.clear();
    result.diagnostics = llvm::toString(std::move(error));
    return result;
  };

  Expected<json::Value> parsed = json::parse(configJson);
  if (!parsed)
    return failWith(
        fail("not valid JSON: " + llvm::toString(parsed.takeError())));
  const json::Object *object = parsed->getAsObject();
  if (!object)
    return failWith(fail("expected a JSON object (a config.json)"));

  Expected<Family> family = familyOf(*object);
  if (!family)
    return failWith(family.takeError());
  Config config(*object, *object->getString("model_type"));

  std::string functionName = options.functionName.empty()
                                 ? config.modelType + "_lm"
                                 : options.functionName;
  if (!isSymbolName(functionName))
    return failWith(fail("--name '" + functionName +
                         "': not a function name (a letter or '_', then "
                         "letters, digits, '_', '$', '.')"));

  Expected<Model> model =
      Importer(config, *family, options, result.notes).run();
  if (!model)
    return failWith(model.takeError());

  std::string ir = writeIR(*model, options, functionName);
  if (std::optional<std::string> diagnostics = verifyIR(ir))
    return failWith(fail("internal error: the IR written for this config "
                         "does not verify:\n" +
                         *diagnostics));
  result.ok = true;
  result.ir = std::move(ir);
  return result;
}
