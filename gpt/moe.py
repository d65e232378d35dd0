"""The GPT's MLP as a mixture of experts (Switch Transformer, GShard, Mixtral): a router sends each
token to k of n_expert MLPs, so a token runs through k MLPs' parameters while the model holds n_expert.

    logits = x W_router                 (N, E)   one score per expert
    probs  = softmax(logits)            (N, E)
    choice = the k largest probs' experts (N, k)   no gradient: a choice is a discrete pick
    weights = probs at choice           (N, k)   k = 1 (Switch): as they are; k = 2 (GShard, Mixtral):
                                                 divided by their sum
    y[n] = sum_j weights[n, j] * expert_{choice[n, j]}(x[n])          (N, C)

Top-1 weights are not renormalized: p / p would be 1 and the language-model loss would no longer
reach the router (its only gradient would be the balance loss). For k >= 2 they are, as GShard and
Mixtral do, so a token's output is a weighted mean of its experts' whatever the router's confidence;
the router's gradient then reaches only the chosen experts' logits (docs/chapters/11_experts.md
derives both).

Capacity (training only): each expert takes at most ceil(capacity_factor * N * k / E) assignments
(a token's j-th choice); first choices go before any second choice, and within a choice earlier
tokens of the batch go first, so no token's fate depends on later tokens of its own sequence. An
assignment over capacity is dropped: its term of y is 0, and a token whose every choice is dropped
gets y = 0, so the residual stream carries it past the block unchanged. In eval mode (model.eval(),
sampling) nothing is dropped, so a token's output depends on itself alone and the KV cache gives
the same logits as a full forward.

Losses (training only) in `aux_loss`, which GPT.forward adds to the cross-entropy:
    balance = E * sum_i f_i P_i    (Switch, eq. 4): f_i the fraction of the N k assignments routed to
              expert i (a count: no gradient), P_i the mean router probability of expert i; 1 when
              both are uniform, E when every token goes to one expert
    z       = mean_n logsumexp(logits_n)^2   (ST-MoE's router z-loss: keeps the logits small)
    aux_loss = router_aux_loss_coef * balance + router_z_loss_coef * z   (0.01 and 0 by default, Switch's)

Each expert is the dense MLP (c_fc, GELU, c_proj) with expert_hidden channels, its own module, so
the state dict reads `mlp.experts.0.c_fc.weight` (Mixtral's per-expert layout), `mlp.router.weight`
(E, C). The experts run one after another on their own rows (tokens sorted by expert): E matmuls of
the rows each really has, where one batched matmul over stacked (E, C, H) weights would need every
expert padded to capacity, computing empty rows. The row counts are read on the host once per layer
(on a GPU, a wait), to cut the rows.

Shapes: B batch, T time, C n_embd, N = B T tokens, E n_expert, k expert_top_k, H expert_hidden,
M kept assignments.

Read next: tokenizer.py.
"""
from __future__ import annotations

import math
from typing import Any

import minigrad.functional as F
from minigrad import nn
from minigrad.backend import Array, get_array_module
from minigrad.ops.experts import combine, dispatch
from minigrad.tensor import Tensor


class Expert(nn.Module):
    """The dense MLP, C -> H -> C, for one expert's rows."""

    def __init__(self, n_embd: int, hidden: int, bias: bool, gelu: str) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.gelu = nn.GELU(approximate=gelu)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))  # (rows, C) -> (rows, H) -> (rows, C)


def capacity(n_tokens: int, n_expert: int, top_k: int, capacity_factor: float) -> int:
    """The most assignments one expert takes: ceil(capacity_factor * N * k / E)."""
    return math.ceil(capacity_factor * n_tokens * top_k / n_expert)


