"""Exercise: layer norm's backward, term by term.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check layer_norm --file <this file>

The forward is given: it computes what minigrad/ops/layernorm.py computes (without that file's
buffer reuse) and keeps what backward needs, xhat and rstd (not x: xhat and rstd hold it).

    mean = mean(x)                              (N, 1)  over the last axis, C channels
    rstd = 1 / sqrt(mean((x - mean)^2) + eps)   (N, 1)  the biased variance, as PyTorch
    xhat = (x - mean) * rstd                    (N, C)
    y    = xhat * weight + bias                 (N, C)

Shapes: x, xhat, y, dout (N, C), where N may be several leading axes (the checker passes a 3-d x
too); weight, bias (C,); mean, rstd (N, 1).

You return each piece of the gradient under its own name, so that the checker can tell you which
one is wrong. When you are done (or stuck), the answer is minigrad/ops/layernorm.py, LayerNorm.backward.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module


class LayerNorm(Function):
    def forward(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)  # (N, 1)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (N, 1)
        rstd = 1.0 / xp.sqrt(var + eps)  # (N, 1)
        xhat = (x - mean) * rstd  # (N, C)
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        return xhat * weight + bias  # (N, C)

    # Each forward line, undone in reverse order; dX is d(loss)/dX and has X's shape.
    #
    #   y = xhat * weight + bias
    #     dweight  (C,)    weight_c multiplies xhat[n, c] in every row n: one contribution per row
    #                      (sum over every axis but the last)
    #     dbias    (C,)    the same with d y / d bias = 1
    #     dxhat    (N, C)
    #
    #   xhat = (x - mean) * rstd: x reaches xhat three ways. Write one term per way, each with the
    #   other two held fixed, each including its factor rstd (per row, i and j run over the C channels):
    #     dx_direct     (N, C)           x itself: mean and rstd held fixed
    #     dx_via_mean   (N, 1) or (N, C) through mean = sum_j x_j / C, so d mean / d x_j = 1 / C
    #     dx_via_rstd   (N, C)           through rstd = (var + eps)^(-1/2), var = mean((x - mean)^2):
    #                                    d rstd / d x_j = -rstd^3 (x_j - mean) / C   (write it with xhat),
    #                                    and d loss / d rstd = sum_i dxhat_i (x_i - mean)
    #     dx            (N, C)           the three together
    #
    # Check yourself: the rows of dx sum to 0 (moving a whole row by a constant leaves xhat as it is).
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.xhat (N, C), self.rstd (N, 1), self.weight (C,)
        dweight = ...  # (C,)
        dbias = ...  # (C,)
        dxhat = ...  # (N, C)
        dx_direct = ...  # (N, C)
        dx_via_mean = ...  # (N, 1) or (N, C)
        dx_via_rstd = ...  # (N, C)
        dx = ...  # (N, C)
        return {"dweight": dweight, "dbias": dbias, "dxhat": dxhat, "dx_direct": dx_direct,
                "dx_via_mean": dx_via_mean, "dx_via_rstd": dx_via_rstd, "dx": dx}

    def backward(self, dout: Array) -> tuple[Array, Array, Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        terms = self.backward_terms(dout)
        return terms["dx"], terms["dweight"], terms["dbias"]
