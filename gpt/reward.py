"""A reward model: a GPT backbone with a scalar head, trained on preference pairs with the
Bradley–Terry loss (Ouyang et al. 2022, section 3.5; Stiennon et al. 2020). It leaves out what
uses the reward (ppo.py) and where the pairs come from (preferences.py).

Shapes: B batch, T time (tokens, right-padded), C channels (n_embd).

    h = GPT.hidden_states(idx)                   (B, T, C)   the transformer without its LM head
    r = head(h[b, lengths[b] - 1])               (B,)        one number per sequence

The head reads the last real token: attention is causal, so that position has seen the whole
text and nothing after it; padding to the right changes no reward (a test proves it). Lengths,
not a mask: a right-padded batch is described by how many tokens each row really has.

Bradley–Terry: people prefer a over b with probability sigmoid(r(a) - r(b)); maximising the
likelihood of the labels is minimising

    L = mean_b -logsigmoid(r_chosen[b] - r_rejected[b])

with dL/dr_chosen = -sigmoid(r_rejected - r_chosen) / B = -dL/dr_rejected: a pair already
ranked right by a wide margin pushes little, a wrong one pushes by up to 1/B.

Read next: ppo.py (the policy trained against this reward), then dpo.py (the same pairs without one).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.model import GPT, GPTConfig
from minigrad import nn
from minigrad.tensor import Tensor


class RewardModel(nn.Module):
    """r(idx) = head(hidden state of the last real token): a GPT backbone (its LM head unused) and
    nn.Linear(n_embd, 1). The head starts N(0, 1/(n_embd + 1)) with bias 0, as the reward heads of
    "The N Implementation Details of RLHF with PPO" (Huang et al. 2022), so initial rewards are O(1)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.backbone = GPT(config)
        self.head = nn.Linear(config.n_embd, 1)
        w = self.head.weight
        w.data[...] = minigrad.randn(*w.shape, device=w.device, dtype=w.dtype).data / math.sqrt(config.n_embd + 1)
        self.head.bias.data[...] = 0.0

    @classmethod
    def from_gpt(cls, model: GPT) -> RewardModel:
        """A reward model whose backbone starts as a copy of `model` (Ouyang et al. start theirs from
        the supervised model), on model's device and in its dtype."""
        w = model.lm_head.weight
        callers_dtype = minigrad.get_default_dtype()
        minigrad.set_default_dtype(w.dtype)  # the head is built in the model's dtype too
        try:
            rm = cls(model.config)
        finally:
            minigrad.set_default_dtype(callers_dtype)
        rm.to(w.device)
        rm.backbone.load_state_dict(model.state_dict())
        return rm

    def forward(self, idx: Any, lengths: Any = None) -> Tensor:
        """idx (B, T) token ids, right-padded; lengths (B,) the real tokens of each row, 1..T
        (None: every row is T long) -> rewards (B,)."""
        h = self.backbone.hidden_states(idx)  # (B, T, C)
        B, T, _ = h.shape
        last = np.full(B, T - 1) if lengths is None else last_positions(lengths, B, T)  # (B,)
        rows, last = Tensor(np.arange(B), device=h.device), Tensor(last, device=h.device)
        return self.head(h[rows, last]).reshape(B)  # (B, C) -> (B, 1) -> (B,)


def last_positions(lengths: Any, B: int, T: int) -> np.ndarray:
    """lengths (B,) integers in 1..T -> the index of each row's last real token, lengths - 1."""
    n = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if n.shape != (B,) or n.dtype.kind not in "iu":
        raise ValueError(f"RewardModel: lengths must be ({B},) integers, one per row, got {n.dtype} {n.shape}")
    if n.size and (n.min() < 1 or n.max() > T):
        raise ValueError(f"RewardModel: lengths must be in 1..{T} (the row's real tokens), got {n.tolist()}")
    return n.astype(np.int64) - 1


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """mean(-logsigmoid(r_chosen - r_rejected)): r_chosen, r_rejected (B,) -> a scalar; the negative
    log-likelihood of the labels under Bradley–Terry. logsigmoid stays finite for any margin."""
    if r_chosen.shape != r_rejected.shape or r_chosen.ndim != 1:
        raise ValueError(f"bradley_terry_loss: r_chosen and r_rejected must both be (B,), "
                         f"got {r_chosen.shape} and {r_rejected.shape}")
    return (-F.logsigmoid(r_chosen - r_rejected)).mean()  # (B,) -> ()


def pair_accuracy(r_chosen: Any, r_rejected: Any) -> float:
    """The fraction of pairs the rewards rank as the labels do, r_chosen > r_rejected (a tie counts
    1/2, as a coin flip would). Compare it with preferences.gold_agreement_rate, not with 1."""
    c = np.asarray(r_chosen.numpy() if isinstance(r_chosen, Tensor) else r_chosen, dtype=np.float64)
    r = np.asarray(r_rejected.numpy() if isinstance(r_rejected, Tensor) else r_rejected, dtype=np.float64)
    if c.shape != r.shape or c.size == 0:
        raise ValueError(f"pair_accuracy: need two equal, non-empty shapes, got {c.shape} and {r.shape}")
    return float(np.mean((c > r) + 0.5 * (c == r)))
