"""SetItem: `y = x` with `y[index] = v`, the op behind `t[index] = v` and `t.copy_(src)`.

Writing into a tensor is an in-place operation (see inplace.py); while a graph is
recorded it becomes this out-of-place op, whose result then takes the tensor's place.

Shapes: x and dout (...), v broadcastable to x[index]'s shape.

Read next: ../inplace.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array
from minigrad.ops.elementwise import unbroadcast


class SetItem(Function):
    def forward(self, x: Array, v: Array, index: Any) -> Array:
        self.index, self.v_shape = index, v.shape
        y = x.copy()
        y[index] = v
        return y

    # y = x everywhere except at index, where y = v (broadcast to x[index]'s shape)
    #   dx = dout with zeros at index   (those elements of x were overwritten: they no longer matter)
    #   dv = dout[index], summed back to v's shape (unbroadcast)
    # An integer-array index naming one place twice keeps the last write in forward; its gradient
    # goes to every write (PyTorch leaves the result of such duplicates undefined).
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        dx = dv = None
        if self.needs_grad[0]:
            dx = dout.copy()
            dx[self.index] = 0
        if self.needs_grad[1]:
            dv = unbroadcast(dout[self.index], self.v_shape)
        return dx, dv
