//===- NoCudaMoEBackend.cpp - --device cuda without a CUDA backend --------===//

#include "laer/runtime/Error.h"
#include "laer/runtime/model/MoEBackend.h"
#include "laer/runtime/model/TrainingState.h"

std::unique_ptr<laer::rt::MoEBackend>
laer::rt::makeGpuMoEBackend(TrainingState &state, const MoEBackendOptions &) {
  fail({state.comm.rank(), -1, -1},
       "--device cuda: this runtime was built without its CUDA backend "
       "(nvcc was not found, or LAER_ENABLE_CUDA=OFF)");
}
