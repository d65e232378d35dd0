"""clip_grad_norm_: scale all gradients together so that their global L2 norm is at most max_norm.

Read next: ../optim/optimizer.py.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from minigrad.backend import get_array_module
from minigrad.nn.module import Parameter


def clip_grad_norm_(parameters: Iterable[Parameter], max_norm: float, eps: float = 1e-6) -> float:
    """Return the total norm sqrt(sum of every grad element squared), measured before clipping;
    if it exceeds max_norm, multiply every grad by max_norm / (norm + eps) in place (as PyTorch)."""
    grads = whole_buffers([p.grad.data for p in parameters if p.grad is not None])
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    squares = sum(xp.vdot(g.ravel(), g.ravel()) for g in grads)  # vdot: a BLAS dot, no temporary
    total = math.sqrt(float(squares))  # one device-to-host sync, not one per parameter
    if total > max_norm:
        scale = max_norm / (total + eps)
        for g in grads:
            g *= scale
    return total


def whole_buffers(grads: list[Any]) -> list[Any]:
    """The same elements in fewer arrays: gradients that are views filling one flat buffer between
    them (an optimizer keeps each group's gradients so, see optim/optimizer.py) are replaced by
    that buffer, so the norm and the scaling take one operation per group, not one per parameter."""
    by_base: dict[int, tuple[Any, list[Any]]] = {}
    for g in grads:
        base = g.base if g.base is not None else g
        by_base.setdefault(id(base), (base, []))[1].append(g)
    out = []
    for base, views in by_base.values():
        whole = base.ndim == 1 and sum(v.size for v in views) == base.size
        out.extend([base] if whole else views)
    return out
