//===- RuntimeModule.cpp - laer's FSEP layer for Python (laer._runtime) ---===//
//
// The runtime side of the Python package, without the compiler (no LLVM
// in the process): one FSEP MoE layer on the calling process's MPI
// communicator (started by mpi4py), re-planned by a planner every step.
// Arrays cross without copies: inputs are read in place, outputs hand
// their vectors to numpy, and the layer's parameter shards, gate and
// their gradients are numpy views of the layer's own memory (kept alive
// by the views). laer/torch.py builds laer.torch.MoE on it.
//
//===----------------------------------------------------------------------===//

#include "laer/planner/Bounds.h"
#include "laer/planner/Planner.h"
#include "laer/planner/Workloads.h"
#include "laer/runtime/comm/MpiCommunicator.h"
#include "laer/runtime/fsep/FsepMoELayer.h"
#include "laer/runtime/io/Safetensors.h"
#include "laer/sim/Simulator.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

namespace py = pybind11;
using namespace laer;

namespace {

/// An FSEP MoE layer with its communicator and relayout hook.
class PyFsepLayer {
public:
  PyFsepLayer(MPI_Comm comm, const rt::MoELayerConfig &config, int layerIndex,
              const std::string &planner, std::uint64_t seed, float expertScale,
              float gateScale)
      : comm_(comm), layer_(comm_, config, layerIndex) {
    planner::LayerSpec spec;
    spec.hidden = config.shape.hidden;
    spec.ffn = config.shape.ffn;
    spec.numExperts = config.numExperts;
    spec.topK = config.topK;
    spec.slotsPerRank = config.slotsPerRank;
    hook_ = std::make_unique<planner::PlannerHook>(
        planner::makePlanner(planner),
        planner::ClusterSpec::cpuNode(comm_.size()), spec);
    layer_.initialize(seed, expertScale, gateScale);
  }

