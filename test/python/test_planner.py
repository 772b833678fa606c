"""laer.planner from Python: plans that serve the counts, balance a skewed
load where the static layout cannot, and workloads with their documented
totals; without the compiler (LLVM) loaded."""

import subprocess
import sys

import numpy as np
import pytest

import laer.planner as lp


def test_import_does_not_load_the_compiler():
    code = ("import sys, laer.planner; "
            "assert 'laer._laer' not in sys.modules, sys.modules.keys(); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "ok"


def test_workloads_route_every_token():
    counts = lp.workload("zipf", steps=3, ranks=8, experts=16, top_k=2,
                         tokens_per_rank=512, skew=1.2, seed=4)
    assert counts.shape == (3, 8, 16)
    assert counts.dtype == np.int64
    assert (counts.sum(axis=2) == 512 * 2).all()
    assert (counts <= 512).all()
    # A skewed load: the most popular expert takes far more than the mean.
    loads = counts[0].sum(axis=0)
    assert loads.max() > 2 * loads.mean()
    assert set(lp.WORKLOADS) >= {"uniform", "zipf", "rotating", "bursts"}


@pytest.mark.parametrize("planner", ["static", "laer", "laer+"])
def test_plans_serve_exactly_the_counts(planner):
    counts = lp.workload("dominant", steps=1, ranks=8, experts=8,
                         tokens_per_rank=1024, seed=2)[0]
    plan = lp.plan(counts, slots_per_rank=2, planner=planner, gpus_per_node=4)
    assert plan.slots.shape == (8, 2)
    assert (plan.routed(8, 8) == counts).all()
    assert sum(plan.rank_rows) == counts.sum()
    # Every expert with tokens has a replica.
    assert set(np.nonzero(counts.sum(axis=0))[0]) <= set(plan.replica_expert)
    assert max(plan.rank_rows) >= plan.busiest_rows_lower_bound


def test_laer_plus_balances_what_static_cannot():
    counts = lp.workload("dominant", steps=1, ranks=8, experts=8,
                         tokens_per_rank=1024, seed=2)[0]
    static = lp.plan(counts, 2, "static", gpus_per_node=4)
    ours = lp.plan(counts, 2, "laer+", gpus_per_node=4)
    assert static.max_over_mean_rows > 1.5
    assert ours.max_over_mean_rows < 1.1
    assert ours.critical_path < static.critical_path


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="negative count"):
        lp.plan(-np.ones((4, 4), dtype=np.int64), 2)
    with pytest.raises(ValueError, match="integers"):
        lp.plan(np.ones((4, 4)) * 1.5, 2)
    with pytest.raises(ValueError, match=r"\[ranks, experts\]"):
        lp.plan(np.ones(4, dtype=np.int64), 2)
    with pytest.raises(ValueError, match="unknown|planner"):
        lp.plan(np.ones((4, 4), dtype=np.int64), 2, planner="nope")
    with pytest.raises(ValueError):
        lp.workload("nope", 1, 4, 4)
    # Too few slots for the experts: the planner's own message.
    with pytest.raises(RuntimeError, match="N \\* C"):
        lp.plan(np.ones((2, 8), dtype=np.int64), 2)
