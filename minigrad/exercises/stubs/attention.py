"""Exercise: attention's backward, step by step: dV, dP, dS, dQ, dK.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check attention --file <this file>

The forward is given: scaled dot-product attention without dropout, what minigrad's
scaled_dot_product_attention computes (minigrad/ops/attention.py does it in blocks of queries;
here it is one line per step). With causal=True, query i sees keys j <= i + (Tk - Tq), as minigrad
(a key it may not see gets score -inf, so weight 0). It keeps what backward needs: q, k, v and P.

    S = q @ k^T * scale (+ mask)    (B, H, Tq, Tk)  scores
    P = softmax(S)                  (B, H, Tq, Tk)  each row sums to 1
    O = P @ v                       (B, H, Tq, Dv)

Shapes: B batch, H heads, Tq queries, Tk keys, D the size of a query and key, Dv that of a value.
q (B, H, Tq, D); k (B, H, Tk, D); v (B, H, Tk, Dv); O, dout (B, H, Tq, Dv). The mask is a constant.

When you are done (or stuck), the answer is minigrad/ops/attention.py, ScaledDotProductAttention.backward.
"""
from __future__ import annotations

import math

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module


class Attention(Function):
    def forward(self, q: Array, k: Array, v: Array, causal: bool = False, scale: float | None = None) -> Array:
        xp = get_array_module(q)
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        S = q @ k.swapaxes(-1, -2) * scale  # (B, H, Tq, Tk)
        if causal:  # -inf above the diagonal that ends at the last key
            tq, tk = S.shape[-2:]
            S = S + xp.triu(xp.full((tq, tk), -xp.inf), k=tk - tq + 1)  # (B, H, Tq, Tk)
        e = xp.exp(S - S.max(axis=-1, keepdims=True))  # (B, H, Tq, Tk)
        P = e / e.sum(axis=-1, keepdims=True)  # (B, H, Tq, Tk) softmax over the keys
        self.q, self.k, self.v, self.P, self.scale = q, k, v, P, scale
        return P @ v  # (B, H, Tq, Dv)

    # Each forward line, undone in reverse order; dX is d(loss)/dX and has X's shape. dout is dO.
    #   O = P @ v
    #     dV  (B, H, Tk, Dv)   a matmul's backward (as linear's): write the shapes down first
    #     dP  (B, H, Tq, Tk)
    #   P = softmax(S), one row of keys at a time
    #     dS  (B, H, Tq, Tk)   softmax's backward (the softmax exercise), with dP as its dout.
    #                          A masked key has P = 0, so its dS is 0 by itself.
    #   S = q @ k^T * scale (+ mask)
    #     dQ  (B, H, Tq, D)    a matmul's backward again; do not forget the scale
    #     dK  (B, H, Tk, D)
    # x.swapaxes(-1, -2) transposes the last two axes of a batch of matrices.
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.q, self.k, self.v, self.P, self.scale
        dV = ...  # (B, H, Tk, Dv)
        dP = ...  # (B, H, Tq, Tk)
        dS = ...  # (B, H, Tq, Tk)
        dQ = ...  # (B, H, Tq, D)
        dK = ...  # (B, H, Tk, D)
        return {"dV": dV, "dP": dP, "dS": dS, "dQ": dQ, "dK": dK}

    def backward(self, dout: Array) -> tuple[Array, Array, Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        terms = self.backward_terms(dout)
        return terms["dQ"], terms["dK"], terms["dV"]
