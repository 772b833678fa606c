"""laer.planner: laer's load-balancing planners and routing workloads.

``plan(counts, slots_per_rank)`` lays E experts on N ranks of C slots each
(hot experts get replicas) and splits every rank's tokens among the
replicas, for ``counts[r, e]``, the tokens rank r routes to expert e: the
plan the runtime's relayout hook takes every step. ``workload(...)``
draws such counts from the library the benchmarks use (uniform, Zipf,
one dominant expert, drift, rotating hot experts, a sudden shift, bursts,
correlated choices). Neither loads the compiler (LLVM) nor starts MPI.
"""

from dataclasses import dataclass

import numpy as np

from . import _runtime

PLANNERS = tuple(_runtime.planner_names())
WORKLOADS = tuple(w for w in _runtime.workload_names() if w != "replay")


@dataclass
class Plan:
    """``slots`` [N, C]: the expert in each rank's slot (-1: empty);
    ``replica_rank``, ``replica_expert`` [R]: every replica; the routing as
    triplets ``route_source``, ``route_replica``, ``route_tokens`` (tokens
    rank ``route_source[i]`` sends to replica ``route_replica[i]``);
    ``rank_rows`` [N]: expert rows each rank computes; the cost model's
    ``critical_path`` (seconds of one layer step on the cluster described
    by the arguments) and ``max_over_mean_rows``;
    ``busiest_rows_lower_bound``: no plan's busiest rank computes fewer
    rows."""

    slots: np.ndarray
    replica_rank: np.ndarray
    replica_expert: np.ndarray
    route_source: np.ndarray
    route_replica: np.ndarray
    route_tokens: np.ndarray
    rank_rows: list
    critical_path: float
    max_over_mean_rows: float
    busiest_rows_lower_bound: int

    def routed(self, num_ranks, num_experts):
        """The routing summed per (source rank, expert) [N, E]: the
        counts it was planned for."""
        out = np.zeros((num_ranks, num_experts), dtype=np.int64)
        np.add.at(out, (self.route_source,
                        self.replica_expert[self.route_replica]),
                  self.route_tokens)
        return out


def _integers(array, what):
    """`array` as C-contiguous int64, refusing what is not integral
    (float counts would be truncated)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must hold integers, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def plan(counts, slots_per_rank, planner="laer+", *, hidden=4096,
         ffn=14336, top_k=2, gpus_per_node=8, layout_load=None):
    """A plan for ``counts`` [N, E] (integers >= 0) on N ranks of
    ``slots_per_rank`` slots, by ``planner`` (one of ``PLANNERS``);
    ``hidden``, ``ffn``, ``top_k`` and ``gpus_per_node`` describe the layer
    and the cluster to the cost model; ``layout_load`` [N, E], when given,
    is the load to lay experts out for (e.g. past steps), ``counts`` the
    tokens routed now."""
    counts = _integers(counts, "counts")
    if layout_load is not None:
        layout_load = _integers(layout_load, "layout_load")
    return Plan(**_runtime.plan(counts, slots_per_rank, planner, hidden, ffn,
                                top_k, gpus_per_node, layout_load))


def workload(name, steps, ranks, experts, *, top_k=2, tokens_per_rank=4096,
             skew=1.0, seed=1, layer=0):
    """``steps`` steps of counts [steps, N, E] of workload ``name`` (one of
    ``WORKLOADS``): each rank routes ``tokens_per_rank`` tokens to
    ``top_k`` experts each; ``skew`` is the Zipf exponent of expert
    popularity."""
    return _runtime.workload(name, steps, ranks, experts, top_k,
                             tokens_per_rank, skew, seed, layer)