  rt::FsepMoELayer &layer() { return layer_; }
  rt::Communicator &comm() { return comm_; }
  rt::RelayoutHook &hook() { return *hook_; }

private:
  rt::MpiCommunicator comm_;
  rt::FsepMoELayer layer_;
  std::unique_ptr<planner::PlannerHook> hook_;
};

/// `array` as float32 rows of width `width`, read in place: anything
/// else is a ValueError naming `what`.
std::span<const float> rowsOf(const py::array &array, std::int64_t width,
                              const char *what) {
  if (!py::isinstance<py::array_t<float>>(array) ||
      !array.dtype().is(py::dtype::of<float>()))
    throw py::value_error(std::string(what) + " must be float32, got " +
                          py::str(array.dtype()).cast<std::string>());
  if (array.ndim() != 2 || array.shape(1) != width)
    throw py::value_error(
        std::string(what) + " must have shape [tokens, " +
        std::to_string(width) + "], got " +
        py::str(py::tuple(py::cast(std::vector<py::ssize_t>(
                    array.shape(), array.shape() + array.ndim()))))
            .cast<std::string>());
  if (!(array.flags() & py::array::c_style))
    throw py::value_error(std::string(what) + " must be C-contiguous");
  return {static_cast<const float *>(array.data()),
          static_cast<std::size_t>(array.size())};
}

/// A vector handed to numpy as [rows, width] without a copy.
py::array_t<float> toArray(std::vector<float> values, std::int64_t width) {
  auto *owned = new std::vector<float>(std::move(values));
  py::capsule free(
      owned, [](void *p) { delete static_cast<std::vector<float> *>(p); });
  auto rows = static_cast<py::ssize_t>(owned->size()) / width;
  return py::array_t<float>({rows, static_cast<py::ssize_t>(width)},
                            owned->data(), free);
}

/// A writable view [rows, width] of the layer's memory at `data`, keeping
/// the layer (`self`) alive.
py::array_t<float> view(py::object self, float *data, std::int64_t rows,
                        std::int64_t width) {
  return py::array_t<float>(
      {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(width)}, data,
      self);
}

/// `counts` as the planner's [N, E] int64 rows: anything else is a
/// ValueError naming `what`.
std::span<const std::int64_t> countsOf(const py::array &counts,
                                       const char *what, py::ssize_t &ranks,
                                       py::ssize_t &experts) {
  if (!counts.dtype().is(py::dtype::of<std::int64_t>()) || counts.ndim() != 2 ||
      !(counts.flags() & py::array::c_style))
    throw py::value_error(std::string(what) +
                          " must be a C-contiguous int64 array [ranks, "
                          "experts], got " +
                          py::str(counts.dtype()).cast<std::string>() + " of " +
                          std::to_string(counts.ndim()) + " dimensions");
  ranks = counts.shape(0);
  experts = counts.shape(1);
  std::span<const std::int64_t> values(
      static_cast<const std::int64_t *>(counts.data()),
      static_cast<std::size_t>(counts.size()));
  for (std::int64_t v : values)
    if (v < 0)
      throw py::value_error(std::string(what) + " holds a negative count (" +
                            std::to_string(v) + ")");
  return values;
}

/// A plan as numpy arrays and its cost in the planner's model.
py::dict describePlan(const rt::Plan &plan, const planner::ClusterSpec &cluster,
                      const planner::LayerSpec &layer,
                      std::span<const std::int64_t> counts) {
  const rt::Layout &layout = plan.layout;
  int N = layout.numRanks(), C = layout.slotsPerRank();
  py::array_t<std::int32_t> slots({N, C});
  auto slotView = slots.mutable_unchecked<2>();
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < C; ++c)
      slotView(r, c) = layout.expertAt(r, c);
  const auto &replicas = layout.replicas();
  auto R = static_cast<py::ssize_t>(replicas.size());
  py::array_t<std::int32_t> replicaRank(R), replicaExpert(R);
  for (py::ssize_t i = 0; i < R; ++i) {
    replicaRank.mutable_at(i) = replicas[i].rank;
    replicaExpert.mutable_at(i) = replicas[i].expert;
  }
  auto entries = static_cast<py::ssize_t>(plan.routing.entries());
  py::array_t<std::int32_t> source(entries), replica(entries);
  py::array_t<std::int64_t> tokens(entries);
  py::ssize_t i = 0;
  for (int r = 0; r < plan.routing.numRanks(); ++r)
    for (const rt::Routing::Entry &entry : plan.routing.row(r)) {
      source.mutable_at(i) = r;
      replica.mutable_at(i) = entry.replica;
      tokens.mutable_at(i) = entry.tokens;
      ++i;
    }
  planner::StepCost cost = planner::evaluate(plan, cluster, layer);
  std::vector<std::int64_t> loads =
      planner::expertLoads(counts, N, layout.numExperts());
  py::dict result;
  result["slots"] = slots;
  result["replica_rank"] = replicaRank;
  result["replica_expert"] = replicaExpert;
  result["route_source"] = source;
  result["route_replica"] = replica;
  result["route_tokens"] = tokens;
  result["rank_rows"] = cost.rankTokens;
  result["critical_path"] = cost.criticalPath;
  result["max_over_mean_rows"] = cost.maxOverMeanTokens;
  result["busiest_rows_lower_bound"] =
      planner::maxRankRowsLowerBound(loads, N, C);
  return result;
}

