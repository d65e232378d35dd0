"""embedding: look up rows of a weight table by integer ids.

Forward is a gather, y[n] = weight[idx[n]] (its simple twin, simple.embedding,
is exactly that indexing, whose backward is the generic scatter); backward is the matching
scatter-add, dweight[idx[n]] += dout[n], where an id that occurs k times
collects the sum of its k gradients (dweight[idx] += dout would keep only one).
`add.at(dweight, idx, dout)` says exactly that, but it is a slow generic loop;
sorting the ids puts the repeats of each id side by side, and one `add.reduceat`
then sums every run of equal ids at once (about 6x faster here).

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
        ids = self.idx.reshape(-1)  # (N,)
        if ids.size == 0:
            return (dweight,)
        order = xp.argsort(ids)
        sorted_ids = ids[order]  # (N,) runs of equal ids
        is_start = xp.concatenate([xp.ones(1, dtype=bool), sorted_ids[1:] != sorted_ids[:-1]])
        starts = xp.flatnonzero(is_start)  # (U,) where each run begins
        rows = dout.reshape(-1, self.shape[1])[order]  # (N, C) in id order
        dweight[sorted_ids[starts]] = xp.add.reduceat(rows, starts, axis=0)  # (U, C) one sum per distinct id
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
