//===- laer-opt-fuzzer.cpp - fuzz target over laer-opt's pipelines --------===//
//
// Each input is model IR text: parsed (and verified) and run through one of
// the pipelines users run, chosen by a hash of the input, with diagnostics
// swallowed. Errors are fine; a crash, a sanitizer report or a hang is a
// bug. Built with clang's -fsanitize=fuzzer (LAER_LIBFUZZER, see
// scripts/fuzz.sh) it is a libFuzzer target; otherwise its main runs the
// inputs named on the command line once each (the regression run ctest
// does over the repository's IR files).
//
//===----------------------------------------------------------------------===//

#include "laer/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/Hashing.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>

namespace {

/// What test/fuzz/mutate_ir.py runs laer-opt with (none: parse and verify).
constexpr const char *kPipelines[] = {
    "",
    "moe-decompose",
    "laer-fsep-pipeline{num-devices=4 slots-per-device=2 chunks=2}",
    "laer-autodiff",
    "canonicalize,cse",
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  laer::registerAllPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size) {
  // MLIR's lexer reads up to a terminating NUL (files are read with one);
  // the fuzzer's bytes have none.
  const std::string text(reinterpret_cast<const char *>(data), size);
  mlir::DialectRegistry registry;
  laer::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  context.disableMultithreading();
  mlir::ScopedDiagnosticHandler quiet(
      &context, [](mlir::Diagnostic &) { return mlir::success(); });
  mlir::ParserConfig config(&context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(text, config);
  if (!module)
    return 0;
  llvm::StringRef pipeline =
      kPipelines[llvm::hash_value(text) % std::size(kPipelines)];
  if (pipeline.empty())
    return 0;
  mlir::PassManager passes(&context);
  if (mlir::failed(mlir::parsePassPipeline(pipeline, passes))) {
    llvm::errs() << "laer-opt-fuzzer: pipeline '" << pipeline
                 << "' does not parse\n";
    std::abort(); // ours, not the input's: stop the fuzzer
  }
  (void)passes.run(*module);
  return 0;
}

#ifndef LAER_LIBFUZZER
// Each argument is one input. (LLVM's FuzzerCLI has such a main, but it is
// a static library over static LLVM, and Debian's MLIR links libLLVM.so.)
int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; ++i) {
    auto buffer = llvm::MemoryBuffer::getFile(argv[i]);
    if (!buffer) {
      llvm::errs() << "laer-opt-fuzzer: " << argv[i] << ": "
                   << buffer.getError().message() << "\n";
      return 1;
    }
    llvm::StringRef text = (*buffer)->getBuffer();
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t *>(text.data()),
                           text.size());
  }
  llvm::outs() << "laer-opt-fuzzer: " << argc - 1 << " inputs, no crash\n";
  return 0;
}
#endif
