//===- FSEPPipeline.cpp - model IR to the scheduled FSEP program ----------===//

#include "laer/Pipelines/FSEPPipeline.h"

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
  mlir::PassPipelineRegistration<FSEPPipelineOptions>(
      "laer-fsep-pipeline",
      "Lower MoE layers to the overlapped per-rank FSEP program "
      "(moe-decompose, convert-moe-to-fsep, fsep-schedule)",
      buildFSEPPipeline);
}
