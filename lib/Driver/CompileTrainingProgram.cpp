//===- CompileTrainingProgram.cpp - model IR to a training binary ---------===//

#include "laer/Driver/CompileTrainingProgram.h"
#include "laer/Conversion/FSEPLimits.h"
#include "laer/InitAll.h"
#include "laer/Pipelines/TrainingProgramPipeline.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <chrono>

using namespace mlir;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Emits `module` as a native object file at `path`.
std::string emitObject(llvm::Module &module, llvm::TargetMachine &machine,
                       const std::string &path) {
  std::error_code error;
  llvm::ToolOutputFile out(path, error, llvm::sys::fs::OF_None);
  if (error)
    return "cannot write '" + path + "': " + error.message();
  llvm::legacy::PassManager codegen;
  if (machine.addPassesToEmitFile(codegen, out.os(), nullptr,
                                  llvm::CodeGenFileType::ObjectFile))
    return "the target cannot emit object files";
  codegen.run(module);
  out.keep();
  return "";
}

} // namespace

laer::CompileResult laer::compileTrainingProgram(
    const std::string &source, const std::string &sourceName,
    const std::string &output, const CompileOptions &options) {
  CompileResult result;
  if (options.optLevel > 3) {
    result.error = "-O " + std::to_string(options.optLevel) +
                   ": LLVM's optimisation levels are 0 to 3";
    return result;
  }
  if (options.codegenOptLevel < -1 || options.codegenOptLevel > 3) {
    result.error = "--codegen-O " + std::to_string(options.codegenOptLevel) +
                   ": LLVM's optimisation levels are 0 to 3";
    return result;
  }
  auto outside = [&](const char *option, std::int64_t value, std::int64_t lo,
                     std::int64_t hi) {
    if (value >= lo && value <= hi)
      return false;
    result.error = std::string(option) + " " + std::to_string(value) +
                   ": must be in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]";
    return true;
  };
  if (outside("--ranks", options.ranks, 0, kMaxFsepDevices) ||
      outside("--slots", options.slots, 0, kMaxFsepSlotsPerDevice) ||
      outside("--chunks", options.chunks, 1, kMaxFsepChunks))
    return result;
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  llvm::raw_string_ostream diagnostics(result.error);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(source, sourceName), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagnostics);

  auto start = Clock::now();
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(&context));
  if (!module)
    return result;
  PassManager pm(&context);
  TrainingProgramOptions pipeline;
  pipeline.entry = options.entry;
  pipeline.ranks = options.ranks;
  pipeline.slots = options.slots;
  pipeline.chunks = options.chunks;
  buildTrainingProgramPipeline(pm, pipeline);
  if (failed(pm.run(*module)))
    return result;
  result.pipelineSeconds = since(start);
  if (options.emit == EmitKind::MLIR) {
    std::error_code error;
    llvm::ToolOutputFile out(output, error, llvm::sys::fs::OF_Text);
    if (error) {
      result.error = "cannot write '" + output + "': " + error.message();
      return result;
    }
    module->print(out.os());
    out.keep();
    result.ok = true;
    return result;
  }

  start = Clock::now();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, sourceName);
  if (!llvmModule) {
    result.error += "translation to LLVM IR failed";
    return result;
  }
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target) {
    result.error = "no LLVM target for " + triple.str() + ": " + error;
    return result;
  }
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, "generic", "", llvm::TargetOptions(), llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Default));
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(triple);
  if (llvm::Error failure = makeOptimizingTransformer(
          options.optLevel, /*sizeLevel=*/0, machine.get())(llvmModule.get())) {
    result.error = "LLVM optimisation failed: " + toString(std::move(failure));
    return result;
  }
  int codegenLevel = options.codegenOptLevel;
  if (codegenLevel < 0)
    codegenLevel = llvmModule->getInstructionCount() > kLargeProgram ? 0 : 2;
  machine->setOptLevel(static_cast<llvm::CodeGenOptLevel>(codegenLevel));
  if (options.emit == EmitKind::LLVM) {
    std::error_code ec;
    llvm::ToolOutputFile out(output, ec, llvm::sys::fs::OF_Text);
    if (ec) {
      result.error = "cannot write '" + output + "': " + ec.message();
      return result;
    }
    llvmModule->print(out.os(), nullptr);
    out.keep();
    result.llvmSeconds = since(start);
    result.ok = true;
    return result;
  }
  std::string object = output;
  llvm::SmallString<128> temporary;
  if (options.emit == EmitKind::Executable) {
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("laer-model", "o", temporary)) {
      result.error = "cannot create a temporary object file: " + ec.message();
      return result;
    }
    object = temporary.str().str();
  }
  result.error = emitObject(*llvmModule, *machine, object);
  result.llvmSeconds = since(start);
  if (!result.error.empty())
    return result;
  if (options.emit == EmitKind::Object) {
    result.ok = true;
    return result;
  }

  // Link: the model object, main() and the runtime library.
  start = Clock::now();
  llvm::FileRemover removeObject(object);
  std::string dir = options.runtimeDir;
  std::string runtime = dir + "/liblaer_train.so";
  std::string mainLib = dir + "/liblaer_compiled_main.a";
  for (const std::string &needed : {runtime, mainLib})
    if (!llvm::sys::fs::exists(needed)) {
      result.error =
          "runtime library '" + needed + "' not found (set --runtime-dir)";
      return result;
    }
  llvm::ErrorOr<std::string> linker = llvm::sys::findProgramByName("c++");
  if (!linker) {
    result.error = "no C++ compiler driver (c++) on PATH to link with";
    return result;
  }
  std::string rpath = "-Wl,-rpath," + dir;
  llvm::SmallVector<llvm::StringRef> args = {*linker, object, mainLib, runtime,
                                             rpath,   "-o",   output};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*linker, args, std::nullopt, {}, 0, 0,
                                         &message);
  result.linkSeconds = since(start);
  if (status != 0) {
    result.error = "linking '" + output + "' failed (" + *linker +
                   " exited with " + std::to_string(status) +
                   (message.empty() ? "" : ": " + message) + ")";
    return result;
  }
  result.ok = true;
  return result;
}
