//===- RunCompiled.h - main of a binary laer-compile links ------*- C++ -*-===//

#ifndef LAER_RUNTIME_COMPILED_RUNCOMPILED_H
#define LAER_RUNTIME_COMPILED_RUNCOMPILED_H

#include "laer/runtime/compiled/CompiledModel.h"

namespace laer::rt {

/// Parses the training options, sets up MPI, the data and the model, and
/// trains `program`; a failure on any rank ends the job with its message.
int runCompiledMain(int argc, char **argv, CompiledProgram program);

} // namespace laer::rt

#endif // LAER_RUNTIME_COMPILED_RUNCOMPILED_H
