"""laer.sim: iteration times of a MoE model per expert-placement method on
a simulated cluster, as ``laer-sim`` prints them.

Every method plans through the runtime's own relayout path (the planner,
its history window and prediction) on routing drawn from the planner's
workload library; the cost model prices compute, token all-to-alls and the
parameter restores per rank. Loads neither the compiler (LLVM) nor MPI.
"""

from . import _runtime

METHODS = tuple(_runtime.method_names())

_HF_KEYS = {
    "hidden": "hidden_size",
    "ffn": "intermediate_size",
    "experts": "num_local_experts",
    "top_k": "num_experts_per_tok",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "vocab": "vocab_size",
}


def simulate(model, methods=("static", "laer+"), *, ranks=32,
             gpus_per_node=8, nvlink_gbps=300.0, network_gbps=100.0,
             tflops=312.0, efficiency=0.6, slots_per_rank=0, layers=0,
             iterations=20, warmup=5, workload="drift", skew=1.0, history=2,
             prefetch=True, seed=1):
    """One result per method (a dict: ``iteration_seconds``, ``moe_seconds``,
    ``dense_seconds``, ``max_over_mean_rows``, ``rows_over_bound``,
    ``path_over_bound``, ``layouts_ahead``, ``planner_seconds``).

    ``model`` is a Mixtral-style HF config (dict with ``hidden_size``,
    ``intermediate_size``, ``num_local_experts``, ``num_experts_per_tok``,
    ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
    ``vocab_size``); ``methods`` from ``METHODS``; the cluster is ``ranks``
    GPUs in nodes of ``gpus_per_node`` with the given bandwidths (GB/s per
    GPU) and bf16 peak; ``slots_per_rank`` 0 picks the paper's; ``layers``
    0 simulates all of the model's. Bad settings raise ValueError."""
    missing = [key for key in _HF_KEYS.values() if key not in model]
    if missing:
        raise ValueError(f"the model config lacks {', '.join(missing)}")
    sizes = {ours: int(model[hf]) for ours, hf in _HF_KEYS.items()}
    return _runtime.simulate(
        model.get("name", "model"), sizes["hidden"], sizes["ffn"],
        sizes["experts"], sizes["top_k"], sizes["layers"], sizes["heads"],
        sizes["kv_heads"], sizes["vocab"], list(methods), ranks,
        gpus_per_node, nvlink_gbps, network_gbps, tflops, efficiency,
        slots_per_rank, layers, iterations, warmup, workload, skew, history,
        prefetch, seed)
