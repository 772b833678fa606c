"""laer: compile and train Mixture-of-Experts models with FSEP.

The compiler is reached through :func:`run_pipeline` (IR text in, IR text
out); the runtime through the device queries. Both are thin wrappers over
the C++ libraries.
"""

from ._laer import (  # noqa: F401
    CompileError,
    GpuInfo,
    built_with_cuda,
    describe_devices,
    gpus,
    run_pipeline,
)


def decompose(ir: str) -> str:
    """Split every ``moe.layer`` in ``ir`` into router/dispatch/experts/combine."""
    return run_pipeline(ir, "moe-decompose")
