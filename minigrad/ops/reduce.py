"""Reductions: sum, mean, amax/amin, var/std over any axes, with or without keepdim; max/min, argmax/argmin and topk.

A reduction maps many input elements to one output element, so its backward
sends each output's gradient back to all the elements it came from: reshape
dout to the keepdims shape (size 1 on the reduced axes), then broadcast it to
x's shape. The adjoint of summation is broadcasting.

Shapes: x (...) of any shape; y is x with the reduced axes removed (or kept as 1).

The functions take PyTorch's keywords (dim, keepdim) and NumPy's (axis, keepdims), which the
engine's own code uses; giving both spellings of one is an error. max, min and topk along a dim
also say where their values came from (indices), and take their values with shape.gather, whose
backward sends each gradient to the one element picked.

Read next: shape.py.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.ops.elementwise import cast, maximum, sqrt
from minigrad.ops.shape import either, gather, normalize_axes, squeeze
from minigrad.speed import is_plain
from minigrad.tensor import Tensor

# What max, min (along a dim) and topk return, as torch.return_types: a tuple that also has names.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])


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


class AMax(Function):
    def forward(self, x: Array, axes: tuple[int, ...], keepdims: bool, largest: bool) -> Array:
        y = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        self.x, self.y_kept, self.axes = x, y, axes
        return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    # y = max_i x_i (or min)  =>  dx_i = dout where x_i == y, else 0.
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
# Sums (row_mean, col_sum) are matrix-vector products with a vector of ones: BLAS runs those on
# every core, where a.sum(axis) is NumPy's loop on one. Sums of products (row_dot_mean, col_dot) go
# through einsum, which multiplies and adds in one pass and never writes the (N, C) product a * b.
# How much that saves: docs/results.md, speed.
# Plain mode (speed.py) takes NumPy's own mean and sum instead, as each docstring reads.


def row_mean(a: Array) -> Array:
    """Mean over the last axis, keepdims: (..., C) -> (..., 1)."""
    if is_plain():
        return a.mean(axis=-1, keepdims=True)
    c = a.shape[-1]
    ones = get_array_module(a).full(c, 1.0 / c, dtype=a.dtype)
    return (a.reshape(-1, c) @ ones).reshape(a.shape[:-1] + (1,))


def row_dot_mean(a: Array, b: Array) -> Array:
    """mean(a * b) over the last axis, keepdims: (..., C), (..., C) -> (..., 1)."""
    if is_plain():
        return (a * b).mean(axis=-1, keepdims=True)
    return get_array_module(a).einsum("...j,...j->...", a, b)[..., None] * (1.0 / a.shape[-1])


def col_sum(a: Array) -> Array:
    """Sum over every axis but the last: (..., C) -> (C,)."""
    rows = a.reshape(-1, a.shape[-1])
    if is_plain():
        return rows.sum(axis=0)
    return get_array_module(a).ones(rows.shape[0], dtype=a.dtype) @ rows


def col_dot(a: Array, b: Array) -> Array:
    """sum(a * b) over every axis but the last: (..., C), (..., C) -> (C,)."""
    c = a.shape[-1]
    if is_plain():
        return (a * b).reshape(-1, c).sum(axis=0)
    return get_array_module(a).einsum("ij,ij->j", a.reshape(-1, c), b.reshape(-1, c))


# ---- the ops ----------------------------------------------------------------------------


def dim_and_keepdim(op: str, dim: Any, axis: Any, keepdim: bool | None, keepdims: bool | None) -> tuple[Any, bool]:
    """(dim, keepdim) from PyTorch's spelling or NumPy's; keepdim is False unless given."""
    return either(op, "dim", dim, "axis", axis), bool(either(op, "keepdim", keepdim, "keepdims", keepdims))


def sum(input: Tensor, dim: Any = None, keepdim: bool | None = None, *, dtype: Any = None,
        axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """Sum over dim (an int, a tuple, or None for all); `dtype` casts the input first. Booleans and
    integers sum to int64, as in PyTorch."""
    dim, keepdim = dim_and_keepdim("sum", dim, axis, keepdim, keepdims)
    x = input if dtype is None else cast(input, dtype)
    return Sum.apply(x, axes=normalize_axes("sum", dim, x.ndim), keepdims=keepdim)


# PyTorch's names for integer dtypes, for its message when mean is asked of one
_TORCH_NAMES = {"bool": "Bool", "uint8": "Byte", "int8": "Char", "int16": "Short", "int32": "Int", "int64": "Long"}


def mean(input: Tensor, dim: Any = None, keepdim: bool | None = None, *, dtype: Any = None,
         axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """Mean over dim; of a floating tensor only, as in PyTorch (`dtype` casts the input first)."""
    dim, keepdim = dim_and_keepdim("mean", dim, axis, keepdim, keepdims)
    x = input if dtype is None else cast(input, dtype)
    if x.dtype.kind != "f":
        got = _TORCH_NAMES.get(str(x.dtype), str(x.dtype))
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {got}")
    return Mean.apply(x, axes=normalize_axes("mean", dim, x.ndim), keepdims=keepdim)


def amax(input: Tensor, dim: Any = None, keepdim: bool | None = None, *,
         axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """The largest value over dim (an int, a tuple, or None for all); ties share the gradient."""
    return _extreme("amax", input, dim, axis, keepdim, keepdims, largest=True)


def amin(input: Tensor, dim: Any = None, keepdim: bool | None = None, *,
         axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """The smallest value over dim (an int, a tuple, or None for all); ties share the gradient."""
    return _extreme("amin", input, dim, axis, keepdim, keepdims, largest=False)


def _extreme(op: str, x: Tensor, dim: Any, axis: Any, keepdim: Any, keepdims: Any, largest: bool) -> Tensor:
    dim, keepdim = dim_and_keepdim(op, dim, axis, keepdim, keepdims)
    axes = normalize_axes(op, dim, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"{op}: cannot reduce over an empty axis (shape {x.shape}, axes {axes})")
    return AMax.apply(x, axes=axes, keepdims=keepdim, largest=largest)


def max(input: Tensor, dim: Any = None, keepdim: bool | None = None, *,
        axis: Any = None, keepdims: bool | None = None) -> Any:
    """As torch.max: max(x) is the largest value (ties share the gradient, as amax); max(x, dim) is
    (values, indices) along dim, each value's gradient going to its index (the first of ties);
    max(x, other) is the elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    return _extreme_along("max", input, dim, axis, keepdim, keepdims, largest=True)


