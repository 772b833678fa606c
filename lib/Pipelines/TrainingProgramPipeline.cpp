//===- TrainingProgramPipeline.cpp - model IR to an LLVM training step ----===//

#include "laer/Pipelines/TrainingProgramPipeline.h"

#include "laer/Conversion/Passes.h"
#include "laer/Dialect/FSEP/Transforms/Passes.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"
#include "laer/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

void laer::buildTrainingProgramPipeline(mlir::OpPassManager &pm,
                                        const TrainingProgramOptions &options) {
  pm.addPass(moe::createMoESplitSharedExperts());
  pm.addPass(createAutodiff());
  if (options.ranks > 0) {
    ConvertMoEToFSEPOptions fsep;
    fsep.numDevices = options.ranks;
    fsep.slotsPerDevice = options.slots;
    fsep.chunks = options.chunks;
    fsep.stepPlans = true;
    pm.addPass(createConvertMoEToFSEP(fsep));
    pm.addNestedPass<mlir::func::FuncOp>(fsep::createFSEPSchedule());
  }
  ConvertLAERToRuntimeOptions convert;
  convert.entry = options.entry;
  pm.addPass(createConvertLAERToRuntime(convert));
  pm.addPass(mlir::createCSEPass());
  if (!options.toLLVM)
    return;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::createConvertLinalgToLoopsPass());
  pm.addPass(mlir::memref::createExpandStridedMetadataPass());
  pm.addPass(mlir::createLowerAffinePass());
  pm.addPass(mlir::createSCFToControlFlowPass());
  pm.addPass(mlir::createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(mlir::createArithToLLVMConversionPass());
  pm.addPass(mlir::createConvertIndexToLLVMPass());
  pm.addPass(mlir::createConvertFuncToLLVMPass());
  pm.addPass(mlir::createConvertControlFlowToLLVMPass());
  pm.addPass(mlir::createReconcileUnrealizedCastsPass());
}

void laer::registerTrainingProgramPipeline() {
  mlir::PassPipelineRegistration<TrainingProgramOptions>(
      "laer-training-program",
      "Build a training step from a model IR: moe-split-shared-experts, "
      "laer-autodiff, (ranks > 0) "
      "convert-moe-to-fsep and fsep-schedule, convert-laer-to-runtime and "
      "(to-llvm) the upstream conversions to the LLVM dialect",
      buildTrainingProgramPipeline);
}

void laer::registerTrainingProgramDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::LLVM::LLVMDialect>();
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
}
