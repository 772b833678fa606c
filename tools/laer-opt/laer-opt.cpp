//===- laer-opt.cpp - the laer optimizer driver ---------------------------===//
//
// Parses model IR, runs laer and upstream passes, prints the result. All
// logic lives in the libraries; this file only wires them to MlirOptMain.
//
//===----------------------------------------------------------------------===//

#include "laer/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"

int main(int argc, char **argv) {
  // Loading LLVM registers every back end's flags (hundreds: AArch64,
  // AMDGPU, Polly, ...). Hide them from --help (they still parse); the
  // options MlirOptMain registers below (passes, pipelines, MLIR's own)
  // stay listed.
  static const llvm::StringSet<> kept = {"help",      "help-hidden",
                                         "help-list", "help-list-hidden",
                                         "version",   "color"};
  for (auto &[name, option] : llvm::cl::getRegisteredOptions())
    if (!kept.contains(name))
      option->setHiddenFlag(llvm::cl::ReallyHidden);
  mlir::DialectRegistry registry;
  laer::registerAllDialects(registry);
  laer::registerAllPasses();
  // Cleanups that users routinely chain after laer passes.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "laer optimizer driver\n", registry));
}
