//===- laer-compile.cpp - model IR to a training binary -------------------===//
//
//   laer-compile model.mlir -o train [--emit=mlir|llvm|obj|exe]
//   mpirun -np 4 ./train --data DIR --planner laer+ ...
//
// A thin driver over laer::compileTrainingProgram.
//
//===----------------------------------------------------------------------===//

#include "laer/Driver/CompileTrainingProgram.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

// --help lists these only, not LLVM's own options.
static cl::OptionCategory category("laer-compile options");

static cl::opt<std::string> input(cl::Positional, cl::desc("<model.mlir>"),
                                  cl::Required, cl::cat(category));
static cl::opt<std::string> output("o", cl::desc("output file"),
                                   cl::value_desc("path"), cl::Required,
                                   cl::cat(category));
static cl::opt<laer::EmitKind>
    emit("emit", cl::desc("what to produce"),
         cl::values(clEnumValN(laer::EmitKind::MLIR, "mlir",
                               "the program in MLIR's LLVM dialect"),
                    clEnumValN(laer::EmitKind::LLVM, "llvm", "LLVM IR"),
                    clEnumValN(laer::EmitKind::Object, "obj", "an object file"),
                    clEnumValN(laer::EmitKind::Executable, "exe",
                               "a training binary (default)")),
         cl::init(laer::EmitKind::Executable), cl::cat(category));
static cl::opt<std::string> entry("entry",
                                  cl::desc("the loss function to train"),
                                  cl::init(""), cl::cat(category));
static cl::opt<std::string>
    runtimeDir("runtime-dir",
               cl::desc("where liblaer_train.so and liblaer_compiled_main.a "
                        "are (default: ../lib beside laer-compile)"),
               cl::init(""), cl::cat(category));
static cl::opt<int64_t>
    ranks("ranks",
          cl::desc("compile the chunked, overlapped FSEP program of N ranks "
                   "(run it with mpirun -np N); 0: the runtime's fused "
                   "FSEP layer, any number of ranks"),
          cl::init(0), cl::cat(category));
static cl::opt<int64_t> slots("slots",
                              cl::desc("with --ranks: experts each rank "
                                       "computes (0: ceil(E / N) + 1)"),
                              cl::init(0), cl::cat(category));
static cl::opt<int64_t> chunks("chunks",
                               cl::desc("with --ranks: chunks of each MoE "
                                        "layer's token exchanges"),
                               cl::init(2), cl::cat(category));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimisation level"),
                                  cl::init(2), cl::Prefix, cl::cat(category));
static cl::opt<int> codegenOptLevel(
    "codegen-O",
    cl::desc("LLVM code generator's optimisation level 0-3 (default: 2, or 0 "
             "for programs of over 100k instructions)"),
    cl::init(-1), cl::cat(category));
static cl::opt<bool> timing("time", cl::desc("print the time of each stage"),
                            cl::init(false), cl::cat(category));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "laer-compile: model IR to a training binary\n");
  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(input);
  if (!buffer) {
    llvm::WithColor::error() << "cannot read '" << input
                             << "': " << buffer.getError().message() << "\n";
    return 1;
  }
  laer::CompileOptions options;
  options.emit = emit;
  options.entry = entry;
  options.optLevel = optLevel;
  options.codegenOptLevel = codegenOptLevel;
  options.ranks = ranks;
  options.slots = slots;
  options.chunks = chunks;
  options.runtimeDir = runtimeDir;
  if (options.runtimeDir.empty()) {
    llvm::SmallString<256> dir(llvm::sys::path::parent_path(
        llvm::sys::fs::getMainExecutable(argv[0], (void *)&main)));
    llvm::sys::path::append(dir, "..", "lib");
    options.runtimeDir = dir.str().str();
  }
  laer::CompileResult result = laer::compileTrainingProgram(
      (*buffer)->getBuffer().str(), input, output, options);
  if (!result.ok) {
    llvm::errs() << result.error;
    if (!result.error.empty() && result.error.back() != '\n')
      llvm::errs() << "\n";
    return 1;
  }
  if (timing)
    llvm::outs() << llvm::format("laer-compile: pipeline %.3f s, LLVM %.3f s, "
                                 "link %.3f s\n",
                                 result.pipelineSeconds, result.llvmSeconds,
                                 result.linkSeconds);
  return 0;
}
