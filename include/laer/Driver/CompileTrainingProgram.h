//===- CompileTrainingProgram.h - model IR to a training binary -*- C++ -*-===//
//
// What laer-compile does, as a library: run the laer-training-program
// pipeline on a model IR, translate to LLVM IR, optimise, emit a native
// object in process, and link it with the runtime (liblaer_train.so and
// liblaer_compiled_main.a) into an executable with the system C++ driver.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_DRIVER_COMPILETRAININGPROGRAM_H
#define LAER_DRIVER_COMPILETRAININGPROGRAM_H

#include <string>

namespace laer {

enum class EmitKind { MLIR, LLVM, Object, Executable };

struct CompileOptions {
  EmitKind emit = EmitKind::Executable;
  /// The loss function (empty: the only one).
  std::string entry;
  /// > 0: lower MoE layers to the chunked, scheduled FSEP program of that
  /// many ranks (the binary then runs on exactly that many); 0: call the
  /// runtime's fused FSEP layer (any number of ranks).
  int64_t ranks = 0;
  /// Experts per rank (0: ceil(E / N) + 1) and token chunks, with ranks.
  int64_t slots = 0, chunks = 2;
  /// Where liblaer_train.so and liblaer_compiled_main.a are.
  std::string runtimeDir;
  /// LLVM optimisation level of the emitted code (0-3).
  unsigned optLevel = 2;
  /// LLVM code generator's optimisation level (0-3), or -1: 2, except 0 for
  /// programs of more than kLargeProgram instructions. Their step function
  /// is one huge body of runtime calls around full-size GEMMs, where -O2
  /// code generation costs seconds (DeepSeek-V3: 8 s of 13) and its glue
  /// does not show in the step time (bench/RESULTS.md).
  int codegenOptLevel = -1;
};

/// Above this many LLVM instructions (DeepSeek-V3's 61 layers: ~130k) the
/// automatic code generation level is 0.
constexpr uint64_t kLargeProgram = 100000;

struct CompileResult {
  bool ok = false;
  /// Diagnostics (with source locations) or the failing step's message.
  std::string error;
  /// Seconds spent in the MLIR pipeline, in LLVM (translation,
  /// optimisation, code generation) and linking.
  double pipelineSeconds = 0, llvmSeconds = 0, linkSeconds = 0;
};

/// Compiles `source` (named `sourceName` in diagnostics) into `output`.
CompileResult compileTrainingProgram(const std::string &source,
                                     const std::string &sourceName,
                                     const std::string &output,
                                     const CompileOptions &options);

} // namespace laer

#endif // LAER_DRIVER_COMPILETRAININGPROGRAM_H
