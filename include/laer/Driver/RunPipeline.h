//===- RunPipeline.h - text in, pass pipeline, text out ---------*- C++ -*-===//
//
// The compiler as a function, for callers that are not command-line tools
// (the Python bindings, tests): parse IR text, verify it, run a textual pass
// pipeline, print the result. Diagnostics are collected, not printed.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_DRIVER_RUNPIPELINE_H
#define LAER_DRIVER_RUNPIPELINE_H

#include <string>

namespace laer {

struct PipelineResult {
  bool ok = false;
  /// The printed IR after the pipeline (empty on failure).
  std::string ir;
  /// Every diagnostic, one per line, with its source location.
  std::string diagnostics;
};

/// Parses `source` (named `sourceName` in diagnostics), runs `pipeline`
/// (the `--pass-pipeline` syntax, e.g. "builtin.module(moe-decompose)"; an
/// empty string only verifies) and prints the result, generic form when
/// `genericForm` is set.
PipelineResult runPipeline(const std::string &source,
                           const std::string &pipeline,
                           const std::string &sourceName = "<input>",
                           bool genericForm = false);

} // namespace laer

#endif // LAER_DRIVER_RUNPIPELINE_H
