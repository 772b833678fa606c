//===- CompiledModel.cpp - a training program built by laer-compile -------===//

#include "laer/runtime/compiled/CompiledModel.h"
#include "laer/runtime/Limits.h"

#include <algorithm>

using namespace laer::rt;

CompiledModel::CompiledModel(Communicator &comm, CompiledProgram program,
                             const CompiledModelOptions &options)
    : options_(options), program_(program), state_(comm, {}) {
  if (!program.declare || !program.step)
    fail({comm.rank(), -1, -1}, "compiled program lacks its entry points");
  // The program's expert gradients are sums of every rank's mean loss's.
  state_.moeGradScale = 1.0f / static_cast<float>(comm.size());
  program.declare(this);
  if (sequence_ <= 0 || vocab_ <= 0)
    fail(where(), "compiled program declared no model (vocabulary ", vocab_,
         ", sequence length ", sequence_, ")");
  for (std::size_t i = 0; i < dense_.size(); ++i)
    if (dense_[i].shape.empty())
      fail(where(), "compiled program never declared dense parameter ", i);

  // Dense parameters in one buffer in declaration order: norms start at
  // one, matrices uniform with a 1/sqrt(fan-in) scale, from the seed - the
  // initialisation MoELanguageModel uses, so the two can be compared.
  for (const DenseDecl &decl : dense_)
    state_.addDense(decl.shape, decl.name);
  state_.allocateDense();
  std::size_t offset = state_.denseSize();
  for (std::size_t i = 0; i < dense_.size(); ++i)
    state_.initializeDense(state_.denseTensors[i].offset,
                           state_.denseTensors[i].size, dense_[i].fanIn,
                           options.seed);
  Metadata &identity = state_.identity;
  identity["vocab"] = std::to_string(vocab_);
  identity["dense_parameters"] = std::to_string(offset);
  identity["layers"] = std::to_string(moeConfigs_.size());
  for (std::size_t l = 0; l < moeConfigs_.size(); ++l) {
    MoELayerConfig config = moeConfigs_[l];
    if (config.numExperts == 0)
      fail(where(static_cast<int>(l)),
           "compiled program never declared MoE layer ", l);
    // A program lowered to fsep ops was scheduled for N ranks and C slots;
    // its layout types say so, and the runtime must run that shape.
    if (int ranks = moeRanks_[l]; ranks > 0 && ranks != comm.size())
      fail(where(static_cast<int>(l)), "the program was compiled for ", ranks,
           " ranks (laer-compile --ranks ", ranks, ") but runs on ",
           comm.size(), "; recompile or start it with mpirun -np ", ranks);
    if (config.slotsPerRank > 0 && options.slotsPerRank > 0 &&
        options.slotsPerRank != config.slotsPerRank)
      fail(where(static_cast<int>(l)), "--slots ", options.slotsPerRank,
           " differs from the ", config.slotsPerRank,
           " slots per rank the program was compiled for");
    if (config.slotsPerRank <= 0)
      config.slotsPerRank =
          options.slotsPerRank > 0
              ? options.slotsPerRank
              : checkedInt((std::int64_t{config.numExperts} + comm.size() - 1) /
                                   comm.size() +
                               1,
                           1, kMaxSlotsPerRank, where(static_cast<int>(l)),
                           "the default slots per rank (ceil(E / N) + 1; "
                           "set --slots)");
    config.historyWindow = options.historyWindow;
    // A sequence-wise aux loss spans the model's sequences.
    config.losses.sequenceLength = sequence_;
    state_.addMoELayer(config, options.seed);
    state_.moeNames.back() = moeNames_[l];
    std::string prefix = "layer" + std::to_string(l) + ".";
    identity[prefix + "experts"] = std::to_string(config.numExperts);
    identity[prefix + "hidden"] = std::to_string(config.shape.hidden);
    identity[prefix + "ffn"] = std::to_string(config.shape.ffn);
  }
  if (options.backend.device != "cpu")
    for (std::size_t l = 0; l < moeRanks_.size(); ++l)
      if (moeRanks_[l] > 0)
        fail(where(static_cast<int>(l)), "--device ", options.backend.device,
             ": the program was compiled for ", moeRanks_[l],
             " ranks (laer-compile --ranks): its fsep ops drive the CPU "
             "layers' phases; compile it without --ranks to run its MoE "
             "layers on another device");
  state_.placeMoELayers(options.backend);
}

