"""A mixture of experts' two data movements as ops: dispatch (tokens to their experts) and combine
(the experts' outputs back to their tokens, weighted by the router).

A router picks k experts for each of N tokens: choice j of token n is one "assignment", numbered
a = n k + j in the (N, k) table of choices. Some assignments are dropped (an expert over its
capacity, gpt/moe.py); the M kept ones, listed by `assignment` (M,) sorted by expert, are the rows
the experts see, so each expert reads one contiguous run of rows. Token of row m: n(m) = a(m) // k.

    dispatch:  xs[m] = x[n(m)]                          (M, C)  a gather
    combine:   y[n]  = sum over rows m of token n of weights[a(m)] * ys[m]   (N, C)  a weighted scatter-add

Each (n, j) is kept at most once, so both backwards place rows into an (N k, C) buffer at the
distinct rows `assignment` (a plain indexed write, no atomic add) and sum the k choices of each
token; a dropped assignment's row stays 0: no gradient reaches it.

The simple twins below, dispatch_simple and combine_simple, are indexing and a matmul by a 0/1
matrix; tests/test_moe.py proves them equal in value and gradient.

Shapes: N tokens, k choices per token, M kept assignments (M <= N k), C channels.
x, y, dy (N, C); xs, ys, dxs, dys (M, C); weights (N, k); assignment (M,) integers in [0, N k).

Read next: quant.py (quantized weights), then ../functional.py.
"""
from __future__ import annotations

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.tensor import Tensor, check_same_device


class Dispatch(Function):
    def forward(self, x: Array, *, assignment: Array, k: int) -> Array:
        self.assignment, self.k, self.shape = assignment, k, x.shape
        return x[assignment // k]  # (M, C) row m is token n(m)

    # xs[m] = x[n(m)]  =>  dx[n] = sum over the rows m of token n of dxs[m]   (N, C)
    # Token n has at most k rows, one per kept choice j, so: dxs[m] goes to row a(m) = n k + j of a
    # zeroed (N k, C) buffer (distinct rows: a plain write), and dx sums each token's k rows.
    def backward(self, dxs: Array) -> tuple[Array]:
        xp = get_array_module(dxs)
        N, C = self.shape
        dx_choices = xp.zeros((N * self.k, C), dtype=dxs.dtype)  # (N k, C) dropped choices stay 0
        dx_choices[self.assignment] = dxs
        return (dx_choices.reshape(N, self.k, C).sum(axis=1),)  # (N, C)


class Combine(Function):
    def forward(self, ys: Array, weights: Array, *, assignment: Array) -> Array:
        xp = get_array_module(ys)
        N, k = weights.shape
        w = weights.reshape(-1)[assignment]  # (M,) each row's router weight
        y_choices = xp.zeros((N * k, ys.shape[1]), dtype=ys.dtype)  # (N k, C)
        y_choices[assignment] = ys * w[:, None]  # distinct rows: no two writes meet
        self.ys, self.w, self.assignment, self.shape = ys, w, assignment, weights.shape  # ys for dweights, w for dys
        return y_choices.reshape(N, k, -1).sum(axis=1)  # (N, C) a dropped choice adds 0

    # y[n] = sum over rows m of token n of w[m] * ys[m],  w[m] = weights[a(m)]:
    #   dys[m]          = w[m] * dy[n(m)]              (M, C) the scatter's backward is a gather
    #   dweights[a(m)]  = sum_c ys[m, c] * dy[n(m), c]  (N, k) one dot per kept row; dropped (n, j): 0
    def backward(self, dy: Array) -> tuple[Array | None, ...]:
        xp = get_array_module(dy)
        N, k = self.shape
        dy_rows = dy[self.assignment // k]  # (M, C) dy of each row's token
        dys = dy_rows * self.w[:, None] if self.needs_grad[0] else None  # (M, C)
        dweights = None
        if self.needs_grad[1]:
            dweights = xp.zeros(N * k, dtype=dy.dtype)  # (N k,)
            dweights[self.assignment] = (self.ys * dy_rows).sum(axis=1)  # (M,)
            dweights = dweights.reshape(N, k)
        return dys, dweights


def _check(op: str, tensors: tuple[Tensor, ...], assignment: Tensor, n_choices: int) -> None:
    check_same_device(op, (*tensors, assignment))
    if assignment.dtype.kind not in "iu" or assignment.ndim != 1:
        raise TypeError(f"{op}: assignment must be a 1-D integer tensor, got {assignment.dtype} {assignment.shape}")
    a = assignment.data  # checked on the host only: on a GPU reading it would make the CPU wait
    if isinstance(a, np.ndarray) and a.size and (a.min() < 0 or a.max() >= n_choices):
        raise IndexError(f"{op}: assignment {int(a.min() if a.min() < 0 else a.max())} is out of range "
                         f"for {n_choices} (token, choice) pairs")


def dispatch(x: Tensor, assignment: Tensor, k: int) -> Tensor:
    """Rows of x (N, C) for the kept assignments: row m is token assignment[m] // k; (M, C)."""
    if x.ndim != 2:
        raise ValueError(f"dispatch: x must be (N, C) tokens, got shape {x.shape}")
    _check("dispatch", (x,), assignment, x.shape[0] * k)
    return Dispatch.apply(x, assignment=assignment.data, k=k)


def combine(ys: Tensor, weights: Tensor, assignment: Tensor) -> Tensor:
    """The experts' rows ys (M, C) summed back into their tokens, each times its router weight
    weights[n, j] (weights (N, k), assignment[m] = n k + j): y (N, C)."""
    if ys.ndim != 2 or weights.ndim != 2 or ys.shape[0] != assignment.shape[0]:
        raise ValueError(f"combine: ys must be (M, C), weights (N, k), assignment (M,); got {ys.shape}, "
                         f"{weights.shape}, {assignment.shape}")
    _check("combine", (ys, weights), assignment, weights.shape[0] * weights.shape[1])
    return Combine.apply(ys, weights, assignment=assignment.data)


# ---- the simple twins: indexing and a matmul --------------------------------------------------


def dispatch_simple(x: Tensor, assignment: Tensor, k: int) -> Tensor:
    """dispatch as plain indexing, x[token of each row]; indexing's own backward scatters back."""
    return x[assignment.data // k]  # (M, C)


def combine_simple(ys: Tensor, weights: Tensor, assignment: Tensor) -> Tensor:
    """combine as a matmul: y = S @ (w * ys) with S[n, m] = 1 where row m belongs to token n."""
    xp = get_array_module(ys.data)
    N, k = weights.shape
    w = weights.reshape(-1)[assignment.data]  # (M,) indexing: its backward puts dw back into (N k,)
    S = (xp.arange(N)[:, None] == (assignment.data // k)[None, :]).astype(ys.dtype)  # (N, M) 0/1, no gradient
    return Tensor(S, device=ys.device) @ (ys * w.reshape(-1, 1))  # (N, C)
