"""laer: compile and train Mixture-of-Experts models with FSEP.

The compiler is reached through :func:`run_pipeline` (IR text in, IR text
out), model IR from a Hugging Face config.json through
:func:`import_hf_config`, the runtime through the device queries: thin
wrappers over the C++ libraries.
"""

from ._laer import (  # noqa: F401
    CompileError,
    GpuInfo,
    built_with_cuda,
    describe_devices,
    gpus,
    import_hf_config,
    run_pipeline,
)


def decompose(ir: str) -> str:
    """Split every ``moe.layer`` in ``ir`` into router/dispatch/experts/combine."""
    return run_pipeline(ir, "moe-decompose")
