//===- TrainingProgramPipeline.h - model IR to an LLVM training step -*- C++
//-*-===//

#ifndef LAER_PIPELINES_TRAININGPROGRAMPIPELINE_H
#define LAER_PIPELINES_TRAININGPROGRAMPIPELINE_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
class DialectRegistry;
}

namespace laer {

struct TrainingProgramOptions
    : public mlir::PassPipelineOptions<TrainingProgramOptions> {
  Option<std::string> entry{
      *this, "entry",
      llvm::cl::desc("the loss function (default: the only one)")};
  Option<int64_t> ranks{
      *this, "ranks",
      llvm::cl::desc("lower MoE layers to the FSEP program of N ranks "
                     "(0: call the runtime's fused FSEP layer, any N)"),
      llvm::cl::init(0)};
  Option<int64_t> slots{
      *this, "slots",
      llvm::cl::desc("experts each rank computes per step (0: ceil(E / N) "
                     "+ 1)"),
      llvm::cl::init(0)};
  Option<int64_t> chunks{
      *this, "chunks",
      llvm::cl::desc("chunks of the token exchanges of each MoE layer"),
      llvm::cl::init(2)};
  Option<bool> toLLVM{*this, "to-llvm",
                      llvm::cl::desc("go on to the LLVM dialect"),
                      llvm::cl::init(true)};
};

/// laer-autodiff, (with ranks) convert-moe-to-fsep and fsep-schedule,
/// convert-laer-to-runtime, then (with to-llvm) upstream
/// conversions to the LLVM dialect: linalg to loops, strided metadata,
/// SCF to CF, and memref/arith/func/cf to LLVM.
void buildTrainingProgramPipeline(mlir::OpPassManager &pm,
                                  const TrainingProgramOptions &options);

/// Registers the pipeline as `laer-training-program`.
void registerTrainingProgramPipeline();

/// Dialects and translation interfaces the pipeline and LLVM IR emission
/// need beyond laer::registerAllDialects.
void registerTrainingProgramDialects(mlir::DialectRegistry &registry);

} // namespace laer

#endif // LAER_PIPELINES_TRAININGPROGRAMPIPELINE_H