void CompiledModel::declareModel(std::int64_t vocab, std::int64_t sequence) {
  // Token ids are int32; a sequence is at most --sequence's bound.
  if (vocab <= 0 || vocab > std::numeric_limits<std::int32_t>::max() ||
      sequence <= 0 || sequence > kMaxSequence)
    fail(where(), "laerrt_declare_model: vocabulary ", vocab,
         " and sequence length ", sequence, " must be in [1, 2^31) and [1, ",
         kMaxSequence, "]");
  vocab_ = vocab;
  sequence_ = sequence;
}

void CompiledModel::declareDense(std::int64_t index,
                                 std::vector<std::int64_t> shape,
                                 std::int64_t fanIn) {
  if (index < 0 || index > 1000000)
    fail(where(), "laerrt_declare_dense: bad parameter index ", index);
  if (fanIn < -1)
    fail(where(), "laerrt_declare_dense: parameter ", index, " has fan-in ",
         fanIn, " (-1: zeros, 0: ones, > 0: uniform)");
  for (std::int64_t d : shape)
    if (d <= 0)
      fail(where(), "laerrt_declare_dense: parameter ", index,
           " has a dimension of ", d);
  if (static_cast<std::size_t>(index) >= dense_.size())
    dense_.resize(index + 1);
  dense_[index].shape = std::move(shape);
  dense_[index].fanIn = fanIn;
}

void CompiledModel::declareMoE(std::int64_t layer, const MoELayerConfig &config,
                               int ranks) {
  if (layer < 0 || layer > 100000)
    fail(where(), "laerrt_declare_moe: bad layer index ", layer);
  if (config.numExperts <= 0 || config.topK <= 0 ||
      config.topK > config.numExperts || config.shape.hidden <= 0 ||
      config.shape.ffn <= 0)
    fail(where(static_cast<int>(layer)),
         "laerrt_declare_moe: ", config.numExperts, " experts, top-",
         config.topK, ", hidden ", config.shape.hidden, ", ffn ",
         config.shape.ffn, " is not a MoE layer");
  if (ranks < 0 || config.slotsPerRank < 0)
    fail(where(static_cast<int>(layer)), "laerrt_declare_moe: ", ranks,
         " ranks and ", config.slotsPerRank, " slots per rank");
  checkExpertStorage(config.shape, config.numExperts,
                     where(static_cast<int>(layer)));
  if (static_cast<std::size_t>(layer) >= moeConfigs_.size()) {
    MoELayerConfig undeclared;
    undeclared.numExperts = 0;
    moeConfigs_.resize(layer + 1, undeclared);
    moeRanks_.resize(layer + 1, 0);
    moeNames_.resize(layer + 1);
  }
  moeConfigs_[layer] = config;
  moeRanks_[layer] = ranks;
}

void CompiledModel::nameDense(std::int64_t index, TensorName name) {
  if (index < 0 || static_cast<std::size_t>(index) >= dense_.size())
    fail(where(), "laerrt_name_dense: no dense parameter ", index, " declared");
  checkName(name, dense_[index].shape.size() == 2,
            "dense parameter " + std::to_string(index));
  dense_[index].name = std::move(name);
}

void CompiledModel::nameMoE(std::int64_t layer, std::int64_t part,
                            TensorName name) {
  if (layer < 0 || static_cast<std::size_t>(layer) >= moeConfigs_.size())
    fail(where(), "laerrt_name_moe: no MoE layer ", layer, " declared");
  MoETensorNames &names = moeNames_[layer];
  TensorName *parts[] = {&names.gate, &names.w1, &names.w3, &names.w2,
                         &names.selectionBias};
  if (part < 0 || part > 4)
    fail(where(static_cast<int>(layer)), "laerrt_name_moe: part ", part,
         " is not one of 0 (gate), 1 (w1), 2 (w3), 3 (w2), 4 (selection "
         "bias)");
  bool expert = part >= 1 && part <= 3;
  if (expert != (name.name.find('*') != std::string::npos) ||
      std::count(name.name.begin(), name.name.end(), '*') > 1)
    fail(where(static_cast<int>(layer)), "laerrt_name_moe: '", name.name,
         "' must have ", expert ? "one '*' (the expert's number)" : "no '*'");
  checkName(name, part != 4, "MoE layer " + std::to_string(layer));
  *parts[part] = std::move(name);
}