def route(choice: Array, n_expert: int, cap: int | None) -> tuple[Array, list[int], list[int]]:
    """choice (N, k) expert ids -> (assignment, kept, routed): assignment (M,) the kept a = n k + j,
    sorted by expert (within one, in priority order); kept and routed (E,) host lists, the
    assignments each expert keeps and was sent. cap None keeps all. Priority: p = j N + n, first
    choices before second ones, earlier tokens first."""
    xp = get_array_module(choice)
    N, k = choice.shape
    expert = choice.T.reshape(-1)  # (k N,) in priority order p = j N + n
    p = xp.arange(k * N)
    sent = expert[:, None] == xp.arange(n_expert)[None, :]  # (k N, E) one-hot
    keep = xp.ones(k * N, dtype=bool)
    if cap is not None:
        position = (xp.cumsum(sent, axis=0) * sent).sum(axis=1) - 1  # (k N,) place in its expert's queue
        keep = position < cap
    counts = xp.stack([(sent & keep[:, None]).sum(axis=0), sent.sum(axis=0)]).tolist()  # (2, E) to the host
    kept, routed = counts
    key = xp.where(keep, expert * (k * N) + p, n_expert * k * N)  # by expert, then priority; dropped last
    order = xp.argsort(key)[: sum(kept)]  # (M,) keys are distinct: any sort gives this order
    assignment = (p[order] % N) * k + p[order] // N  # (M,) a = n k + j
    return assignment, kept, routed


class MoE(nn.Module):
    """A drop-in for the GPT's MLP: (B, T, C) -> (B, T, C), see the top of the file."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.n_expert, self.top_k = config.n_expert, config.expert_top_k
        self.capacity_factor = config.capacity_factor
        self.aux_coef, self.z_coef = config.router_aux_loss_coef, config.router_z_loss_coef
        hidden = config.expert_hidden or 4 * config.n_embd
        self.router = nn.Linear(config.n_embd, config.n_expert, bias=False)
        self.experts = nn.ModuleList(Expert(config.n_embd, hidden, config.bias, config.gelu)
                                     for _ in range(config.n_expert))
        self.dropout = nn.Dropout(config.dropout)
        self.aux_loss: Tensor | None = None  # the last training forward's weighted router losses
        self.stats: dict[str, Any] = {}  # the last forward's load per expert and dropped fraction

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        E, k = self.n_expert, self.top_k
        xf = x.reshape(B * T, C)  # (N, C)
        logits = self.router(xf)  # (N, E)
        probs = F.softmax(logits)  # (N, E)
        weights, choice = probs.topk(k)  # (N, k) each, the k most probable experts
        if k > 1:
            weights = weights / weights.sum(axis=-1, keepdims=True)  # (N, k) sums to 1
        cap = capacity(B * T, E, k, self.capacity_factor) if self.training else None
        assignment, kept, routed = route(choice.data, E, cap)
        xs = dispatch(xf, Tensor(assignment, device=x.device), k)  # (M, C) sorted by expert
        busy = [e for e in range(E) if kept[e]]  # experts with at least one row
        pieces = F.split(xs, [kept[e] for e in busy], axis=0)  # (kept[e], C) each
        ys = F.cat([self.experts[e](piece) for e, piece in zip(busy, pieces)], axis=0)  # (M, C)
        y = combine(ys, weights, Tensor(assignment, device=x.device))  # (N, C) dropped choices add 0
        n = B * T * k
        self.stats = {"load": [r / n for r in routed], "dropped": 1 - sum(kept) / n}
        if self.training:
            self.aux_loss = self.router_losses(logits, probs, routed)
        return self.dropout(y.reshape(B, T, C))  # (B, T, C)

    def router_losses(self, logits: Tensor, probs: Tensor, routed: list[int]) -> Tensor:
        """router_aux_loss_coef * E * sum_i f_i P_i + router_z_loss_coef * mean(logsumexp(logits)^2)."""
        xp = get_array_module(probs.data)
        f = Tensor(xp.asarray(routed, dtype=probs.dtype) / sum(routed), device=probs.device)  # (E,) a count: no grad
        P = probs.mean(axis=0)  # (E,) mean router probability
        loss = (f * P).sum() * (self.n_expert * self.aux_coef)
        if self.z_coef:
            m = logits.detach().amax(axis=-1, keepdims=True)  # (N, 1) a shift for exp, no gradient needed
            lse = (logits - m).exp().sum(axis=-1).log() + m.reshape(-1)  # (N,) logsumexp
            loss = loss + (lse * lse).mean() * self.z_coef
        return loss


def aux_loss(blocks: Any) -> Tensor:
    """The sum of the MoE blocks' last router losses (GPT.forward adds it to the training loss)."""
    losses = [b.mlp.aux_loss for b in blocks if isinstance(b.mlp, MoE)]
    return sum(losses[1:], losses[0])
