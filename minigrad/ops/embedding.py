"""embedding: look up rows of a weight table by integer ids.

Forward is a gather, y[n] = weight[idx[n]] (its simple twin, simple.embedding,
is exactly that indexing, whose backward is the generic scatter); backward is the matching
scatter-add, dweight[idx[n]] += dout[n], where an id that occurs k times
collects the sum of its k gradients (dweight[idx] += dout would keep only one).
`add.at(dweight, idx, dout)` says exactly that. On a GPU (CuPy) it is one kernel
of atomic adds; in NumPy it is a slow generic loop, so there sorting the ids puts
the repeats of each id side by side, and one `add.reduceat` sums every run of
equal ids at once (several times faster where ids repeat a lot, as in a character-level
model's small table). CuPy's `add.reduceat` would be wrong here: it takes differences of one
running total over all rows, which in float32 carries the rounding of everything summed before
a run into every row, where summing each run alone rounds only that row's own sum
(tests/test_nn.py measures both), so the GPU keeps to `add.at`. Shapes below: N = idx.size ids.

Ids are checked against the table's size only when they are NumPy arrays: on a
GPU reading their min and max would make the CPU wait for the GPU at every call,
so there they are checked where they enter (gpt's batch sampler, the tokenizer).

Shapes: idx (...) integers in [0, V); weight (V, C); y, dout (..., C).

Read next: dropout.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.speed import is_plain
from minigrad.tensor import Tensor, check_same_device


class Embedding(Function):
    def forward(self, weight: Array, idx: Array) -> Array:
        self.idx, self.shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    # y[n, :] = weight[idx[n], :]  =>  dweight[v, :] = sum over n with idx[n] == v of dout[n, :]
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(dout)
        dweight = xp.zeros(self.shape, dtype=self.dtype)  # (V, C)
        ids = self.idx.reshape(-1)  # (N,)
        rows = dout.reshape(-1, self.shape[1])  # (N, C)
        if xp is not np or is_plain():  # the math as it reads; on a GPU atomic adds, exact and no waiting
            xp.add.at(dweight, ids, rows)  # dweight[ids[n]] += rows[n], repeats summed
            return (dweight,)
        # NumPy's add.at is a slow loop: sum each run of equal ids at once instead
        if ids.size == 0:
            return (dweight,)
        order = np.argsort(ids)
        sorted_ids = ids[order]  # (N,) runs of equal ids
        is_start = np.concatenate([np.ones(1, dtype=bool), sorted_ids[1:] != sorted_ids[:-1]])
        starts = np.flatnonzero(is_start)  # (U,) where each run begins
        dweight[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)  # (U, C) one sum per distinct id
        return (dweight,)


def embedding(idx: Any, weight: Tensor) -> Tensor:
    """Rows of `weight` (V, C) picked by integer `idx` (any shape): result (*idx.shape, C)."""
    ids = idx if isinstance(idx, Tensor) else Tensor(idx, device=weight.device)
    check_same_device("embedding", (weight, ids))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got {ids.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    if isinstance(ids.data, np.ndarray):  # on the host: free to check (see the top of the file)
        check_ids(ids.data, weight.shape[0], "embedding")
    return Embedding.apply(weight, idx=ids.data)


def check_ids(ids: np.ndarray, n: int, where: str) -> np.ndarray:
    """IndexError unless every id (a NumPy array, on the host) is in [0, n); returns `ids`."""
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise IndexError(f"{where}: id {bad} is out of range for an embedding with {n} rows (valid: 0..{n - 1})")
    return ids
