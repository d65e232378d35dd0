"""Per-token log-probabilities of a sequence under a GPT: what PPO, DPO and the KL to a reference
all read (gpt/ppo.py, gpt/dpo.py). It leaves sampling out (gpt/sample.py).

Shapes: B batch, T time (tokens in idx), V vocabulary. A language model's logits at position t
score the token at t + 1, so a sequence of T tokens holds T - 1 scored tokens:

    token_logprobs[b, t] = log p(idx[b, t+1] | idx[b, :t+1]) = log_softmax(logits[b, t])[idx[b, t+1]]

built from the engine's log_softmax and gather, so its gradient comes from their hand-written
backwards (log_softmax: dx = dy - softmax(x) sum(dy); gather: scatter-add). It equals
-cross_entropy(logits[:, :-1], idx[:, 1:], reduction='none'), which fuses the two.

Read next: preferences.py (the gold score and preference pairs), then reward.py and dpo.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import minigrad.functional as F
from gpt.model import GPT
from minigrad.ops.embedding import check_ids
from minigrad.tensor import Tensor


def as_ids(model: GPT, idx: Any) -> Tensor:
    """idx (B, T) as an integer Tensor on the model's device; ids from the host are checked against
    the vocabulary (one clear error naming the bad id)."""
    if not isinstance(idx, Tensor):
        idx = Tensor(check_ids(np.asarray(idx), model.config.vocab_size, "token_logprobs"),
                     device=model.lm_head.weight.device)
    if idx.ndim != 2 or idx.shape[1] < 2:
        raise ValueError(f"token_logprobs: idx must be (B, T) token ids with T >= 2 (one token scores "
                         f"the next), got shape {idx.shape}")
    return idx


def token_logprobs(model: GPT, idx: Any, logits: Tensor | None = None) -> Tensor:
    """log p(idx[:, t+1] | idx[:, :t+1]) for t = 0..T-2: (B, T-1), in the graph (differentiable wrt
    the model). `logits` (B, T, V), if given, are the model's logits for idx (a caller that already
    ran the model, e.g. PPO with a value head on the same hidden states, passes them)."""
    idx = as_ids(model, idx)  # (B, T)
    B, T = idx.shape
    if logits is None:
        logits = model.lm_head(model.hidden_states(idx))  # (B, T, V): every position, not only the last
    if logits.shape != (B, T, model.config.vocab_size):
        raise ValueError(f"token_logprobs: logits must be (B, T, V) = {(B, T, model.config.vocab_size)}, "
                         f"got {logits.shape}")
    logp = F.log_softmax(logits[:, :-1, :], dim=-1)  # (B, T-1, V): position t predicts token t + 1
    nxt = idx[:, 1:].reshape(B, T - 1, 1)  # (B, T-1, 1): the tokens that came next
    return logp.gather(2, nxt).reshape(B, T - 1)  # (B, T-1)


def sequence_logprob(model: GPT, idx: Any, response_mask: Any, logits: Tensor | None = None) -> Tensor:
    """log p(response | prompt) = the sum of token_logprobs over the positions where response_mask
    (B, T-1) is True: (B,). Mask entry t covers the token idx[:, t+1], so the prompt's tokens and
    the right padding are left out by setting theirs False."""
    lp = token_logprobs(model, idx, logits)  # (B, T-1)
    mask = response_mask if isinstance(response_mask, Tensor) else Tensor(np.asarray(response_mask), device=lp.device)
    if mask.shape != lp.shape or mask.dtype != np.bool_:
        raise ValueError(f"sequence_logprob: response_mask must be a bool (B, T-1) = {lp.shape} array "
                         f"(entry t covers token t + 1), got {mask.dtype} {mask.shape}")
    return (lp * mask.to(lp.dtype)).sum(1)  # (B,)
