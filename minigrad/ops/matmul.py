"""Matrix products: `matmul` (NumPy's semantics, batched and broadcasting) and `linear` (x @ W.T + b).

For C = A @ B with A (n, k), B (k, m), C (n, m):  C_ij = sum_p A_ip B_pj, so
dA_ip = sum_j dC_ij B_pj  and  dB_pj = sum_i A_ip dC_ij, that is

    dA = dC @ B.T    (n, k) = (n, m) @ (m, k)
    dB = A.T @ dC    (k, m) = (k, n) @ (n, m)

Batched inputs apply this to each matrix of the batch; an input broadcast over
batch dimensions gets its gradient summed over them (unbroadcast).

Read next: softmax.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array
from minigrad.ops.elementwise import unbroadcast
from minigrad.ops.reduce import col_sum
from minigrad.tensor import Tensor, as_operands


class MatMul(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a, self.b = a, b
        return a @ b

    # 1-D operands follow NumPy: a (k,) is a row (1, k), b (k,) is a column (k, 1), and the
    # added axis is dropped from the result. Backward restores those axes, applies
    #   da = dout @ b^T,  db = a^T @ dout   (per batch matrix)
    # and sums over broadcast batch dimensions.
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        a, b = self.a, self.b
        a2 = a.reshape(1, -1) if a.ndim == 1 else a  # (..., n, k)
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b  # (..., k, m)
        g = dout
        if a.ndim == 1:
            g = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) if b.ndim > 1 else g.reshape(1, *g.shape)
        if b.ndim == 1:
            g = g.reshape(g.shape + (1,))
        # g is now (..., n, m)
        da = db = None
        if self.needs_grad[0]:
            da = unbroadcast(g @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            db = unbroadcast(a2.swapaxes(-1, -2) @ g, b2.shape).reshape(b.shape)
        return da, db


class Linear(Function):
    """y = x @ W.T + b for x (..., in), W (out, in) as PyTorch lays it out, b (out,).

    One op rather than matmul + add (simple.linear), so that dW is a single (out, N) @ (N, in) product
    over all N = prod(...) rows instead of a batch of products summed afterwards."""

    def forward(self, x: Array, w: Array, *b: Array) -> Array:
        self.x, self.w = x, w
        y = x.reshape(-1, w.shape[1]) @ w.T  # (N, out): one BLAS call, not one per batch row
        if b:
            y += b[0]
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    # x2 = x as (N, in), dy2 = dout as (N, out):
    #   dx = dout @ W            (N, in)  = (N, out) @ (out, in)
    #   dW = dy2.T @ x2          (out, in) = (out, N) @ (N, in)
    #   db = sum_n dy2[n]        (out,)
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        x, w = self.x, self.w
        dy2 = dout.reshape(-1, w.shape[0])
        dx = (dy2 @ w).reshape(x.shape) if self.needs_grad[0] else None
        dw = dy2.T @ x.reshape(-1, w.shape[1]) if self.needs_grad[1] else None
        grads = (dx, dw)
        if len(self.needs_grad) == 3:
            grads += (col_sum(dy2) if self.needs_grad[2] else None,)
        return grads


def matmul(a: Any, b: Any) -> Tensor:
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype != b.dtype:  # PyTorch does not promote here
        raise TypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
    a, b = as_operands("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} ({k_a} != {k_b})")
    return MatMul.apply(a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, as torch.nn.functional.linear."""
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not fit weight {weight.shape} (out_features, in_features)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias {bias.shape} does not fit weight {weight.shape}")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input is {x.dtype}, weight is {weight.dtype}")
    return Linear.apply(x, weight, *([bias] if bias is not None else []))
