"""Reductions: sum, mean, max, var over any axes, with or without keepdims.

A reduction maps many input elements to one output element, so its backward
sends each output's gradient back to all the elements it came from: reshape
dout to the keepdims shape (size 1 on the reduced axes), then broadcast it to
x's shape. The adjoint of summation is broadcasting.

Shapes: x (...) of any shape; y is x with the reduced axes removed (or kept as 1).

Read next: shape.py.
"""
from __future__ import annotations

import builtins
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.tensor import Tensor


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
    return tuple(sorted({a % builtins.max(ndim, 1) for a in axes}))


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(dout: Array, shape: tuple[int, ...], axes: tuple[int, ...]) -> Array:
    """dout (reduced shape) -> x's shape: each reduced element's grad copied to all its sources."""
    return get_array_module(dout).broadcast_to(dout.reshape(_kept_shape(shape, axes)), shape)


class Sum(Function):
    def forward(self, x: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        self.shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    # y = sum_i x_i  =>  dx_i = dout  (for every i that was summed into y)
    def backward(self, dout: Array) -> tuple[Array]:
        return (_spread(dout, self.shape, self.axes),)


class Mean(Function):
    def forward(self, x: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        self.shape, self.axes = x.shape, axes
        self.count = _count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdims)

    # y = (1/n) sum_i x_i  =>  dx_i = dout / n
    def backward(self, dout: Array) -> tuple[Array]:
        return (_spread(dout / self.count, self.shape, self.axes),)


class Max(Function):
    def forward(self, x: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        y = x.max(axis=axes, keepdims=True)
        self.x, self.y_kept, self.axes = x, y, axes
        return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    # y = max_i x_i  =>  dx_i = dout where x_i == y, else 0.
    # Ties: when k elements share the maximum, each gets dout / k (as torch.amax does),
    # so the gradient still sums to dout. Gradient checks keep inputs away from ties.
    def backward(self, dout: Array) -> tuple[Array]:
        is_max = (self.x == self.y_kept).astype(dout.dtype)
        share = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return (share * dout.reshape(self.y_kept.shape),)


class Var(Function):
    def forward(self, x: Array, axes: tuple[int, ...], keepdims: bool, correction: int) -> Array:
        self.shape, self.axes = x.shape, axes
        self.centered = x - x.mean(axis=axes, keepdims=True)
        self.denom = _count(x.shape, axes) - correction
        return (self.centered * self.centered).sum(axis=axes, keepdims=keepdims) / self.denom

    # y = sum_i (x_i - m)^2 / (n - c),  m = mean(x)
    # dx_i = dout * 2 (x_i - m) / (n - c)   (the term through m vanishes: sum_i (x_i - m) = 0)
    def backward(self, dout: Array) -> tuple[Array]:
        return (self.centered * _spread(dout * (2.0 / self.denom), self.shape, self.axes),)


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


# ---- row and column sums of arrays, for the fused ops' backwards ----------------------
# Done as matrix-vector products (or einsum): BLAS runs them several times faster than
# a.sum(axis) (measured: 4x for (4096, 384) on 2 cores), and no (N, C) temporary is written.


def row_mean(a: Array) -> Array:
    """Mean over the last axis, keepdims: (N..., C) -> (N..., 1)."""
    c = a.shape[-1]
    ones = get_array_module(a).full(c, 1.0 / c, dtype=a.dtype)
    return (a.reshape(-1, c) @ ones).reshape(a.shape[:-1] + (1,))


def row_dot_mean(a: Array, b: Array) -> Array:
    """mean(a * b) over the last axis, keepdims: (N..., C), (N..., C) -> (N..., 1)."""
    return get_array_module(a).einsum("...j,...j->...", a, b)[..., None] * (1.0 / a.shape[-1])


def col_sum(a: Array) -> Array:
    """Sum over every axis but the last: (N..., C) -> (C,)."""
    rows = a.reshape(-1, a.shape[-1])
    return get_array_module(a).ones(rows.shape[0], dtype=a.dtype) @ rows


def col_dot(a: Array, b: Array) -> Array:
    """sum(a * b) over every axis but the last: (N..., C), (N..., C) -> (C,)."""
    c = a.shape[-1]
    return get_array_module(a).einsum("ij,ij->j", a.reshape(-1, c), b.reshape(-1, c))


# ---- the ops -------------------------------------------------------------------------


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    return Sum.apply(x, axes=normalize_axes("sum", axis, x.ndim), keepdims=keepdims)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    return Mean.apply(x, axes=normalize_axes("mean", axis, x.ndim), keepdims=keepdims)


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    axes = normalize_axes("max", axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce over an empty axis (shape {x.shape}, axes {axes})")
    return Max.apply(x, axes=axes, keepdims=keepdims)


def var(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance; correction=1 (the default, as in PyTorch) divides by n - 1, correction=0 by n."""
    axes = normalize_axes("var", axis, x.ndim)
    if _count(x.shape, axes) - correction <= 0:
        raise ValueError(f"var: {_count(x.shape, axes)} elements with correction={correction} leave no degrees of freedom")
    return Var.apply(x, axes=axes, keepdims=keepdims, correction=correction)
