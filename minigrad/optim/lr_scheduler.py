"""Learning-rate schedule: linear warmup then cosine decay, as GPT-2 and nanoGPT train.

`warmup_cosine(it, ...)` is the schedule as a plain function; `WarmupCosine`
applies it to an optimizer's groups on every `step()`, as PyTorch schedulers do.

Read next: ../gradcheck.py.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.optim.optimizer import Optimizer


def warmup_cosine(it: int, max_lr: float, warmup_iters: int, decay_iters: int, min_lr: float) -> float:
    """lr at iteration `it`: linear from max_lr/warmup up to max_lr over warmup_iters, then a half
    cosine down to min_lr at decay_iters, then min_lr."""
    if it < warmup_iters:
        return max_lr * (it + 1) / warmup_iters
    if it >= decay_iters:
        return min_lr
    progress = (it - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


class WarmupCosine:
    """Sets each group's lr to warmup_cosine(it): the group's initial lr is its peak, and the floor
    is min_lr_ratio times that."""

    def __init__(self, optimizer: Optimizer, warmup_iters: int, decay_iters: int, min_lr_ratio: float = 0.1) -> None:
        if warmup_iters < 0 or decay_iters < warmup_iters:
            raise ValueError(f"WarmupCosine: need 0 <= warmup_iters <= decay_iters, got {warmup_iters}, {decay_iters}")
        self.optimizer, self.warmup_iters, self.decay_iters, self.min_lr_ratio = optimizer, warmup_iters, decay_iters, min_lr_ratio
        self.base_lrs = [g.hyper["lr"] for g in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def lr_at(self, it: int, base_lr: float) -> float:
        return warmup_cosine(it, base_lr, self.warmup_iters, self.decay_iters, base_lr * self.min_lr_ratio)

    def _apply(self) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g.hyper["lr"] = self.lr_at(self.last_iter, base)

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g.hyper["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_iter": self.last_iter, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.last_iter, self.base_lrs = int(sd["last_iter"]), list(sd["base_lrs"])
        self._apply()
