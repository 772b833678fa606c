"""laer.sim from Python: the simulator's results per method, the laer+
plans balancing a skewed load that the static layout cannot, bad settings
refused; no compiler loaded."""

import subprocess
import sys

import pytest

import laer.sim

MODEL = {
    "name": "small-moe",
    "hidden_size": 1024,
    "intermediate_size": 2048,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "vocab_size": 1000,
}


def run(**settings):
    options = dict(ranks=16, gpus_per_node=8, iterations=3, warmup=1,
                   workload="zipf", skew=1.5)
    options.update(settings)
    return laer.sim.simulate(MODEL, ("static", "laer+"), **options)


def test_laer_plus_balances_a_skewed_load():
    static, ours = run()
    assert (static["method"], ours["method"]) == ("static", "laer+")
    assert static["max_over_mean_rows"] > 1.3
    assert ours["max_over_mean_rows"] < static["max_over_mean_rows"]
    assert ours["moe_seconds"] < static["moe_seconds"]
    for result in (static, ours):
        assert result["iteration_seconds"] == pytest.approx(
            result["moe_seconds"] + result["dense_seconds"], rel=1e-6)
        assert result["rows_over_bound"] >= 1.0 - 1e-9
    assert set(laer.sim.METHODS) >= {"static", "laer+", "oracle"}


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="efficiency"):
        run(efficiency=2.0)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        laer.sim.simulate(MODEL, ("nope",), ranks=16)
    with pytest.raises(ValueError, match="ranks"):
        run(ranks=0)
    with pytest.raises(ValueError, match="lacks vocab_size"):
        laer.sim.simulate({k: v for k, v in MODEL.items()
                           if k != "vocab_size"})


def test_import_does_not_load_the_compiler():
    code = "import sys, laer.sim; print('laer._laer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False"
