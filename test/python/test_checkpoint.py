"""laer.checkpoint: a 2-rank laer-train checkpoint read back by name,
against the files' bytes read here with nothing but struct and json; a
corrupted tensor is refused by its CRC-32; no compiler loaded."""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import laer.checkpoint

BIN = os.environ.get("LAER_BIN_DIR", "")
SOURCES = os.path.join(os.path.dirname(__file__), "..", "..", "runtime")


def raw_tensors(path):
    """name -> float32 array of a safetensors file, by its format alone."""
    blob = open(path, "rb").read()
    length = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + length])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32"
        begin, end = entry["data_offsets"]
        out[name] = np.frombuffer(blob[8 + length + begin:8 + length + end],
                                  dtype=np.float32).reshape(entry["shape"])
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    if not BIN or not os.path.exists(os.path.join(BIN, "laer-train")):
        pytest.skip("LAER_BIN_DIR does not hold laer-train")
    root = tmp_path_factory.mktemp("ck")
    subprocess.run([os.path.join(BIN, "laer-run"), "-np", "2",
                    os.path.join(BIN, "laer-train"), "--data", SOURCES,
                    "--suffix", ".cpp", "--steps", "2", "--batch", "4",
                    "--sequence", "16", "--no-progress", "--checkpoint-dir",
                    str(root), "--checkpoint-every", "2"],
                   check=True, capture_output=True, timeout=240)
    return root


def test_tensors_by_name_match_the_files(checkpoint):
    ck = laer.checkpoint.read(str(checkpoint))  # through `latest`
    assert (ck.step, ck.ranks) == (1, 2)
    folder = os.path.join(str(checkpoint), "step-1")
    rank0 = raw_tensors(os.path.join(folder, "rank0.safetensors"))
    rank1 = raw_tensors(os.path.join(folder, "rank1.safetensors"))
    dense = [n for n in rank0 if ".experts" not in n and ".adam_" not in n]
    assert "embed" in dense and "layer1.gate" in dense
    for name in dense:
        assert np.array_equal(ck.tensors[name], rank0[name]), name
    assert not any(".adam_" in name for name in ck.tensors)
    hidden, ffn, experts = 64, 128, 8
    for layer in (0, 1):
        full = np.concatenate([rank0[f"layer{layer}.experts"],
                               rank1[f"layer{layer}.experts"]], axis=1)
        hf = hidden * ffn
        w1 = ck.tensors[f"layer{layer}.experts.w1"]
        w3 = ck.tensors[f"layer{layer}.experts.w3"]
        w2 = ck.tensors[f"layer{layer}.experts.w2"]
        assert w1.shape == w3.shape == (experts, hidden, ffn)
        assert w2.shape == (experts, ffn, hidden)
        assert np.array_equal(w1.reshape(experts, -1), full[:, :hf])
        assert np.array_equal(w3.reshape(experts, -1), full[:, hf:2 * hf])
        assert np.array_equal(w2.reshape(experts, -1), full[:, 2 * hf:3 * hf])
    with_moments = laer.checkpoint.read(folder, moments=True)
    assert np.array_equal(with_moments.tensors["embed.adam_v"],
                          rank0["embed.adam_v"])
    assert with_moments.tensors["layer0.experts.w2.adam_m"].shape == \
        (experts, ffn, hidden)


def test_a_corrupted_tensor_is_refused(checkpoint, tmp_path):
    folder = tmp_path / "step-1"
    shutil.copytree(os.path.join(str(checkpoint), "step-1"), folder)
    path = folder / "rank1.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x40  # inside the last tensor's data
    path.write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="CRC|checksum"):
        laer.checkpoint.read(str(folder))
    with pytest.raises(FileNotFoundError, match="index.json"):
        laer.checkpoint.read(str(tmp_path / "nothing"))


def test_import_does_not_load_the_compiler():
    code = "import sys, laer.checkpoint; print('laer._laer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False"
