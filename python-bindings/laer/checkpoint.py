"""laer.checkpoint: a laer checkpoint's tensors by name, as numpy arrays.

A checkpoint (``laer-train`` or a compiled binary, ``--checkpoint-dir``) is
a folder ``step-<n>`` with ``index.json`` and one safetensors file per
rank: dense parameters and gates stored once, each MoE layer's experts as
every rank's shard of every expert. ``read`` checks every tensor's CRC-32
(through the runtime's reader) and gives the experts whole, in laer's
layout: ``layer<l>.experts.w1`` and ``.w3`` [E, H, F], ``.w2`` [E, F, H]
(``x @ w1``, as opposed to ``nn.Linear``'s transposed weight). HF's layout
and names are ``laer-train --export-weights`` (or a compiled binary's).
Loads neither the compiler (LLVM) nor MPI's start-up.
"""

import json
import os
from dataclasses import dataclass, field

import numpy as np

from . import _runtime


@dataclass
class Checkpoint:
    """``step`` and ``ranks`` of the run that wrote it, its ``identity``
    (index.json: model sizes and run settings), ``tensors`` by name."""

    step: int
    ranks: int
    identity: dict
    tensors: dict = field(default_factory=dict)


def _step_folder(directory):
    """`directory` itself, or the checkpoint its `latest` names."""
    latest = os.path.join(directory, "latest")
    if not os.path.exists(os.path.join(directory, "index.json")) and \
            os.path.isfile(latest):
        with open(latest) as f:
            directory = os.path.join(directory, f.read().strip())
    if not os.path.isfile(os.path.join(directory, "index.json")):
        raise FileNotFoundError(f"no laer checkpoint at '{directory}' "
                                f"(index.json missing)")
    return directory


def _expert_sizes(identity, layer):
    """(H, F) of MoE layer `layer`: its own entries, else the model's."""
    for key in (f"layer{layer}.", ""):
        if f"{key}hidden" in identity and f"{key}ffn" in identity:
            return int(identity[f"{key}hidden"]), int(identity[f"{key}ffn"])
    raise ValueError(f"the checkpoint's index.json gives no hidden and ffn "
                     f"size for MoE layer {layer}")


def read(directory, moments=False):
    """The tensors of the checkpoint at ``directory`` (a ``step-<n>``
    folder, or a checkpoint directory whose ``latest`` names one); with
    ``moments`` also each parameter's AdamW moments (``<name>.adam_m``,
    ``<name>.adam_v``)."""
    folder = _step_folder(directory)
    with open(os.path.join(folder, "index.json")) as f:
        identity = json.load(f)
    files = identity.get("files") or sorted(
        name for name in os.listdir(folder) if name.endswith(".safetensors"))
    ranks = int(identity["ranks"])
    if len(files) != ranks:
        raise ValueError(f"checkpoint '{folder}' was written by {ranks} "
                         f"ranks but lists {len(files)} files")
    shards = [_runtime.read_safetensors(os.path.join(folder, name))[0]
              for name in files]
    suffixes = ("", ".adam_m", ".adam_v") if moments else ("",)
    tensors = {}
    for name, array in shards[0].items():
        base = name.removesuffix(".adam_m").removesuffix(".adam_v")
        if name != base and not moments:
            continue
        if base.endswith(".experts"):
            continue
        tensors[name] = array
    layers = sorted({int(name[len("layer"):name.index(".")])
                     for name in shards[0] if name.endswith(".experts")})
    for layer in layers:
        hidden, ffn = _expert_sizes(identity, layer)
        per_expert = 3 * hidden * ffn
        for suffix in suffixes:
            name = f"layer{layer}.experts{suffix}"
            full = np.concatenate([s[name] for s in shards], axis=1)
            if full.shape[1] < per_expert:
                raise ValueError(f"{name}: {full.shape[1]} elements per "
                                 f"expert over {ranks} ranks, H = {hidden} "
                                 f"and F = {ffn} need {per_expert}")
            full = full[:, :per_expert]
            experts = full.shape[0]
            hf = hidden * ffn
            tensors[f"layer{layer}.experts.w1{suffix}"] = \
                full[:, :hf].reshape(experts, hidden, ffn)
            tensors[f"layer{layer}.experts.w3{suffix}"] = \
                full[:, hf:2 * hf].reshape(experts, hidden, ffn)
            tensors[f"layer{layer}.experts.w2{suffix}"] = \
                full[:, 2 * hf:].reshape(experts, ffn, hidden)
    return Checkpoint(step=int(identity["step"]), ranks=ranks,
                      identity=identity, tensors=tensors)
