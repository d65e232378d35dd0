"""Activations built on the sigmoid: logsigmoid, softplus and silu, each one op with its own backward.

All three meet e^x, which overflows for large x (float32 past 88), and 1 - sigmoid(x), which
cancels to 0 long before it is small enough to be 0. So each op computes
z = e^(-|x|), which lies in (0, 1] for every x, and writes what it needs in terms of z:

    sigmoid(x)  = 1 / (1 + z)  for x >= 0,   z / (1 + z)  for x < 0
    log(1 + e^x) = max(x, 0) + log1p(z)

Their simple twins (simple.logsigmoid, simple.softplus, simple.silu) compose the same
formulas from primitives; tests/test_functional_torch.py proves them equal.

Shapes: x, y, dout (...) of any shape, elementwise.

Read next: loss.py.
"""
from __future__ import annotations

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.tensor import Tensor


def _sigmoid(x: Array) -> Array:
    """1 / (1 + e^-x) to full relative precision, also where it is tiny (x << 0)."""
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))  # (...) in (0, 1]: never overflows
    return xp.where(x >= 0, 1, z) / (1 + z)


class LogSigmoid(Function):
    def forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        self.x = x
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))  # log sigmoid(x) = -log(1 + e^-x)

    # y = log sigmoid(x)  =>  dy/dx = sigmoid'(x) / sigmoid(x) = 1 - sigmoid(x) = sigmoid(-x):
    #   dx = dout * sigmoid(-x)      (sigmoid(-x) from z, not as 1 - sigmoid(x), which cancels for x >> 0)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * _sigmoid(-self.x),)


class Softplus(Function):
    def forward(self, x: Array, beta: float, threshold: float) -> Array:
        xp = get_array_module(x)
        self.x, self.beta, self.threshold = x, beta, threshold
        bx = beta * x  # (...)
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta  # log(1 + e^(beta x)) / beta
        return xp.where(bx > threshold, x, soft)  # past the threshold, PyTorch returns x itself

    # y = log(1 + e^(beta x)) / beta  =>  dy/dx = e^(beta x) / (1 + e^(beta x)) = sigmoid(beta x);
    # y = x past the threshold  =>  dy/dx = 1:
    #   dx = dout * (sigmoid(beta x) where beta x <= threshold, else 1)
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(dout)
        bx = self.beta * self.x
        return (dout * xp.where(bx > self.threshold, 1, _sigmoid(bx)),)


class SiLU(Function):
    def forward(self, x: Array) -> Array:
        s = _sigmoid(x)  # (...)
        if any(self.needs_grad):  # as GELU: keep dy/dx (needs s and x), not x
            self.dydx = s * (1 + x * _sigmoid(-x))
        return x * s

    # y = x sigmoid(x)  =>  dy/dx = sigmoid(x) + x sigmoid(x) (1 - sigmoid(x))
    #                             = sigmoid(x) (1 + x sigmoid(-x)),  computed in forward:
    #   dx = dout * dy/dx
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.dydx,)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) elementwise, as torch.nn.functional.logsigmoid; finite for every finite x."""
    return LogSigmoid.apply(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta elementwise, and x itself where beta x > threshold, as PyTorch."""
    if beta == 0:
        raise ValueError("softplus: beta must not be 0 (it divides by beta)")
    return Softplus.apply(input, beta=float(beta), threshold=float(threshold))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) elementwise (also called swish), as torch.nn.functional.silu."""
    if inplace:
        raise ValueError("silu: inplace=True is not supported; use y = silu(x)")
    return SiLU.apply(input)
