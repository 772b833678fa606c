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

int main(int argc, char **argv) {
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
