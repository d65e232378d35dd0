"""rms_norm as one fused op: divide each row by its root mean square, then scale (T5's norm,
Zhang and Sennrich 2019): layer_norm without the mean and without the bias.

    y = x * rsqrt(mean(x^2) + eps) * weight

Its simple twin, rms_norm_simple below, is two lines of primitives (read it first); it keeps
x^2, the mean, the root and the quotient for backward. Fused, the op keeps xhat and the per-row
rstd, as LayerNorm does. PyTorch's names: F.rms_norm(input, normalized_shape, weight=None,
eps=None), where eps=None means torch.finfo(input.dtype).eps.

Shapes: x, xhat, y, dout (..., C), N rows of C channels once the leading axes are flattened;
weight (C,); rstd (..., 1), one per row. Below, (N, C) and (N, 1) name them so.

Read next: embedding.py.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.ops.reduce import col_dot, row_dot_mean
from minigrad.tensor import Tensor

# ---- the simple version: primitives only ------------------------------------------------------


def rms_norm_simple(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """The op below from mean, sqrt and arithmetic; the engine chains their backwards."""
    xhat = x / ((x * x).mean(-1, keepdims=True) + eps).sqrt()  # (N, C) each row's mean square now 1 (up to eps)
    return xhat if weight is None else xhat * weight


# ---- the fused op -----------------------------------------------------------------------------


class RMSNorm(Function):
    def forward(self, x: Array, *weight: Array, eps: float) -> Array:
        # weight: () or (weight,), (C,)
        xp = get_array_module(x)
        rstd = 1.0 / xp.sqrt(row_dot_mean(x, x) + eps)  # (N, 1) 1 / sqrt(mean(x^2) + eps)
        xhat = x * rstd  # (N, C)
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        return xhat * weight[0] if weight else xhat  # (N, C)

    # Backward, each line under the forward line it undoes:
    #   y = xhat * weight       =>  dweight = sum_N dout * xhat   (C,),   dxhat = dout * weight   (N, C)
    #   xhat = x * rstd         =>  dx: x reaches xhat two ways, one term each (per row, C channels):
    #     term 1, x itself (rstd held fixed):   rstd * dxhat
    #     term 2, through rstd = (ms + eps)^(-1/2), ms = mean(x^2):
    #             d rstd/dx_j = -1/2 rstd^3 * 2 x_j / C = -rstd^2 xhat_j / C,
    #             and d loss/d rstd = sum_i dxhat_i x_i:   -rstd * xhat * mean(dxhat * xhat)
    #   dx = rstd * (dxhat - xhat * mean(dxhat * xhat))   (N, C)
    # LayerNorm's backward less its mean term: with no mean subtracted, nothing is subtracted back.
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        xhat, rstd = self.xhat, self.rstd
        grads: list[Array | None] = [None]
        dxhat = dout
        if self.weight:
            grads.append(col_dot(dout, xhat) if self.needs_grad[1] else None)  # dweight (C,)
            dxhat = dout * self.weight[0]  # (N, C)
        if self.needs_grad[0]:
            term2 = xhat * row_dot_mean(dxhat, xhat)  # (N, C) xhat * mean(dxhat * xhat)
            grads[0] = (dxhat - term2) * rstd  # (N, C) terms 1 and 2 with their common factor rstd
        return tuple(grads)


def rms_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """Normalize over the trailing dims `normalized_shape` to root mean square 1, then * weight, as
    torch.nn.functional.rms_norm; eps=None takes the machine epsilon of input's dtype, as PyTorch."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if not shape or k > input.ndim or input.shape[input.ndim - k :] != shape:
        raise ValueError(f"rms_norm: normalized_shape {shape} is not the trailing shape of the input {input.shape}")
    if weight is not None and weight.shape != shape:
        raise ValueError(f"rms_norm: weight has shape {weight.shape}, expected {shape} (normalized_shape)")
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    if eps < 0:
        raise ValueError(f"rms_norm: eps must be >= 0, got {eps}")
    c = math.prod(shape)
    x = input.reshape(input.shape[: input.ndim - k] + (c,)) if k > 1 else input  # one axis of C = prod(shape)
    w = weight.reshape(c) if weight is not None and k > 1 else weight
    y = RMSNorm.apply(x, *([w] if w is not None else []), eps=eps)
    return y.reshape(input.shape) if k > 1 else y
