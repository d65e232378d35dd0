"""Exercise: linear's backward: y = x @ weight.T + bias, three gradients.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check linear --file <this file>

The forward is given: what minigrad/ops/matmul.py's Linear computes, with PyTorch's layout of the
weight (out, in). It keeps what backward needs: x and weight.

    y = x @ weight.T + bias       (N, out) = (N, in) @ (in, out) + (out,)

Shapes: x (N, in), where N may be several leading axes (the checker passes a 3-d x too);
weight (out, in); bias (out,); y, dout (N, out).

When you are done (or stuck), the answer is minigrad/ops/matmul.py, Linear.backward.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array


class Linear(Function):
    def forward(self, x: Array, weight: Array, bias: Array) -> Array:
        self.x, self.weight = x, weight  # (N, in), (out, in)
        return x @ weight.T + bias  # (N, out)

    # y[n, o] = sum_i x[n, i] weight[o, i] + bias[o]:
    #   dx       (N, in)    x[n, i] meets weight[o, i] for every output o
    #   dweight  (out, in)  weight[o, i] meets x[n, i] in every row n: a sum over the rows; with several
    #                       leading axes, fold them into one first (reshape(-1, ...)), so it is one matmul
    #   dbias    (out,)     bias[o] is in every row n
    # Each is a matmul or a sum: write its shapes down as (a, b) @ (b, c) first, then the transposes follow.
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.x (N, in), self.weight (out, in)
        dx = ...  # (N, in)
        dweight = ...  # (out, in)
        dbias = ...  # (out,)
        return {"dx": dx, "dweight": dweight, "dbias": dbias}

    def backward(self, dout: Array) -> tuple[Array, Array, Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        terms = self.backward_terms(dout)
        return terms["dx"], terms["dweight"], terms["dbias"]
