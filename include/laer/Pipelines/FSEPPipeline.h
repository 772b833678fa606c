//===- FSEPPipeline.h - model IR to the scheduled FSEP program --*- C++ -*-===//

#ifndef LAER_PIPELINES_FSEPPIPELINE_H
#define LAER_PIPELINES_FSEPPIPELINE_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace laer {

struct FSEPPipelineOptions
    : public mlir::PassPipelineOptions<FSEPPipelineOptions> {
  Option<int64_t> numDevices{
      *this, "num-devices",
      llvm::cl::desc("ranks the experts are sharded over")};
  Option<int64_t> slotsPerDevice{
      *this, "slots-per-device",
      llvm::cl::desc("experts each rank restores and computes per step")};
  Option<int64_t> chunks{*this, "chunks",
                         llvm::cl::desc("chunks of the token exchanges"),
                         llvm::cl::init(1)};
  Option<int64_t> prefetch{*this, "prefetch",
                           llvm::cl::desc("layers ahead restores are issued"),
                           llvm::cl::init(1)};
  Option<bool> stepPlans{*this, "step-plans",
                         llvm::cl::desc("plan layouts from this step's counts"),
                         llvm::cl::init(false)};
};

/// moe-decompose, convert-moe-to-fsep and fsep-schedule with `options`.
void buildFSEPPipeline(mlir::OpPassManager &pm,
                       const FSEPPipelineOptions &options);

/// Registers the pipeline as `laer-fsep-pipeline`.
void registerFSEPPipeline();

} // namespace laer

#endif // LAER_PIPELINES_FSEPPIPELINE_H
