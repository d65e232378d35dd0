"""dropout: zero each element with probability p during training, scale the rest by 1/(1-p).

"Inverted" scaling keeps the expected value of every element unchanged, so at
evaluation dropout is simply the identity. The mask comes from the device's
seeded generator (minigrad.manual_seed), so runs are reproducible.

Shapes: x, y, dout, mask (...) all alike.

Read next: attention.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, generator
from minigrad.tensor import Tensor


def keep_mask(shape: tuple[int, ...], p: float, device: str, dtype: Any) -> Any:
    """1/(1-p) with probability 1-p, else 0: the inverted-dropout multiplier."""
    keep = generator(device).random(shape, dtype=dtype) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


class Dropout(Function):
    def forward(self, x: Array, mask: Array) -> Array:
        self.mask = mask
        return x * mask

    # y = x * mask  =>  dx = dout * mask  (the same elements dropped, the same scaling)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.mask,)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, mask=keep_mask(x.shape, p, x.device, x.dtype))
