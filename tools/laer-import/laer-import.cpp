//===- laer-import.cpp - Hugging Face config.json to model IR -------------===//
//
//   laer-import config.json [-o model.mlir] [--layers N] [--hidden-div D]
//               [--vocab V] [--seq-len S] [--aux-loss-batch micro|global]
//               [--name fn]
//
// A thin driver over laer::importHFConfig (docs/Importing.md).
//
//===----------------------------------------------------------------------===//

#include "laer/Target/HFConfigImport.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

// --help lists these only, not LLVM's own options.
static cl::OptionCategory category("laer-import options");

static cl::opt<std::string> input(cl::Positional,
                                  cl::desc("<config.json> ('-': stdin)"),
                                  cl::Required, cl::cat(category));
static cl::opt<std::string> output("o",
                                   cl::desc("output file (default: stdout)"),
                                   cl::value_desc("path"), cl::init("-"),
                                   cl::cat(category));
static cl::opt<int64_t> layers("layers",
                               cl::desc("keep the first N decoder layers"),
                               cl::value_desc("N"), cl::cat(category));
static cl::opt<int64_t>
    hiddenDiv("hidden-div",
              cl::desc("divide hidden_size, head_dim and the FFN widths by D "
                       "(each must divide exactly)"),
              cl::value_desc("D"), cl::init(1), cl::cat(category));
static cl::opt<int64_t> vocab("vocab", cl::desc("replace vocab_size"),
                              cl::value_desc("V"), cl::cat(category));
static cl::opt<int64_t>
    seqLen("seq-len",
           cl::desc("the attention's sequence length (default: "
                    "max_position_embeddings)"),
           cl::value_desc("S"), cl::cat(category));
enum class AuxLossBatch { Micro, Global };
static cl::opt<AuxLossBatch> auxLossBatch(
    "aux-loss-batch",
    cl::desc("the tokens whose expert loads the aux load-balancing loss "
             "counts"),
    cl::values(clEnumValN(AuxLossBatch::Micro, "micro",
                          "each rank's micro-batch, as HF (default)"),
               clEnumValN(AuxLossBatch::Global, "global",
                          "every data-parallel rank's (Megatron's "
                          "global-batch balancing)")),
    cl::init(AuxLossBatch::Micro), cl::cat(category));
static cl::opt<double> biasUpdateRate(
    "bias-update-rate",
    cl::desc("DeepSeek-V3: how far e_score_correction_bias moves per step "
             "(default 0.001; 0: frozen)"),
    cl::value_desc("u"), cl::cat(category));
static cl::opt<std::string>
    name("name", cl::desc("the function's name (default: <model_type>_lm)"),
         cl::value_desc("fn"), cl::init(""), cl::cat(category));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "laer-import: a Hugging Face MoE config.json to laer model IR\n");
  std::string shownName = input == "-" ? "<stdin>" : input.getValue();
  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(input, /*IsText=*/true);
  if (!buffer) {
    llvm::errs() << "laer-import: " << shownName
                 << ": cannot read: " << buffer.getError().message() << "\n";
    return 1;
  }

  laer::HFImportOptions options;
  if (layers.getNumOccurrences())
    options.layers = layers;
  options.hiddenDiv = hiddenDiv;
  if (vocab.getNumOccurrences())
    options.vocab = vocab;
  if (seqLen.getNumOccurrences())
    options.sequenceLength = seqLen;
  options.globalBatchAuxLoss = auxLossBatch == AuxLossBatch::Global;
  if (biasUpdateRate.getNumOccurrences())
    options.biasUpdateRate = biasUpdateRate;
  options.functionName = name;
  options.sourceName =
      input == "-" ? "-" : llvm::sys::path::filename(input).str();

  laer::HFImportResult result =
      laer::importHFConfig((*buffer)->getBuffer(), options);
  for (const std::string &note : result.notes)
    llvm::errs() << "laer-import: note: " << note << "\n";
  if (!result.ok) {
    llvm::errs() << "laer-import: " << shownName << ": " << result.diagnostics;
    if (result.diagnostics.empty() || result.diagnostics.back() != '\n')
      llvm::errs() << "\n";
    return 1;
  }

  std::error_code error;
  llvm::ToolOutputFile out(output, error, llvm::sys::fs::OF_Text);
  if (error) {
    llvm::errs() << "laer-import: " << output
                 << ": cannot write: " << error.message() << "\n";
    return 1;
  }
  out.os() << result.ir;
  out.keep();
  return 0;
}
