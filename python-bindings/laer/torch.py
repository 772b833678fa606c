"""laer.torch: laer's FSEP MoE layer as a PyTorch module.

``MoE`` runs a Mixture-of-Experts layer (top-k router, SwiGLU experts) with
laer's Fully Sharded Expert Parallelism on the MPI ranks of the job that
runs the script (``mpirun -np N python3 train.py``; mpi4py starts MPI):
every rank holds 1/N of every expert's weights, gradients and optimizer
state, restores the experts it computes each step, and laer's planner
(``laer+`` by default) re-lays experts on the ranks every step from the
routed token counts. The dense parts of a model stay PyTorch's (use
``torch.distributed`` with gloo, or mpi4py, to average their gradients).

The module's parameters are views of the layer's own memory, without
copies: ``expert_shards`` (E parameters [shard], this rank's part of
each expert's w1 | w3 | w2, cut in N) and ``gate`` [H, E] (replicated). Any PyTorch
optimizer that works element-wise (SGD, Adam, AdamW, ...) updates them in
place and the layer computes with the updated weights. Their gradients
are averaged over the ranks by default (as DistributedDataParallel does
for dense parameters): the layer sums every rank's tokens, the module
divides by N.
"""

import numpy as np
import torch
from mpi4py import MPI

from . import _runtime


class _FsepFunction(torch.autograd.Function):
    """Forward and backward of the layer; returns the parameters'
    gradients of this backward (one copy: the layer's buffers are reused
    by the next backward)."""

    @staticmethod
    def forward(ctx, x, gate, module, *shards):
        ctx.module = module
        ctx.step = module._next_step()
        out = module._layer.forward(x.detach().numpy(), ctx.step)
        # Reduced over the router's scores only where the layer has a loss.
        aux, z = (module._layer.router_losses() if module._router_losses
                  else (0.0, 0.0))
        return (torch.from_numpy(out), torch.tensor(aux, dtype=torch.float32),
                torch.tensor(z, dtype=torch.float32))

    @staticmethod
    def backward(ctx, d_out, d_aux, d_z):
        module = ctx.module
        layer = module._layer
        # The layer keeps one step's routing and exchanges: the backward of
        # an older forward would use the newer one's.
        if ctx.step != module._step - 1:
            raise RuntimeError(
                f"laer.torch.MoE layer {module.layer_index}: backward of "
                f"the forward of step {ctx.step}, but the layer has run "
                f"forward since (step {module._step - 1}); one forward per "
                f"backward")
        layer.zero_grads()
        layer.set_loss_gradients(float(d_aux), float(d_z))
        dx = layer.backward(np.ascontiguousarray(d_out.detach().numpy()))
        scale = 1.0 / layer.size if module.average_gradients else 1.0
        d_shards = torch.from_numpy(layer.expert_shard_grads() * scale)
        d_gate = torch.from_numpy(layer.gate_grad() * scale)
        return (torch.from_numpy(dx), d_gate, None) + tuple(d_shards)


