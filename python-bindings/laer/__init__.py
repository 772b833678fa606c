"""laer: compile and train Mixture-of-Experts models with FSEP.

The compiler is reached through :func:`run_pipeline` (IR text in, IR text
out), model IR from a Hugging Face config.json through
:func:`import_hf_config`, the runtime through the device queries: thin
wrappers over the C++ libraries. ``laer.torch.MoE`` is laer's FSEP layer
as a PyTorch module.

The compiler extension (``laer._laer``, with LLVM and MLIR) loads on the
first use of one of its names, so ``import laer.torch`` does not load it.
"""

_COMPILER_NAMES = (
    "CompileError",
    "GpuInfo",
    "built_with_cuda",
    "describe_devices",
    "gpus",
    "import_hf_config",
    "run_pipeline",
)

__all__ = list(_COMPILER_NAMES) + ["decompose"]


def __getattr__(name):
    if name in _COMPILER_NAMES:
        from . import _laer

        return getattr(_laer, name)
    raise AttributeError(f"module 'laer' has no attribute '{name}'")


def decompose(ir: str) -> str:
    """Split every ``moe.layer`` in ``ir`` into router/dispatch/experts/combine."""
    from . import _laer

    return _laer.run_pipeline(ir, "moe-decompose")
