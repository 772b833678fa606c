//===- LaerModule.cpp - the laer Python extension -------------------------===//
//
// Thin wrappers only: the logic lives in LAERDriver, LAERTarget and
// laer_runtime.
//
//===----------------------------------------------------------------------===//

#include "laer/Driver/RunPipeline.h"
#include "laer/Target/HFConfigImport.h"
#include "laer/runtime/DeviceInfo.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

namespace py = pybind11;

namespace {
/// Raised (as laer.CompileError) when IR fails to parse, verify or compile.
struct CompileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
} // namespace

PYBIND11_MODULE(_laer, m) {
  m.doc() = "laer: MoE compiler (MLIR) and FSEP runtime";

  py::register_exception<CompileError>(m, "CompileError", PyExc_RuntimeError);

  m.def(
      "run_pipeline",
      [](const std::string &ir, const std::string &pipeline,
         const std::string &source_name, bool generic) {
        laer::PipelineResult result;
        {
          py::gil_scoped_release release;
          result = laer::runPipeline(ir, pipeline, source_name, generic);
        }
        if (!result.ok)
          throw CompileError(result.diagnostics);
        return result.ir;
      },
      py::arg("ir"), py::arg("pipeline") = "",
      py::arg("source_name") = "<python>", py::arg("generic") = false,
      "Parse and verify `ir`, run the pass pipeline (e.g. 'moe-decompose'), "
      "return the printed result. Raises CompileError with the located "
      "diagnostics on failure.");

  m.def(
      "import_hf_config",
      [](const std::string &config, std::optional<int64_t> layers,
         int64_t hidden_div, std::optional<int64_t> vocab,
         std::optional<int64_t> seq_len, const std::string &name,
         const std::string &aux_loss_batch,
         std::optional<double> bias_update_rate) {
        laer::HFImportOptions options;
        if (aux_loss_batch != "micro" && aux_loss_batch != "global")
          throw py::value_error("aux_loss_batch must be 'micro' or "
                                "'global', got '" +
                                aux_loss_batch + "'");
        options.globalBatchAuxLoss = aux_loss_batch == "global";
        options.layers = layers;
        options.hiddenDiv = hidden_div;
        options.vocab = vocab;
        options.sequenceLength = seq_len;
        options.functionName = name;
        options.biasUpdateRate = bias_update_rate;
        laer::HFImportResult result;
        {
          py::gil_scoped_release release;
          result = laer::importHFConfig(config, options);
        }
        if (!result.ok)
          throw CompileError(result.diagnostics);
        for (const std::string &note : result.notes)
          if (PyErr_WarnEx(PyExc_UserWarning, note.c_str(), 1) != 0)
            throw py::error_already_set();
        return result.ir;
      },
      py::arg("config"), py::arg("layers") = py::none(),
      py::arg("hidden_div") = 1, py::arg("vocab") = py::none(),
      py::arg("seq_len") = py::none(), py::arg("name") = "",
      py::arg("aux_loss_batch") = "micro",
      py::arg("bias_update_rate") = py::none(),
      "Import a Hugging Face MoE config.json (its text) as laer model IR, "
      "verified; `layers`, `hidden_div`, `vocab`, `seq_len` scale it down "
      "(laer-import's options, docs/Importing.md), `name` names the "
      "function, `aux_loss_batch` ('micro' or 'global') the tokens whose "
      "loads the aux loss counts, `bias_update_rate` DeepSeek-V3's selection "
      "bias update. Raises CompileError naming the refused field; notes "
      "(e.g. an auxiliary loss HF would not apply) are UserWarnings.");

  py::class_<laer::rt::GpuInfo>(m, "GpuInfo")
      .def_readonly("ordinal", &laer::rt::GpuInfo::ordinal)
      .def_readonly("name", &laer::rt::GpuInfo::name)
      .def_readonly("compute_major", &laer::rt::GpuInfo::computeMajor)
      .def_readonly("compute_minor", &laer::rt::GpuInfo::computeMinor)
      .def_readonly("memory_bytes", &laer::rt::GpuInfo::memoryBytes)
      .def_readonly("multiprocessors", &laer::rt::GpuInfo::multiprocessors);
  m.def("built_with_cuda", &laer::rt::builtWithCuda);
  m.def("gpus", &laer::rt::listGpus);
  m.def("describe_devices", &laer::rt::describeDevices);
}
