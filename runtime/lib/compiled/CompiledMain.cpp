//===- CompiledMain.cpp - main() of every binary laer-compile links -------===//
//
// The compiled model object defines the two entry points; this file (a
// static library, so the linker pulls it in for `main`) hands them to the
// runtime.
//
//===----------------------------------------------------------------------===//

#include "laer/runtime/compiled/RunCompiled.h"

extern "C" void _mlir_ciface_laer_model_declare(void *ctx);
extern "C" float
_mlir_ciface_laer_train_step(void *ctx, laer::rt::MemRef<std::int32_t, 1> *ids,
                             laer::rt::MemRef<std::int32_t, 1> *targets);

int main(int argc, char **argv) {
  // This library's version, fixed when the binary was linked; the shared
  // runtime it loads checks it against its own.
  return laer::rt::runCompiledMain(
      argc, argv,
      {&_mlir_ciface_laer_model_declare, &_mlir_ciface_laer_train_step},
      laer::rt::kCompiledAbiVersion);
}
