//===- RunPipeline.cpp - text in, pass pipeline, text out -----------------===//

#include "laer/Driver/RunPipeline.h"
#include "laer/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <mutex>

using namespace mlir;

namespace {
/// Pass registration mutates a process-wide registry; do it once.
void registerPassesOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    laer::registerAllPasses();
    registerCanonicalizerPass();
    registerCSEPass();
    registerSymbolDCEPass();
  });
}
} // namespace

laer::PipelineResult laer::runPipeline(const std::string &source,
                                       const std::string &pipeline,
                                       const std::string &sourceName,
                                       bool genericForm) {
  registerPassesOnce();
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  context.disableMultithreading();

  PipelineResult result;
  llvm::raw_string_ostream diagnostics(result.diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(source, sourceName), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagnostics);

  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(&context));
  if (!module)
    return result;
  if (!pipeline.empty()) {
    // Accept both "moe-decompose" and "builtin.module(moe-decompose)".
    std::string text = pipeline;
    if (text.rfind("builtin.module(", 0) != 0)
      text = "builtin.module(" + text + ")";
    FailureOr<OpPassManager> parsed = parsePassPipeline(text, diagnostics);
    if (failed(parsed))
      return result;
    PassManager pm(&context);
    static_cast<OpPassManager &>(pm) = std::move(*parsed);
    if (failed(pm.run(*module)))
      return result;
  } else if (failed(verify(*module))) {
    return result;
  }
  llvm::raw_string_ostream ir(result.ir);
  OpPrintingFlags flags;
  if (genericForm)
    flags.printGenericOpForm();
  module->print(ir, flags);
  result.ok = true;
  return result;
}