rt::ScoreFunction scoreOf(const std::string &name) {
  if (name == "softmax")
    return rt::ScoreFunction::Softmax;
  if (name == "sigmoid")
    return rt::ScoreFunction::Sigmoid;
  throw py::value_error("score must be 'softmax' or 'sigmoid', got '" + name +
                        "'");
}

} // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "laer's FSEP MoE layer on MPI ranks (no compiler loaded)";
  py::register_exception<rt::RuntimeError>(m, "RuntimeError",
                                           PyExc_RuntimeError);

  m.def(
      "read_safetensors",
      [](const std::string &path) {
        rt::Metadata metadata;
        rt::TensorMap tensors;
        {
          py::gil_scoped_release release;
          tensors = rt::readSafetensors(path, &metadata);
        }
        py::dict arrays;
        for (auto &[name, tensor] : tensors) {
          auto *owned = new std::vector<float>(std::move(tensor.data));
          py::capsule free(owned, [](void *p) {
            delete static_cast<std::vector<float> *>(p);
          });
          std::vector<py::ssize_t> shape(tensor.shape.begin(),
                                         tensor.shape.end());
          arrays[py::str(name)] =
              py::array_t<float>(shape, owned->data(), free);
        }
        return py::make_tuple(arrays, metadata);
      },
      py::arg("path"),
      "The float32 tensors and metadata of a laer safetensors file, every "
      "tensor checked against its CRC-32");
  m.def(
      "simulate",
      [](const std::string &name, std::int64_t hidden, std::int64_t ffn,
         int experts, int topK, int layers, int heads, int kvHeads,
         std::int64_t vocab, const std::vector<std::string> &methods, int ranks,
         int gpusPerNode, double nvlinkGbps, double networkGbps, double tflops,
         double efficiency, int slots, int simulatedLayers, int iterations,
         int warmup, const std::string &workload, double skew, int history,
         bool prefetch, std::uint64_t seed) {
        sim::ModelShape model;
        model.name = name;
        model.hidden = hidden;
        model.ffn = ffn;
        model.numExperts = experts;
        model.topK = topK;
        model.layers = layers;
        model.heads = heads;
        model.kvHeads = kvHeads;
        model.vocab = vocab;
        sim::SimOptions options;
        options.cluster.numRanks = ranks;
        options.cluster.gpusPerNode = gpusPerNode;
        options.cluster.intraNodeBandwidth = nvlinkGbps * 1e9;
        options.cluster.interNodeBandwidth = networkGbps * 1e9;
        options.cluster.flopsPerSecond = tflops * 1e12;
        options.cluster.computeEfficiency = efficiency;
        options.slotsPerRank = slots;
        options.layers = simulatedLayers;
        options.iterations = iterations;
        options.warmup = warmup;
        options.history = history;
        options.prefetch = prefetch;
        options.trace.skew = skew;
        options.trace.seed = seed;
        std::vector<sim::MethodResult> results;
        try {
          options.workload = planner::parseWorkload(workload);
          planner::checkWorkloadOptions(options.workload, options.trace);
          sim::checkSimulation(model, options, methods);
        } catch (const std::exception &error) {
          throw py::value_error(error.what());
        }
        {
          py::gil_scoped_release release;
          results = sim::simulate(model, options, methods);
        }
        py::list out;
        for (const sim::MethodResult &r : results) {
          py::dict d;
          d["method"] = r.method;
          d["iteration_seconds"] = r.iterationSeconds;
          d["moe_seconds"] = r.moeSeconds;
          d["dense_seconds"] = r.denseSeconds;
          d["max_over_mean_rows"] = r.maxOverMeanTokens;
          d["rows_over_bound"] = r.rowsOverBound;
          d["path_over_bound"] = r.pathOverBound;
          d["layouts_ahead"] = r.layoutsAhead;
          d["planner_seconds"] = r.plannerSeconds;
          out.append(d);
        }
        return out;
      },
      "Iteration times of a MoE model per placement method on a simulated "
      "cluster (laer-sim's simulation)");
  m.def("method_names", [] {
    auto names = sim::methodNames();
    return std::vector<std::string>(names.begin(), names.end());
  });
  m.def("planner_names", [] {
    auto names = planner::plannerNames();
    return std::vector<std::string>(names.begin(), names.end());
  });
  m.def("workload_names", [] {
    auto names = planner::workloadNames();
    return std::vector<std::string>(names.begin(), names.end());
  });
  m.def(
      "plan",
      [](const py::array &counts, int slots, const std::string &name,
         std::int64_t hidden, std::int64_t ffn, int topK, int gpusPerNode,
         std::optional<py::array> layoutLoad) {
        py::ssize_t N = 0, E = 0;
        std::span<const std::int64_t> values = countsOf(counts, "counts", N, E);
        planner::PlannerInput input;
        input.cluster = planner::ClusterSpec{};
        input.cluster.numRanks = static_cast<int>(N);
        input.cluster.gpusPerNode = gpusPerNode;
        input.layer.hidden = hidden;
        input.layer.ffn = ffn;
        input.layer.numExperts = static_cast<int>(E);
        input.layer.topK = topK;
        input.layer.slotsPerRank = slots;
        input.counts = values;
        if (layoutLoad) {
          py::ssize_t n = 0, e = 0;
          input.layoutLoad = countsOf(*layoutLoad, "layout_load", n, e);
          if (n != N || e != E)
            throw py::value_error("layout_load must have the counts' shape");
        }
        if (N < 1 || E < 1 || slots < 1 || topK < 1 || gpusPerNode < 1 ||
            hidden < 1 || ffn < 1)
          throw py::value_error(
              "plan needs ranks, experts, slots_per_rank, top_k, "
              "gpus_per_node, hidden and ffn >= 1");
        std::unique_ptr<planner::Planner> chosen;
        try {
          chosen = planner::makePlanner(name);
        } catch (const std::exception &error) {
          throw py::value_error(error.what());
        }
        rt::Plan plan;
        {
          py::gil_scoped_release release;
          plan = chosen->plan(input);
        }
        return describePlan(plan, input.cluster, input.layer, values);
      },
      py::arg("counts"), py::arg("slots_per_rank"), py::arg("planner"),
      py::arg("hidden"), py::arg("ffn"), py::arg("top_k"),
      py::arg("gpus_per_node"), py::arg("layout_load") = py::none(),
      "A plan for `counts` [N, E] (tokens each rank routes to each expert)");
  m.def(
      "workload",
      [](const std::string &name, int steps, int ranks, int experts, int topK,
         std::int64_t tokensPerRank, double skew, std::uint64_t seed,
         int layer) {
        planner::WorkloadOptions options;
        options.numRanks = ranks;
        options.numExperts = experts;
        options.topK = topK;
        options.tokensPerRank = tokensPerRank;
        options.skew = skew;
        options.seed = seed;
        if (steps < 0)
          throw py::value_error("steps must be >= 0");
        planner::WorkloadKind kind;
        try {
          kind = planner::parseWorkload(name);
          planner::checkWorkloadOptions(kind, options);
        } catch (const std::exception &error) {
          throw py::value_error(error.what());
        }
        if (kind == planner::WorkloadKind::Replay)
          throw py::value_error("replay needs a recorded trace: use "
                                "laer-sim --workload replay");
        planner::Workload workload(kind, options, layer);
        py::array_t<std::int64_t> counts({steps, ranks, experts});
        auto *out = counts.mutable_data();
        for (int step = 0; step < steps; ++step) {
          std::vector<std::int64_t> next = workload.next();
          std::copy(next.begin(), next.end(),
                    out + static_cast<std::size_t>(step) * ranks * experts);
        }
        return counts;
      },
      py::arg("name"), py::arg("steps"), py::arg("ranks"), py::arg("experts"),
      py::arg("top_k"), py::arg("tokens_per_rank"), py::arg("skew"),
      py::arg("seed"), py::arg("layer"),
      "Routed counts [steps, N, E] of a workload of the planner's library");

  py::class_<PyFsepLayer>(m, "FsepLayer")
      .def(py::init([](std::int64_t fortranComm, std::int64_t hidden,
                       std::int64_t ffn, int experts, int topK, int slots,
                       int tokenChunks, int history, const std::string &planner,
                       const std::string &score, bool renormalize, double scale,
                       int layerIndex, std::uint64_t seed, float expertScale,
                       float gateScale, int groups, int topGroups,
                       const std::string &groupScore, bool selectionBias,
                       double biasUpdateRate, const std::string &auxLoss,
                       bool zLoss, std::int64_t sequenceLength) {
             int initialized = 0;
             MPI_Initialized(&initialized);
             if (!initialized)
               throw py::value_error(
                   "MPI is not initialized: import mpi4py.MPI first");
             rt::MoELayerConfig config;
             config.shape = {hidden, ffn};
             config.numExperts = experts;
             config.topK = topK;
             config.slotsPerRank = slots;
             config.tokenChunks = tokenChunks;
             config.historyWindow = history;
             config.routing.score = scoreOf(score);
             config.routing.renormalize = renormalize;
             config.routing.scale = scale;
             config.routing.groups = groups;
             config.routing.topGroups = topGroups;
             if (groupScore != "max" && groupScore != "top2sum")
               throw py::value_error("group_score must be 'max' or "
                                     "'top2sum', got '" +
                                     groupScore + "'");
             config.routing.groupScore = groupScore == "max"
                                             ? rt::GroupScore::Max
                                             : rt::GroupScore::TopTwoSum;
             config.routing.selectionBias = selectionBias;
             config.biasUpdateRate = biasUpdateRate;
             const char *auxNames[] = {"none", "micro", "global", "sequence"};
             auto aux =
                 std::find(std::begin(auxNames), std::end(auxNames), auxLoss);
             if (aux == std::end(auxNames))
               throw py::value_error("aux_loss must be 'none', 'micro', "
                                     "'global' or 'sequence', got '" +
                                     auxLoss + "'");
             config.losses.aux =
                 static_cast<rt::AuxLoss>(aux - std::begin(auxNames));
             config.losses.z = zLoss;
             config.losses.sequenceLength = sequenceLength;
             MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(fortranComm));
             return std::make_unique<PyFsepLayer>(comm, config, layerIndex,
                                                  planner, seed, expertScale,
                                                  gateScale);
           }),
           py::arg("comm"), py::arg("hidden"), py::arg("ffn"),
           py::arg("experts"), py::arg("top_k"), py::arg("slots_per_rank"),
           py::arg("token_chunks"), py::arg("history"), py::arg("planner"),
           py::arg("score"), py::arg("renormalize"), py::arg("scale"),
           py::arg("layer_index"), py::arg("seed"), py::arg("expert_scale"),
           py::arg("gate_scale"), py::arg("groups") = 1,
           py::arg("top_groups") = 1, py::arg("group_score") = "max",
           py::arg("selection_bias") = false, py::arg("bias_update_rate") = 0.0,
           py::arg("aux_loss") = "none", py::arg("z_loss") = false,
           py::arg("sequence_length") = 0,
           "An FSEP layer on the MPI communicator whose Fortran handle is "
           "`comm` (mpi4py: comm.py2f()), initialised from `seed` the same "
           "on every rank count")
      .def_property_readonly("rank",
                             [](PyFsepLayer &l) { return l.comm().rank(); })
      .def_property_readonly("size",
                             [](PyFsepLayer &l) { return l.comm().size(); })
      .def_property_readonly(
          "shard_size",
          [](PyFsepLayer &l) { return l.layer().experts().shardSize(); })
      .def(
          "forward",
          [](PyFsepLayer &l, const py::array &x, long step) {
            std::int64_t hidden = l.layer().config().shape.hidden;
            std::span<const float> rows = rowsOf(x, hidden, "the MoE input");
            std::vector<float> out;
            {
              py::gil_scoped_release release;
              out = l.layer().forward(rows, step, l.hook());
            }
            return toArray(std::move(out), hidden);
          },
          py::arg("x"), py::arg("step"),
          "This rank's tokens [T, H] through the layer (collective)")
      .def(
          "backward",
          [](PyFsepLayer &l, const py::array &dOut) {
            std::int64_t hidden = l.layer().config().shape.hidden;
            std::span<const float> rows =
                rowsOf(dOut, hidden, "the MoE output gradient");
            std::vector<float> dx;
            {
              py::gil_scoped_release release;
              dx = l.layer().backward(rows);
            }
            return toArray(std::move(dx), hidden);
          },
          py::arg("d_out"),
          "d(x) of the last forward; adds to the shards' and gate's "
          "gradients (collective)")
      .def("zero_grads", [](PyFsepLayer &l) { l.layer().zeroGrads(); })
      .def(
          "router_losses",
          [](PyFsepLayer &l) {
            rt::cpu::RouterLosses losses = l.layer().routerLosses();
            return py::make_tuple(losses.aux, losses.z);
          },
          "(aux, z) of the last forward")
      .def(
          "set_loss_gradients",
          [](PyFsepLayer &l, float dAux, float dZ) {
            const rt::MoELayerConfig &c = l.layer().config();
            if (c.losses.aux != rt::AuxLoss::None)
              l.layer().setAuxLossGradient(dAux);
            if (c.losses.z)
              l.layer().setZLossGradient(dZ);
          },
          py::arg("d_aux"), py::arg("d_z"),
          "d(loss)/d(aux) and d(loss)/d(z) for the next backward")
      .def(
          "expert_shards",
          [](py::object self) {
            rt::ExpertShards &s = self.cast<PyFsepLayer &>().layer().experts();
            return view(self, s.allParams().data(), s.numExperts(),
                        s.shardSize());
          },
          "This rank's shard of every expert [E, shard] (w1 | w3 | w2 "
          "flattened, cut in N), a view")
      .def(
          "expert_shard_grads",
          [](py::object self) {
            rt::ExpertShards &s = self.cast<PyFsepLayer &>().layer().experts();
            return view(self, s.allGrads().data(), s.numExperts(),
                        s.shardSize());
          },
          "Their gradients, summed over every rank's tokens, a view")
      .def(
          "gate",
          [](py::object self) {
            rt::FsepMoELayer &l = self.cast<PyFsepLayer &>().layer();
            return view(self, l.gate().data(), l.config().shape.hidden,
                        l.config().numExperts);
          },
          "The router weight [H, E] (replicated), a view")
      .def(
          "gate_grad",
          [](py::object self) {
            rt::FsepMoELayer &l = self.cast<PyFsepLayer &>().layer();
            return view(self, l.gateGrad().data(), l.config().shape.hidden,
                        l.config().numExperts);
          },
          "Its gradient, summed over every rank's tokens, a view")
      .def(
          "load_experts",
          [](PyFsepLayer &l, const py::array &full) {
            rt::ExpertShards &s = l.layer().experts();
            std::span<const float> values =
                rowsOf(full, s.shape().parameters(), "the full expert weights");
            if (static_cast<std::int64_t>(values.size()) !=
                s.numExperts() * s.shape().parameters())
              throw py::value_error("the full expert weights need " +
                                    std::to_string(s.numExperts()) + " rows");
            s.loadFull(values, {l.comm().rank(), l.layer().layerIndex(), -1});
          },
          py::arg("full"),
          "Takes this rank's shards of every expert's full weights [E, 3 H "
          "F] (w1 [H, F], w3 [H, F], w2 [F, H], row-major)")
      .def(
          "gather_experts",
          [](PyFsepLayer &l) {
            rt::ExpertShards &s = l.layer().experts();
            return toArray(s.gatherFullParams(l.comm()),
                           s.shape().parameters());
          },
          "Every expert's full weights [E, 3 H F] (collective)")
      .def(
          "gather_expert_grads",
          [](PyFsepLayer &l) {
            rt::ExpertShards &s = l.layer().experts();
            return toArray(s.gatherFullGrads(l.comm()), s.shape().parameters());
          },
          "Every expert's full gradients [E, 3 H F] (collective)")
      .def(
          "last_loads", [](PyFsepLayer &l) { return l.layer().globalLoads(); },
          "Tokens per expert over every rank in the last step");
}