def min(input: Tensor, dim: Any = None, keepdim: bool | None = None, *,
        axis: Any = None, keepdims: bool | None = None) -> Any:
    """As torch.min: min(x) the smallest value, min(x, dim) (values, indices), min(x, other) the
    elementwise minimum."""
    if isinstance(dim, Tensor):
        return input.minimum(dim)
    return _extreme_along("min", input, dim, axis, keepdim, keepdims, largest=False)


def _extreme_along(op: str, x: Tensor, dim: Any, axis: Any, keepdim: Any, keepdims: Any, largest: bool) -> Any:
    dim, keepdim = dim_and_keepdim(op, dim, axis, keepdim, keepdims)
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}: keepdim needs a dim; {op}(x) reduces over all of them")
        return _extreme(op, x, None, None, None, None, largest)
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} (amax and amin take several)")
    indices = _arg_extreme(op, x, dim, True, largest)  # (..., 1, ...)
    values = gather(x, dim, indices)
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return (MaxResult if largest else MinResult)(values, indices)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool | None = None, *,
           axis: int | None = None, keepdims: bool | None = None) -> Tensor:
    """int64 index of the largest value along dim (the first of ties), or into the flattened
    tensor when dim is None. No gradient."""
    dim, keepdim = dim_and_keepdim("argmax", dim, axis, keepdim, keepdims)
    return _arg_extreme("argmax", input, dim, keepdim, largest=True)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool | None = None, *,
           axis: int | None = None, keepdims: bool | None = None) -> Tensor:
    """int64 index of the smallest value along dim (the first of ties). No gradient."""
    dim, keepdim = dim_and_keepdim("argmin", dim, axis, keepdim, keepdims)
    return _arg_extreme("argmin", input, dim, keepdim, largest=False)


def _arg_extreme(op: str, x: Tensor, dim: int | None, keepdim: bool, largest: bool) -> Tensor:
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int or None, got {dim!r}")
    (axis,) = normalize_axes(op, dim, x.ndim) if dim is not None else (None,)
    if x.data.size == 0 or (axis is not None and x.shape[axis] == 0):
        raise ValueError(f"{op}: cannot reduce over an empty axis (shape {x.shape})")
    xp = get_array_module(x.data)
    found = xp.argmax(x.data, axis) if largest else xp.argmin(x.data, axis)
    if keepdim:
        found = found.reshape(tuple(1 if axis in (None, i) else n for i, n in enumerate(x.shape)))
    return Tensor._make(xp.asarray(found, dtype=np.int64), False)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> TopkResult:
    """(values, indices) of the k largest (or smallest) elements along dim, largest first, as
    torch.topk; which of several equal elements comes first is unspecified, as there. The values'
    gradient goes to the elements picked. sorted=False gives them sorted too."""
    (axis,) = normalize_axes("topk", dim, input.ndim)
    if not 0 <= k <= input.shape[axis]:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {input.shape[axis]} (shape {input.shape})")
    keys = input.data
    if largest:  # ascending order of -x is descending order of x (in a signed dtype)
        keys = -(keys if keys.dtype.kind in "fi" else keys.astype(np.int64))
    order = get_array_module(keys).argsort(keys, axis=axis)  # (..., n, ...)
    indices = Tensor._make(order[(slice(None),) * axis + (slice(0, k),)].astype(np.int64), False)  # (..., k, ...)
    return TopkResult(gather(input, axis, indices), indices)


def var(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool | None = None, *,
        correction: int | None = None, axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """Variance over dim, as torch.var: divides by n - 1 by default (unbiased=True, correction=1),
    by n with unbiased=False or correction=0."""
    dim, keepdim = dim_and_keepdim("var", dim, axis, keepdim, keepdims)
    correction = _correction("var", unbiased, correction)
    axes = normalize_axes("var", dim, input.ndim)
    if _count(input.shape, axes) - correction <= 0:
        raise ValueError(f"var: {_count(input.shape, axes)} elements with correction={correction} leave no degrees of freedom")
    return Var.apply(input, axes=axes, keepdims=keepdim, correction=correction)


def std(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool | None = None, *,
        correction: int | None = None, axis: Any = None, keepdims: bool | None = None) -> Tensor:
    """Standard deviation, sqrt(var(...)), with var's arguments."""
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims))


def _correction(op: str, unbiased: bool | None, correction: int | None) -> int:
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: got both unbiased={unbiased} and correction={correction}; pass one")
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1
