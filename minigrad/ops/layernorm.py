"""layer_norm as one fused op: normalize over the last axis, then scale and shift.

Its simple twin, simple.layer_norm, is four lines of mean, var, sqrt and
arithmetic, and keeps half a dozen (N, C) arrays for backward; fused, it keeps
xhat and the per-row rstd. (Not x: a GPT's residual stream then lives
only as long as the forward needs it.)

Shapes: x, xhat, y, dout (..., C), N rows of C channels once the leading axes are flattened;
weight, bias (C,); mean, rstd (..., 1), one per row. Below, (N, C) and (N, 1) name them so.

Read next: rmsnorm.py (T5's norm: no mean, no bias), then embedding.py.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.ops.reduce import col_dot, col_sum, row_dot_mean, row_mean
from minigrad.tensor import Tensor


class LayerNorm(Function):
    def forward(self, x: Array, *weight_bias: Array, eps: float) -> Array:
        # weight_bias: (), (weight,) or (weight, bias), each (C,): those layer_norm was given
        xp = get_array_module(x)
        mean = row_mean(x)  # (N, 1)
        centered = x - mean  # (N, C)
        var = row_dot_mean(centered, centered)  # (N, 1) mean((x - mean)^2)
        rstd = 1.0 / xp.sqrt(var + eps)  # (N, 1)
        xhat = xp.multiply(centered, rstd, out=centered)  # (N, C) (x - mean) * rstd, in centered's buffer
        self.xhat, self.rstd, self.weight_bias = xhat, rstd, weight_bias
        if not weight_bias:
            return xhat
        y = xhat * weight_bias[0]  # (N, C)
        if len(weight_bias) == 2:
            y += weight_bias[1]
        return y

    # Backward, each line under the forward line it undoes (llm.c's layernorm_backward reads the same):
    #   y = xhat * weight + bias   =>  dweight = sum_N dout * xhat,  dbias = sum_N dout,  dxhat = dout * weight
    #   xhat = (x - mean) * rstd   =>  dx: x reaches xhat three ways, one term each (per row, C channels):
    #     term 1, x itself (mean and rstd held fixed):   rstd * dxhat
    #     term 2, through mean (d mean/dx_j = 1/C):      -rstd * mean(dxhat)
    #     term 3, through rstd = (var + eps)^(-1/2), var = mean((x - mean)^2):
    #             d rstd/dx_j = -rstd^3 (x_j - mean)/C = -rstd^2 xhat_j / C,
    #             and d loss/d rstd = sum_i dxhat_i (x_i - mean):   -rstd * xhat * mean(dxhat * xhat)
    #   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))   (N, C)
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        xhat, rstd = self.xhat, self.rstd
        grads: list[Array | None] = [None]
        dxhat = dout
        if self.weight_bias:
            grads.append(col_dot(dout, xhat) if self.needs_grad[1] else None)  # dweight (C,)
            if len(self.weight_bias) == 2:
                grads.append(col_sum(dout) if self.needs_grad[2] else None)  # dbias (C,)
            dxhat = dout * self.weight_bias[0]  # (N, C)
        if self.needs_grad[0]:
            dxhat_mean = row_mean(dxhat)  # (N, 1)
            dxhat_xhat_mean = row_dot_mean(dxhat, xhat)  # (N, 1)
            dx = dxhat - dxhat_mean  # terms 1 and 2, before the common factor rstd (N, C)
            if self.reuse_saved and self.weight_bias:  # xhat is ours alone (without weight it is the output too)
                term3 = get_array_module(xhat).multiply(xhat, dxhat_xhat_mean, out=xhat)  # (N, C) in xhat's buffer
            else:
                term3 = xhat * dxhat_xhat_mean  # (N, C)
            dx -= term3
            dx *= rstd
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
