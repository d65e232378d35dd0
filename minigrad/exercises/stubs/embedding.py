"""Exercise: embedding's backward, a scatter-add.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check embedding --file <this file>

The forward is given: a gather, what minigrad/ops/embedding.py's Embedding computes. The ids are
not a differentiable input (they are integers): they come in as a keyword, as in minigrad.

    y[n] = weight[idx[n]]        (..., C)

Shapes: weight (V, C); idx (...) integers in [0, V); y, dout (..., C).

When you are done (or stuck), the answer is minigrad/ops/embedding.py, Embedding.backward.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module  # noqa: F401 (for your backward)


class Embedding(Function):
    def forward(self, weight: Array, idx: Array) -> Array:
        self.idx, self.shape, self.dtype = idx, weight.shape, weight.dtype  # what backward needs (not weight)
        return weight[idx]  # (..., C)

    # y[n, :] = weight[idx[n], :]
    #   dweight  (V, C)   row v of the table gets dout[n] from every n that read it, and none from the
    #                     others. The same id may occur several times (the checker's ids do).
    # xp = get_array_module(dout) is NumPy or CuPy, whichever holds the data (xp.zeros, ...).
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in the term
        # saved by forward: self.idx (...), self.shape (V, C), self.dtype (the table's)
        dweight = ...  # (V, C)
        return {"dweight": dweight}

    def backward(self, dout: Array) -> tuple[Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        return (self.backward_terms(dout)["dweight"],)
