"""The compiler through the Python module."""

import pathlib
import re

import pytest

import laer

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def test_examples_verify_and_round_trip():
    for path in sorted(EXAMPLES.glob("*.mlir")):
        text = path.read_text()
        printed = laer.run_pipeline(text, source_name=str(path))
        assert laer.run_pipeline(printed) == printed, path
        generic = laer.run_pipeline(text, generic=True)
        assert laer.run_pipeline(generic) == printed, path


def test_decompose_replaces_every_layer():
    text = (EXAMPLES / "moe_layer.mlir").read_text()
    layers = text.count("moe.layer")
    out = laer.decompose(text)
    assert "moe.layer" not in out
    for stage in ("moe.router", "moe.dispatch", "moe.experts", "moe.combine"):
        assert out.count(stage) == layers, stage


def test_bad_ir_raises_with_location():
    bad = """
func.func @f(%x: tensor<4x8xf32>, %g: tensor<8x4xf32>) {
  %i, %w = moe.router %x, %g top_k = 5 score<softmax>
      : (tensor<4x8xf32>, tensor<8x4xf32>) -> (tensor<4x5xi32>, tensor<4x5xf32>)
  return
}
"""
    with pytest.raises(laer.CompileError) as info:
        laer.run_pipeline(bad, source_name="bad.mlir")
    message = str(info.value)
    assert re.search(r"bad\.mlir:3:\d+: error: .*top_k must be in \[1, E = 4\], got 5",
                     message), message


def test_unknown_pass_raises():
    text = (EXAMPLES / "moe_layer.mlir").read_text()
    with pytest.raises(laer.CompileError, match="no-such-pass"):
        laer.run_pipeline(text, "no-such-pass")
