"""Exercise: softmax's backward, as two terms.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check softmax --file <this file>

The forward is given: it computes what minigrad/ops/softmax.py's Softmax computes (over the last
axis) and keeps what backward needs, the output y.

    e = exp(x - max(x))     (N, V)  the shift changes nothing and keeps exp from overflowing
    s = sum(e)              (N, 1)
    y = e / s               (N, V)

Shapes: x, y, dout (N, V), where N may be several leading axes; the softmax runs over the last axis.

When you are done (or stuck), the answer is minigrad/ops/softmax.py, Softmax.backward.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module


class Softmax(Function):
    def forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))  # (N, V)
        self.y = e / e.sum(axis=-1, keepdims=True)  # (N, V)
        return self.y

    # y_i = e_i / s: x_i reaches the output through the numerator e_i (only in y_i) and through the
    # sum s (in every y_j). Write one term per way, the other held fixed (i, j run over the V entries):
    #   dx_via_numerator  (N, V)   d e_i / d x_i = e_i; write it with y
    #   dx_via_sum        (N, V)   d y_j / d s = -e_j / s^2, and d s / d x_i = e_i; again with y only
    #   dx                (N, V)   both together
    #
    # Check yourself: the rows of dx sum to 0 (the rows of y always sum to 1), and a dout that is
    # constant along a row gives dx = 0 there.
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.y (N, V)
        dx_via_numerator = ...  # (N, V)
        dx_via_sum = ...  # (N, V)
        dx = ...  # (N, V)
        return {"dx_via_numerator": dx_via_numerator, "dx_via_sum": dx_via_sum, "dx": dx}

    def backward(self, dout: Array) -> tuple[Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        return (self.backward_terms(dout)["dx"],)
