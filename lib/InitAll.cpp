//===- InitAll.cpp - register laer dialects and passes --------------------===//

#include "laer/InitAll.h"

#include "laer/Conversion/Passes.h"
#include "laer/Dialect/Dense/IR/DenseDialect.h"
#include "laer/Dialect/FSEP/IR/FSEPDialect.h"
#include "laer/Dialect/FSEP/Transforms/Passes.h"
#include "laer/Dialect/MoE/IR/MoEDialect.h"
#include "laer/Dialect/MoE/Transforms/Passes.h"
#include "laer/Interfaces/GradientOpInterface.h"
#include "laer/Pipelines/FSEPPipeline.h"
#include "laer/Pipelines/TrainingProgramPipeline.h"
#include "laer/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"

void laer::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<laer::moe::MoEDialect, laer::fsep::FSEPDialect,
                  laer::dense::DenseDialect, mlir::arith::ArithDialect,
                  mlir::bufferization::BufferizationDialect,
                  mlir::func::FuncDialect, mlir::linalg::LinalgDialect,
                  mlir::memref::MemRefDialect, mlir::scf::SCFDialect,
                  mlir::tensor::TensorDialect>();
  laer::registerUpstreamGradientModels(registry);
  laer::registerTrainingProgramDialects(registry);
}

void laer::registerAllPasses() {
  laer::moe::registerMoEPasses();
  laer::registerConversionPasses();
  laer::fsep::registerFSEPPasses();
  laer::registerFSEPPipeline();
  laer::registerTrainingProgramPipeline();
  laer::registerTransformsPasses();
}
