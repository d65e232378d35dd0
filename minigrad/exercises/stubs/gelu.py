"""Exercise: GELU's backward (GPT-2's tanh form), as two terms.

Fill in `backward_terms` below, then run

    python -m minigrad.exercises check gelu --file <this file>

The forward is given: GPT-2's GELU, what minigrad's gelu(x, approximate="tanh") computes
(minigrad/ops/elementwise.py computes it on cache-sized chunks; here it is one line per step).
It keeps what backward needs: x and t = tanh(u).

    u = c (x + 0.044715 x^3)     c = sqrt(2 / pi)
    t = tanh(u)
    y = x/2 * (1 + t)

Shapes: x, t, y, dout (...) of any shape: the op is elementwise.

When you are done (or stuck), the answer is minigrad/ops/elementwise.py, _gelu_tanh_piece (its
dydx) and GELU.backward.
"""
from __future__ import annotations

import math

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module

C = math.sqrt(2 / math.pi)


class GELU(Function):
    def forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        u = C * (x + 0.044715 * x**3)  # (...)
        self.x, self.t = x, xp.tanh(u)  # (...), (...)
        return 0.5 * x * (1 + self.t)  # (...)

    # y = a * b with a = x/2 and b = 1 + tanh(u(x)): x reaches y through both factors. One term each,
    # the other factor held fixed:
    #   dx_via_half_x  (...)   d a / d x = 1/2
    #   dx_via_tanh    (...)   d tanh(u) / d u = 1 - tanh(u)^2,  d u / d x = c (1 + 3 * 0.044715 x^2)
    #   dx             (...)   both together
    # Each term carries dout (elementwise: dx = dout * dy/dx).
    def backward_terms(self, dout: Array) -> dict[str, Array]:
        raise NotImplementedError("fill in backward_terms")  # delete this line, then fill in each term
        # saved by forward: self.x (...), self.t (...)
        dx_via_half_x = ...  # (...)
        dx_via_tanh = ...  # (...)
        dx = ...  # (...)
        return {"dx_via_half_x": dx_via_half_x, "dx_via_tanh": dx_via_tanh, "dx": dx}

    def backward(self, dout: Array) -> tuple[Array]:
        """Given: what the engine calls; one gradient per input of forward, taken from your terms."""
        return (self.backward_terms(dout)["dx"],)
