"""Losses as torch.nn.functional has them: nll_loss, mse_loss, binary_cross_entropy_with_logits.

Each is composed of ops already met (indexing, where, logsigmoid, arithmetic, sum), so its backward
comes from theirs and nothing new is derived here. cross_entropy, fused with log_softmax, lives in
softmax.py; it shares this file's helpers for what PyTorch's losses have in common:

- `reduction`: 'none' (one loss per element or row), 'mean' or 'sum';
- class-index targets, with a `weight` per class and an `ignore_index` whose rows count for nothing:
  'mean' divides by the summed weights of the targets it kept (their number, without weights);
- the layouts (N, V) with targets (N,), (N, V, d1, ...) with targets (N, d1, ...) (the classes along
  dim 1, as for an image's pixels), and (V,) with a 0-d target.

Shapes: N rows, V classes (PyTorch's docs write C; the code's `c` is their number); M = N * d1 * ...
rows once the extra dims are folded into N.

Read next: layernorm.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.backend import Array, get_array_module
from minigrad.ops import activation  # the module, not its names: it may still be loading (tensor.py imports this file)
from minigrad.ops.elementwise import where
from minigrad.tensor import Tensor, as_tensor, check_same_device

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(fn: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction={reduction!r} is not supported (use 'none', 'mean' or 'sum')")


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """A loss per element as PyTorch reduces it: itself ('none'), its mean or its sum."""
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def as_target(fn: str, target: Any, input: Tensor) -> Tensor:
    t = target if isinstance(target, Tensor) else Tensor(target)
    check_same_device(fn, (input, t))
    return t


def classes_last(fn: str, input: Tensor, target: Tensor) -> tuple[Tensor, Array, tuple[int, ...]]:
    """PyTorch's layouts as one (M, V) input and (M,) class ids, and the shape a loss per row takes
    (for reduction='none'): (N, V) and (N,) as they are; (N, V, d1, ...) and (N, d1, ...) with the
    classes moved last and the rest folded into rows; (C,) and () as one row."""
    s, ts = input.shape, target.shape
    if input.ndim == 1 and ts == ():
        return input.reshape(1, s[0]), target.data.reshape(1), ()
    if input.ndim >= 2 and ts == s[:1] + s[2:]:
        if input.ndim > 2:
            input = input.permute(0, *range(2, input.ndim), 1).reshape(-1, s[1])  # (N, d1, ..., V) -> (M, V)
        return input, target.data.reshape(-1), ts
    raise ValueError(
        f"{fn}: expected logits (N, V) and targets (N,), got {s} and {ts}; "
        "or logits (N, V, d1, ...) and targets (N, d1, ...), or logits (V,) and a 0-d target"
    )


def check_class_targets(fn: str, target: Array, n_classes: int, ignore_index: int) -> None:
    if target.dtype.kind not in "iu":
        raise TypeError(f"{fn}: targets must be integer class ids, got {target.dtype}")
    if isinstance(target, np.ndarray):  # on the host: free to check (on a GPU, see target_weights)
        bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
        if bad.any():
            raise IndexError(f"{fn}: target {target[bad][0]} is out of range for {n_classes} classes")


def class_weight(fn: str, weight: Any, input: Tensor, n_classes: int) -> Array | None:
    """The (V,) array of per-class weights in input's dtype, or None."""
    if weight is None:
        return None
    w = as_tensor(weight, input)
    check_same_device(fn, (input, w))
    if w.shape != (n_classes,):
        raise ValueError(f"{fn}: weight must hold one number per class, shape ({n_classes},), got {w.shape}")
    if w.requires_grad:
        raise ValueError(f"{fn}: weight must not require grad (its gradient is not computed, as in PyTorch)")
    return w.data.astype(input.dtype, copy=False)


def target_weights(target: Array, n_classes: int, weight: Array | None, ignore_index: int,
                   dtype: Any) -> tuple[Array, Array]:
    """(target_col, w_t), both (M,): the column each row reads, its target t made safe to index with
    (0 where ignored or out of range), and the weight of its target: weight[t] (1 without weights), 0
    where t == ignore_index, NaN where t is out of range. The host refused those already
    (check_class_targets); on a GPU checking would make the CPU wait for it, so there a bad target
    makes the loss NaN instead."""
    xp = get_array_module(target)
    used = target != ignore_index
    in_range = (target >= 0) & (target < n_classes)
    target_col = xp.where(used & in_range, target, 0)
    w_t = xp.ones(target.shape, dtype) if weight is None else weight[target_col]
    return target_col, xp.where(used, xp.where(in_range, w_t, xp.nan), 0).astype(dtype, copy=False)


def mean_divisor(w_t: Array) -> Array:
    """sum(w_t), the divisor of reduction='mean'; NaN for a mean over nothing (all ignored), as PyTorch."""
    xp = get_array_module(w_t)
    total = w_t.sum()
    return xp.where(total == 0, xp.nan, total)  # x / NaN is NaN with no divide-by-zero warning


def nll_loss(input: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """-weight[t] * input[t] for each row's target t, as torch.nn.functional.nll_loss: input holds
    log-probabilities (log_softmax's output), rows whose target is ignore_index count for nothing."""
    check_reduction("nll_loss", reduction)
    t = as_target("nll_loss", target, input)
    x, ids, shape = classes_last("nll_loss", input, t)  # (M, V), (M,)
    m, c = x.shape
    check_class_targets("nll_loss", ids, c, ignore_index)
    target_col, w_t = target_weights(ids, c, class_weight("nll_loss", weight, input, c), ignore_index, input.dtype)
    xp = get_array_module(ids)
    picked = where(ids != ignore_index, x[xp.arange(m), target_col], 0.0)  # (M,) log p of each target; 0 if ignored
    loss = -picked * w_t  # (M,)
    if reduction == "none":
        return loss.reshape(shape)
    return loss.sum() if reduction == "sum" else loss.sum() / mean_divisor(w_t)


def mse_loss(input: Tensor, target: Any, *, reduction: str = "mean") -> Tensor:
    """(input - target)^2 elementwise, reduced, as torch.nn.functional.mse_loss (both may require grad)."""
    check_reduction("mse_loss", reduction)
    diff = input - as_target("mse_loss", target, input)
    return reduce(diff * diff, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, *, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """-[pos_weight y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] elementwise, times weight, reduced,
    as PyTorch. Since log(1 - sigmoid(x)) = log sigmoid(x) - x, it is

        (1 - y) x - (1 + (pos_weight - 1) y) log sigmoid(x),

    which with pos_weight = 1 is the stable max(x, 0) - x y + log(1 + e^-|x|): logsigmoid never
    overflows. x, y, weight broadcast; pos_weight (C,) weighs the positives of each class (last dim)."""
    check_reduction("binary_cross_entropy_with_logits", reduction)
    y = as_target("binary_cross_entropy_with_logits", target, input)
    log_weight = 1 if pos_weight is None else 1 + (as_tensor(pos_weight, input) - 1) * y
    loss = (1 - y) * input - log_weight * activation.logsigmoid(input)
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return reduce(loss, reduction)
