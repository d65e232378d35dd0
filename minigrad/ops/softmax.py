"""softmax, log_softmax and cross_entropy, each one fused op with its own backward.

Read their simple twins first (simple.softmax, simple.log_softmax,
simple.cross_entropy): composed from max, exp, sum, log and indexing, they keep
every intermediate array for backward. The fused forms keep one (N, V) array
each and have short backwards, derived below.

cross_entropy takes PyTorch's arguments (a weight per class, ignore_index,
reduction, label smoothing) and layouts; what it shares with the other losses
(reductions, layouts, the weight of each target) is in loss.py.

Shapes: x, y, dout (..., V) with the softmax taken over `dim` (default last);
CrossEntropy takes logits (N, V) and integer targets (N,): N rows, V classes (PyTorch's docs
call the classes C; in the code below `c` is their number).

Read next: activation.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.ops.elementwise import cast
from minigrad.ops.loss import (
    as_target,
    check_class_targets,
    check_reduction,
    class_weight,
    classes_last,
    mean_divisor,
    reduce,
    target_weights,
)
from minigrad.ops.shape import either
from minigrad.tensor import Tensor


def _log_sum_exp(x: Array, axis: int) -> tuple[Array, Array]:
    """(x - max, log sum exp(x - max)) along axis, keepdims."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted, xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    def forward(self, x: Array, axis: int) -> Array:
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.y, self.axis = e / e.sum(axis=axis, keepdims=True), axis
        return self.y

    # y_i = e^x_i / sum_j e^x_j  has Jacobian  dy_i/dx_j = y_i (delta_ij - y_j), so the
    # vector-Jacobian product is  dx_j = sum_i dout_i y_i (delta_ij - y_j)
    #                                  = y_j (dout_j - sum_i dout_i y_i):
    #   dx = y * (dout - sum(dout * y, axis))
    # (the V x V Jacobian is never built). Note sum(y) = 1 always, so a constant dout gives dx = 0.
    def backward(self, dout: Array) -> tuple[Array]:
        y = self.y
        return (y * (dout - (dout * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    def forward(self, x: Array, axis: int) -> Array:
        shifted, lse = _log_sum_exp(x, axis)
        self.y, self.axis = shifted - lse, axis
        return self.y

    # y_i = x_i - log sum_j e^x_j  =>  dy_i/dx_j = delta_ij - softmax_j, so
    #   dx = dout - softmax(x) * sum(dout, axis),   softmax(x) = e^y
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(dout)
        return (dout - xp.exp(self.y) * dout.sum(axis=self.axis, keepdims=True),)


class CrossEntropy(Function):
    def forward(self, logits: Array, target: Array, weight: Array | None, ignore_index: int,
                label_smoothing: float, reduction: str) -> Array:
        xp = get_array_module(logits)
        n, c = logits.shape
        eps = label_smoothing
        used = target != ignore_index  # (N,)
        target_col, w_t = target_weights(target, c, weight, ignore_index, logits.dtype)  # (N,) columns to read, weights
        shifted, lse = _log_sum_exp(logits, axis=1)  # (N, V), (N, 1)
        # log p of each row's target; an ignored row reads class 0, which may be -inf: replace it before
        # it meets its weight 0 (0 * -inf is NaN)
        logp_target = xp.where(used, shifted[xp.arange(n), target_col] - lse[:, 0], 0)  # (N,)
        loss = -w_t * logp_target  # (N,)
        if eps:  # the target is (1 - eps) onehot + eps / V: mix in -sum_c w_c log p_c, over the classes
            if weight is None:
                w_logp = shifted.sum(axis=1) - c * lse[:, 0]  # (N,) sum_c log p_c
            else:
                w_logp = shifted @ weight - weight.sum() * lse[:, 0]  # (N,) sum_c w_c log p_c
            loss = (1 - eps) * loss - (eps / c) * xp.where(used, w_logp, 0)
        if reduction == "mean":
            total = mean_divisor(w_t)  # sum of the kept targets' weights (their number, without weights)
            self.scale = used / total  # (N,) d(mean)/d(loss_n)
            out = loss.sum() / total
        else:
            self.scale = used.astype(logits.dtype)
            out = loss if reduction == "none" else loss.sum()
        self.p = xp.exp(shifted - lse)  # (N, V)
        self.target_col, self.w_t, self.weight, self.eps = target_col, w_t, weight, eps
        return out

    # Each kept row n (t_n != ignore_index) has the target distribution q_n, times the classes' weights w
    # (w = 1 without weights):
    #   q_nv = (1 - eps) w_{t_n} onehot(t_n)_v + (eps / V) w_v,    loss_n = -sum_v q_nv log softmax(logits_n)_v
    # From log_softmax's backward with dout = -q_n:
    #   dlogits_n = (sum_v q_nv) p_n - q_n,    sum_v q_nv = (1 - eps) w_{t_n} + (eps / V) sum_v w_v  (1 without weights)
    # times the row's share of the output: dout (sum), dout_n (none), dout / sum_n w_{t_n} (mean); 0 if ignored.
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(self.p)
        p, eps, w, w_t = self.p, self.eps, self.weight, self.w_t
        n, c = p.shape
        if w is None:  # sum_v q_nv = 1
            dlogits = p - eps / c if eps else p.copy()
        else:
            dlogits = p * ((1 - eps) * w_t + (eps / c) * w.sum())[:, None]
            if eps:
                dlogits -= (eps / c) * w
        dlogits[xp.arange(n), self.target_col] -= (1 - eps) * w_t
        dlogits *= (self.scale * dout)[:, None]
        return (dlogits,)


def softmax(input: Tensor, dim: int | None = None, *, dtype: Any = None, axis: int | None = None) -> Tensor:
    """e^x / sum(e^x) along `dim` (or NumPy's `axis`; the last by default); `dtype` casts the input first."""
    x = input if dtype is None else cast(input, dtype)
    dim = either("softmax", "dim", dim, "axis", axis)
    return Softmax.apply(x, axis=-1 if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None, *, dtype: Any = None, axis: int | None = None) -> Tensor:
    """x - log sum(e^x) along `dim` (or NumPy's `axis`; the last by default); `dtype` casts the input first."""
    x = input if dtype is None else cast(input, dtype)
    dim = either("log_softmax", "dim", dim, "axis", axis)
    return LogSoftmax.apply(x, axis=-1 if dim is None else dim)


def cross_entropy(input: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """-log softmax(input)[target] per row, as torch.nn.functional.cross_entropy: input holds logits
    (N, V), (N, V, d1, ...) or (V,) (see loss.classes_last); target the class ids (N,), (N, d1, ...)
    or (), or class probabilities of input's shape. weight (V,) weighs each class; rows whose target
    is ignore_index count for nothing; label_smoothing = eps trains towards (1 - eps) target + eps / V.
    'mean' divides by the summed weights of the kept targets (class ids) or by N * d1 * ... (probabilities)."""
    check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = as_target("cross_entropy", target, input)
    if t.dtype.kind == "f" and t.shape == input.shape:
        if ignore_index != -100:
            raise ValueError("cross_entropy: ignore_index applies to class-id targets, not to probabilities")
        return _cross_entropy_probabilities(input, t, weight, reduction, label_smoothing)
    x, ids, shape = classes_last("cross_entropy", input, t)  # (M, V), (M,)
    c = x.shape[1]
    check_class_targets("cross_entropy", ids, c, ignore_index)
    loss = CrossEntropy.apply(x, target=ids, weight=class_weight("cross_entropy", weight, input, c),
                              ignore_index=ignore_index, label_smoothing=float(label_smoothing), reduction=reduction)
    return loss.reshape(shape) if reduction == "none" else loss


def _cross_entropy_probabilities(input: Tensor, target: Tensor, weight: Any, reduction: str, eps: float) -> Tensor:
    """-sum_c w_c q_c log softmax(input)_c with q = (1 - eps) target + eps / V, over the class dim (dim 1,
    or 0 for a (V,) input); 'mean' averages over the rows. Composed of log_softmax, arithmetic and sum."""
    dim = 1 if input.ndim > 1 else 0
    c = input.shape[dim]
    q = target if not eps else (1 - eps) * target + eps / c  # (N, V, d1, ...)
    w = class_weight("cross_entropy", weight, input, c)
    if w is not None:
        q = q * w.reshape((c,) + (1,) * (input.ndim - dim - 1))  # w along the class dim
    return reduce(-(log_softmax(input, dim) * q).sum(dim), reduction)
