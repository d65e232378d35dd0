"""Learning-rate schedule: linear warmup then cosine decay, as GPT-2 and nanoGPT train.

`warmup_cosine(it, ...)` is the schedule as a plain function; a training loop sets
each group's rate from it, as nanoGPT's does: `for g in opt.param_groups: g["lr"] = lr`.

Read next: ../serialization.py (saving what training made).
"""
from __future__ import annotations

import math


def warmup_cosine(it: int, max_lr: float, warmup_iters: int, decay_iters: int, min_lr: float) -> float:
    """lr at iteration `it`: linear from max_lr/warmup up to max_lr over warmup_iters, then a half
    cosine down to min_lr at decay_iters, then min_lr."""
    if it < warmup_iters:
        return max_lr * (it + 1) / warmup_iters
    if it >= decay_iters:
        return min_lr
    progress = (it - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