void CompiledModel::checkName(const TensorName &name, bool matrix,
                              const std::string &what) const {
  if (name.name.empty())
    fail(where(), "the name of ", what, " is empty");
  if (name.transposed && !matrix)
    fail(where(), what, " ('", name.name,
         "') is a vector but its name "
         "says transposed");
}

std::span<float> CompiledModel::denseSlice(std::vector<float> &buffer,
                                           std::int64_t index) {
  if (index < 0 || static_cast<std::size_t>(index) >= dense_.size())
    fail(where(), "no dense parameter ", index, " (the program declared ",
         dense_.size(), ")");
  const DenseTensor &tensor = state_.denseTensors[index];
  return std::span<float>(buffer).subspan(tensor.offset, tensor.size);
}

std::span<float> CompiledModel::denseParameter(std::int64_t index) {
  return denseSlice(state_.dense, index);
}

std::span<float> CompiledModel::denseGradient(std::int64_t index) {
  return denseSlice(state_.denseGrad, index);
}

std::span<float> CompiledModel::denseMoment(std::int64_t index, bool second) {
  return denseSlice(second ? state_.denseV : state_.denseM, index);
}

const MoELayerConfig &CompiledModel::moeConfig(std::int64_t layer) {
  if (layer < 0 || static_cast<std::size_t>(layer) >= state_.moe.size())
    fail(where(), "no MoE layer ", layer, " (the program declared ",
         state_.moe.size(), ")");
  return state_.moe[layer]->config();
}

FsepMoELayer &CompiledModel::moeLayer(std::int64_t layer) {
  moeConfig(layer); // validates the index
  if (options_.backend.device != "cpu")
    fail(where(static_cast<int>(layer)),
         "an fsep op ran with the MoE "
         "layers on ",
         moeBackend().describe(), "; fsep ops drive CPU layers");
  return *state_.moe[layer];
}

RelayoutHook &CompiledModel::hook() {
  if (!hook_)
    fail(where(), "an MoE layer ran outside a training step");
  return *hook_;
}

StepResult
CompiledModel::accumulateGradients(std::span<const std::int32_t> ids,
                                   std::span<const std::int32_t> targets,
                                   long step, RelayoutHook &hook) {
  step_ = step;
  if (ids.size() != targets.size() || ids.empty() ||
      static_cast<std::int64_t>(ids.size()) % sequence_ != 0)
    fail(where(), "training batch has ", ids.size(), " ids and ",
         targets.size(), " targets; both must be whole sequences of ",
         sequence_, " (the compiled model's sequence length)");
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_ || targets[i] < 0 ||
        targets[i] >= vocab_)
      fail(where(), "token ", i, " (id ", ids[i], ", target ", targets[i],
           ") is outside the compiled model's vocabulary of ", vocab_);
  hook_ = &hook;
  auto memref = [](std::span<const std::int32_t> data) {
    auto *pointer = const_cast<std::int32_t *>(data.data());
    return MemRef<std::int32_t, 1>{
        pointer, pointer, 0, {static_cast<std::int64_t>(data.size())}, {1}};
  };
  MemRef<std::int32_t, 1> idsRef = memref(ids), targetsRef = memref(targets);
  double loss = program_.step(this, &idsRef, &targetsRef);
  hook_ = nullptr;
  Communicator &comm = state_.comm;
  comm.allReduceSum(std::span<double>(&loss, 1));
  StepResult result;
  result.loss = loss / comm.size();
  for (std::size_t l = 0; l < state_.moe.size(); ++l)
    result.maxOverMean.push_back(maxOverMeanRows(
        rowsPerRank(moeBackend().lastPlan(static_cast<int>(l)))));
  return result;
}
