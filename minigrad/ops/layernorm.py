"""layer_norm as one fused op: normalize over the last axis, then scale and shift.

Composed of primitives it would store half a dozen (N, C) arrays; fused, it
keeps xhat and the per-row rstd. (Not x: a GPT's residual stream then lives
only as long as the forward needs it.)

Shapes: x, xhat, y, dout (N..., C); weight, bias (C,); mean, rstd (N..., 1).

Read next: embedding.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.matmul import col_sum, row_mean
from minigrad.tensor import Tensor


def _row_dot_mean(a: Any, b: Any) -> Any:
    """mean(a * b) over the last axis, keepdims; einsum reads a and b once and writes no (N, C) temporary."""
    return get_array_module(a).einsum("...j,...j->...", a, b)[..., None] * (1.0 / a.shape[-1])


class LayerNorm(Function):
    def forward(self, x: Any, *wb: Any, eps: float) -> Any:
        xp = get_array_module(x)
        xhat = x - row_mean(x)  # x - mean (N, C)
        rstd = 1.0 / xp.sqrt(_row_dot_mean(xhat, xhat) + eps)  # (N, 1)
        xhat *= rstd  # xhat, in place
        self.xhat, self.rstd, self.wb = xhat, rstd, wb
        if not wb:
            return xhat
        y = xhat * wb[0]
        if len(wb) == 2:
            y += wb[1]
        return y

    # Forward, line by line:            Backward, line by line (reverse order):
    #   xhat = (x - mean) * rstd          dweight = sum_N dout * xhat        (C,)
    #   y = xhat * weight + bias          dbias   = sum_N dout               (C,)
    #                                     dxhat   = dout * weight            (N, C)
    # xhat depends on x directly and through mean and rstd = (var + eps)^-1/2; summing the
    # three paths (d mean/dx = 1/C, d var/dx = 2 (x - mean)/C) gives, per row,
    #   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))      (N, C)
    def backward(self, dout: Any) -> tuple[Any, ...]:
        xp = get_array_module(dout)
        xhat = self.xhat
        grads: list[Any] = [None]
        dxhat = dout
        if self.wb:
            c = xhat.shape[-1]  # dweight = sum_N dout * xhat, by einsum: no (N, C) temporary
            dweight = xp.einsum("ij,ij->j", dout.reshape(-1, c), xhat.reshape(-1, c)) if self.needs_grad[1] else None
            grads.append(dweight)
            if len(self.wb) == 2:
                grads.append(col_sum(dout) if self.needs_grad[2] else None)
            dxhat = dout * self.wb[0]
        if self.needs_grad[0]:
            dx = dxhat - row_mean(dxhat)
            b = _row_dot_mean(dxhat, xhat)
            if self.reuse_saved and self.wb:  # xhat is ours alone (without weight it is the output too)
                xhat *= b
            else:
                xhat = xhat * b
            dx -= xhat
            dx *= self.rstd
            grads[0] = dx
        return tuple(grads)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each row of x over its last axis to mean 0 and variance 1, then * weight + bias."""
    c = x.shape[-1] if x.ndim else 0
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (c,):
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected ({c},) for input {x.shape}")
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias needs a weight")
    params = [p for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *params, eps=eps)
