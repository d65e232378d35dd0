"""embedding: look up rows of a weight table by integer ids.

Forward is a gather, y[n] = weight[idx[n]]; backward is the matching
scatter-add, dweight[idx[n]] += dout[n], where an id that occurs k times
collects the sum of its k gradients. `add.at` does the scatter without a Python
loop and adds correctly for repeated ids (dweight[idx] += dout would not).

Shapes: idx (...) integers in [0, V); weight (V, C); y, dout (..., C).

Read next: dropout.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor, check_same_device


class Embedding(Function):
    def forward(self, weight: Any, idx: Any) -> Any:
        self.idx, self.shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    # y[n, :] = weight[idx[n], :]  =>  dweight[v, :] = sum over n with idx[n] == v of dout[n, :]
    def backward(self, dout: Any) -> tuple[Any]:
        xp = get_array_module(dout)
        dweight = xp.zeros(self.shape, dtype=self.dtype)  # (V, C)
        xp.add.at(dweight, self.idx.reshape(-1), dout.reshape(-1, self.shape[1]))
        return (dweight,)


def embedding(idx: Any, weight: Tensor) -> Tensor:
    """Rows of `weight` (V, C) picked by integer `idx` (any shape): result (*idx.shape, C)."""
    ids = idx if isinstance(idx, Tensor) else Tensor(idx, device=weight.device)
    check_same_device("embedding", (weight, ids))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got {ids.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    v = weight.shape[0]
    if ids.numel():
        lo, hi = int(ids.data.min()), int(ids.data.max())
        if lo < 0 or hi >= v:
            bad = lo if lo < 0 else hi
            raise IndexError(f"embedding: id {bad} is out of range for an embedding with {v} rows (valid: 0..{v - 1})")
    return Embedding.apply(weight, idx=ids.data)
