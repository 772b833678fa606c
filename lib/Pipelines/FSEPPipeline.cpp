//===- FSEPPipeline.cpp - model IR to the scheduled FSEP program ----------===//

#include "laer/Pipelines/FSEPPipeline.h"

#include "laer/Conversion/FSEPLimits.h"
#include "laer/Conversion/Passes.h"
#include "laer/Dialect/FSEP/Transforms/Passes.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"

void laer::buildFSEPPipeline(mlir::OpPassManager &pm,
                             const FSEPPipelineOptions &options) {
  pm.addPass(moe::createMoEDecompose());
  ConvertMoEToFSEPOptions convert;
  convert.numDevices = options.numDevices;
  convert.slotsPerDevice = options.slotsPerDevice;
  convert.chunks = options.chunks;
  convert.stepPlans = options.stepPlans;
  pm.addPass(createConvertMoEToFSEP(convert));
  fsep::FSEPScheduleOptions schedule;
  schedule.prefetch = options.prefetch;
  pm.addNestedPass<mlir::func::FuncOp>(fsep::createFSEPSchedule(schedule));
}

void laer::registerFSEPPipeline() {
  // Registered by hand (not PassPipelineRegistration) to check the options
  // when the pipeline is parsed: a missing num-devices is a one-line error
  // saying how to give it, not a pass failure with a module dump.
  mlir::registerPassPipeline(
      "laer-fsep-pipeline",
      "Lower MoE layers to the overlapped per-rank FSEP program "
      "(moe-decompose, convert-moe-to-fsep, fsep-schedule)",
      [](mlir::OpPassManager &pm, llvm::StringRef text,
         llvm::function_ref<mlir::LogicalResult(const llvm::Twine &)>
             errorHandler) {
        FSEPPipelineOptions options;
        if (mlir::failed(options.parseFromString(text)))
          return mlir::failure();
        if (options.numDevices < 1 || options.chunks < 1 ||
            options.slotsPerDevice < 0 || options.prefetch < 0 ||
            options.numDevices > kMaxFsepDevices ||
            options.chunks > kMaxFsepChunks ||
            options.slotsPerDevice > kMaxFsepSlotsPerDevice ||
            options.prefetch > 64)
          return errorHandler(
              "laer-fsep-pipeline: num-devices in [1, " +
              llvm::Twine(kMaxFsepDevices) + "], slots-per-device in [0, " +
              llvm::Twine(kMaxFsepSlotsPerDevice) + "], chunks in [1, " +
              llvm::Twine(kMaxFsepChunks) +
              "] and prefetch in [0, 64], got num-devices=" +
              llvm::Twine(options.numDevices.getValue()) +
              " slots-per-device=" +
              llvm::Twine(options.slotsPerDevice.getValue()) +
              " chunks=" + llvm::Twine(options.chunks.getValue()) +
              " prefetch=" + llvm::Twine(options.prefetch.getValue()) +
              "; give them as --laer-fsep-pipeline=\"num-devices=4 "
              "slots-per-device=2 chunks=2\"");
        buildFSEPPipeline(pm, options);
        return mlir::success();
      },
      [](llvm::function_ref<void(const mlir::detail::PassOptions &)>
             optionsHandler) { optionsHandler(FSEPPipelineOptions()); });
}
