"""softmax, log_softmax and cross_entropy, each one fused op with its own backward.

Read their simple twins first (simple.softmax, simple.log_softmax,
simple.cross_entropy): composed from max, exp, sum, log and indexing, they keep
every intermediate array for backward. The fused forms keep one (N, V) array
each and have short backwards, derived below.

Shapes: x, y, dout (..., V) with the softmax taken over `axis` (default last);
cross_entropy takes logits (N, V) and integer targets (N,).

Read next: layernorm.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.tensor import Tensor, check_same_device


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
    def forward(self, logits: Array, targets: Array, ignore_index: int, label_smoothing: float) -> Array:
        xp = get_array_module(logits)
        n, v = logits.shape
        used = targets != ignore_index  # (N,)
        in_range = (targets >= 0) & (targets < v)  # (N,) checked on the host; on a GPU a bad target gives NaN
        ok = used & in_range
        safe = xp.where(ok, targets, 0)  # ignored rows read class 0, then get weight 0
        shifted, lse = _log_sum_exp(logits, axis=1)  # (N, V), (N, 1)
        logp_target = shifted[xp.arange(n), safe] - lse[:, 0]  # (N,)
        count = ok.sum(dtype=logits.dtype)  # stays on the device: reading it would make the CPU wait for the GPU
        self.weight = ok.astype(logits.dtype) / xp.maximum(count, 1)  # (N,) 1/count or 0
        self.p, self.safe, self.eps = xp.exp(shifted - lse), safe, label_smoothing  # softmax (N, V)
        if label_smoothing:  # the target is (1 - eps) onehot(t) + eps / V: mix in the mean log p
            logp_mean = shifted.mean(axis=1) - lse[:, 0]  # (N,) (1/V) sum_v log p_v
            logp_target = (1 - label_smoothing) * logp_target + label_smoothing * logp_mean
        loss = -(logp_target * self.weight).sum()
        undefined = (count == 0) | (used & ~in_range).any()  # a mean over no targets is NaN, as in PyTorch
        return loss + xp.where(undefined, xp.nan, 0.0).astype(loss.dtype)

    # loss = -(1/count) sum_n sum_v q_nv log softmax(logits_n)_v over rows n with t_n != ignore_index,
    # q_n = (1 - eps) onehot(t_n) + eps / V  (q_n = onehot(t_n) without label smoothing).
    # From log_softmax's backward with dout = -q_n / count, and sum_v q_nv = 1:
    #   dlogits_n = (p_n - q_n) / count   (0 for ignored rows),  times the scalar dout
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(self.p)
        dlogits = self.p - self.eps / self.p.shape[1] if self.eps else self.p.copy()
        dlogits[xp.arange(dlogits.shape[0]), self.safe] -= 1 - self.eps
        dlogits *= (self.weight * dout)[:, None]
        return (dlogits,)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """Mean negative log-likelihood of `targets` (N,) under softmax(`logits` (N, V)),
    skipping rows whose target is ignore_index. label_smoothing = eps trains towards
    (1 - eps) onehot + eps / V, as PyTorch."""
    t = targets if isinstance(targets, Tensor) else Tensor(targets)
    check_same_device("cross_entropy", (logits, t))
    if logits.ndim != 2 or t.shape != (logits.shape[0],):
        raise ValueError(
            f"cross_entropy: expected logits (N, V) and targets (N,), got {logits.shape} and {t.shape}; "
            "flatten with logits.reshape(-1, V) and targets.reshape(-1)"
        )
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class ids, got {t.dtype}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    td = t.data
    if isinstance(td, np.ndarray):  # on the host: free to check (on a GPU, see CrossEntropy.forward)
        bad = (td != ignore_index) & ((td < 0) | (td >= logits.shape[1]))
        if bad.any():
            raise IndexError(f"cross_entropy: target {td[bad][0]} is out of range for {logits.shape[1]} classes")
    return CrossEntropy.apply(logits, targets=td, ignore_index=ignore_index, label_smoothing=float(label_smoothing))
