//===- RunCompiled.h - main of a binary laer-compile links ------*- C++ -*-===//

#ifndef LAER_RUNTIME_COMPILED_RUNCOMPILED_H
#define LAER_RUNTIME_COMPILED_RUNCOMPILED_H

#include "laer/runtime/compiled/CompiledModel.h"

namespace laer::rt {

/// The version of the contract between compiled programs and this runtime:
/// the laerrt_* calls and what they do. Bumped with every change of either
/// (2: laerrt_adamw and laerrt_moe_update hand over the step's gradients;
/// the training loop applies AdamW after clipping and accumulation).
inline constexpr int kCompiledAbiVersion = 2;

/// Parses the training options, sets up MPI, the data and the model, and
/// trains `program`; a failure on any rank ends the job with its message.
/// `abiVersion` is the kCompiledAbiVersion the binary's main() was built
/// with (a static library linked into it): a binary that meets a
/// liblaer_train.so of another version stops with a message instead of
/// training with calls that mean something else.
int runCompiledMain(int argc, char **argv, CompiledProgram program,
                    int abiVersion);

} // namespace laer::rt

#endif // LAER_RUNTIME_COMPILED_RUNCOMPILED_H