class MoE(torch.nn.Module):
    """A MoE layer on laer's FSEP runtime: ``y = sum_k w_k * FFN_e_k(x)``.

    ``hidden``, ``ffn``, ``experts``, ``top_k``: H, F, E, k. ``score``
    ``'softmax'`` or ``'sigmoid'``, ``renormalize`` the k weights,
    ``scale`` them after (routed scaling factor); ``groups``,
    ``top_groups``, ``group_score`` (``'max'`` or ``'top2sum'``):
    group-limited routing (DeepSeek); ``selection_bias`` with
    ``bias_update_rate``: DeepSeek-V3's aux-loss-free balancing;
    ``aux_loss`` (``'none'``, ``'micro'``, ``'global'``, ``'sequence'`` of
    ``sequence_length`` tokens) and ``z_loss``: after each forward
    ``module.aux_loss`` and ``module.z_loss`` are scalar tensors to add to
    the loss with their coefficients (their gradients reach the router). ``slots_per_rank``:
    experts each rank computes per step (default ceil(E / N) + 1, room for
    replicas of hot experts). ``planner``: ``'laer+'``, ``'laer'``,
    ``'flexmoe'`` or ``'static'``. ``token_chunks``: the token exchange in
    chunks pipelined with the experts. ``seed``: the initial weights, the
    same on every rank count (experts uniform in +-``expert_scale``, gate
    in +-``gate_scale``). ``comm``: an mpi4py communicator (default
    ``MPI.COMM_WORLD``).

    Inputs are float32 CPU tensors [..., H]; the layer sees them as rows
    [T, H], T may differ between ranks. Forward and backward are
    collective: every rank runs each (a rank whose loss does not use the
    output still backpropagates zeros). Each forward is a step of the
    planner's load history, evaluation ones too; a backward must follow
    the layer's latest forward.
    """

    def __init__(self, hidden, ffn, experts, top_k, *, score="softmax",
                 renormalize=True, scale=1.0, groups=1, top_groups=1,
                 group_score="max", selection_bias=False,
                 bias_update_rate=0.0, aux_loss="none", z_loss=False,
                 sequence_length=0, slots_per_rank=None, planner="laer+",
                 token_chunks=1, history=2, seed=0, expert_scale=0.1,
                 gate_scale=0.5, layer_index=0, average_gradients=True,
                 comm=None):
        super().__init__()
        comm = MPI.COMM_WORLD if comm is None else comm
        if slots_per_rank is None:
            slots_per_rank = -(-experts // comm.Get_size()) + 1
        self.hidden = hidden
        self.layer_index = layer_index
        self._router_losses = aux_loss != "none" or z_loss
        self.average_gradients = average_gradients
        self._layer = _runtime.FsepLayer(
            comm.py2f(), hidden, ffn, experts, top_k, slots_per_rank,
            token_chunks, history, planner, score, renormalize, scale,
            layer_index, seed, expert_scale, gate_scale, groups, top_groups,
            group_score, selection_bias, bias_update_rate, aux_loss, z_loss,
            sequence_length)
        # One parameter per expert (views of the layer's [E, shard]): an
        # optimizer's temporaries then stay small.
        shards = torch.from_numpy(self._layer.expert_shards())
        self.expert_shards = torch.nn.ParameterList(
            torch.nn.Parameter(shards[e]) for e in range(experts))
        self.gate = torch.nn.Parameter(torch.from_numpy(self._layer.gate()))
        self._step = 0

    def _next_step(self):
        step = self._step
        self._step += 1
        return step

    @property
    def rank(self):
        return self._layer.rank

    @property
    def world_size(self):
        return self._layer.size

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"laer.torch.MoE takes a torch.Tensor, got "
                            f"{type(x).__name__}")
        where = f"laer.torch.MoE layer {self.layer_index}"
        if x.device.type != "cpu":
            raise ValueError(f"{where} runs on CPU ranks in this build: the "
                             f"input is on {x.device}")
        if x.dtype != torch.float32:
            raise ValueError(f"{where} takes float32 inputs, got {x.dtype}")
        if x.dim() < 1 or x.shape[-1] != self.hidden:
            raise ValueError(f"{where} takes [..., {self.hidden}] inputs, "
                             f"got {list(x.shape)}")
        if (self.expert_shards[0].data_ptr() !=
                self._layer.expert_shards().ctypes.data or
                self.gate.data_ptr() != self._layer.gate().ctypes.data):
            raise RuntimeError("laer.torch.MoE's parameters no longer share "
                               "the layer's memory (moved or converted?): "
                               "keep them float32 on the CPU")
        rows = x.reshape(-1, self.hidden).contiguous()
        out, self.aux_loss, self.z_loss = _FsepFunction.apply(
            rows, self.gate, self, *self.expert_shards)
        return out.reshape(x.shape)

    def load_experts(self, w1, w3, w2):
        """Every expert's full weights as a plain PyTorch MoE holds them
        (``nn.Linear`` layout): w1, w3 [E, F, H], w2 [E, H, F]; each rank
        keeps its shards."""
        full = torch.cat([w1.transpose(1, 2).reshape(w1.shape[0], -1),
                          w3.transpose(1, 2).reshape(w3.shape[0], -1),
                          w2.transpose(1, 2).reshape(w2.shape[0], -1)], 1)
        self._layer.load_experts(
            np.ascontiguousarray(full.detach().numpy(), dtype=np.float32))

    def full_experts(self, grads=False):
        """Every expert's full weights (or the gradients of the last
        backward, before averaging) as ``(w1, w3, w2)`` in ``nn.Linear``
        layout (collective: every rank calls it)."""
        full = torch.from_numpy(self._layer.gather_expert_grads() if grads
                                else self._layer.gather_experts())
        e = full.shape[0]
        h, f = self.hidden, full.shape[1] // (3 * self.hidden)
        w1 = full[:, :h * f].reshape(e, h, f).transpose(1, 2)
        w3 = full[:, h * f:2 * h * f].reshape(e, h, f).transpose(1, 2)
        w2 = full[:, 2 * h * f:].reshape(e, f, h).transpose(1, 2)
        return w1, w3, w2

    def last_loads(self):
        """Tokens routed to each expert over every rank in the last step."""
        return list(self._layer.last_loads())
