"""Datasets and batches, as torch.utils.data: a DataLoader asks its batch sampler for lists of
indices, reads those samples from the dataset, and collates them into tensors.

    for indices in batch_sampler:                           # [3, 0, 7, ...]: batch_size indices
        yield collate_fn([dataset[i] for i in indices])     # samples -> (batch_size, ...) tensors

Shuffling draws a new permutation every epoch from `generator`, or from minigrad's global CPU
generator (minigrad.manual_seed) when none is given.

Leaves out: worker processes (num_workers > 0), IterableDataset, sampling with replacement,
pinned memory (pin_memory is accepted and does nothing).

Read next: ../gradcheck.py.
"""
from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from minigrad.backend import Generator
from minigrad.creation import randperm
from minigrad.ops.shape import stack
from minigrad.tensor import Tensor

# ---- datasets -------------------------------------------------------------------------


class Dataset:
    """A map-style dataset: subclasses define __getitem__(index) -> sample and __len__()
    (not defined here, as in PyTorch, so len() of a dataset without one is a TypeError)."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is (t[i] for each tensor): tensors that share their first dimension."""

    def __init__(self, *tensors: Tensor) -> None:
        if any(t.shape[:1] != tensors[0].shape[:1] for t in tensors):
            shapes = [t.shape for t in tensors]
            raise ValueError(f"TensorDataset: the tensors differ in their first dimension: {shapes}")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index: int | list[int]) -> Any:
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another: index i falls in the first dataset whose running total of
    lengths (`cumulative_sizes`) exceeds it."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = [0] * len(self.datasets)
        total = 0
        for k, d in enumerate(self.datasets):
            total += len(d)
            self.cumulative_sizes[k] = total

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} is out of range for {len(self)} samples")
        index %= len(self)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[k][index - (self.cumulative_sizes[k - 1] if k else 0)]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]


def random_split(dataset: Any, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Subset]:
    """Disjoint random Subsets of the given lengths, or fractions of len(dataset) that sum to 1:
    floor(fraction * n) each, then the remainder handed out one by one from the first split on
    (PyTorch's rule)."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1")
        counts = [math.floor(n * frac) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this might result in an empty "
                              f"dataset", stacklevel=2)
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {list(lengths)} do not sum to the dataset's length {n}")
    order = _permutation(n, generator)
    ends = np.cumsum(lengths).tolist()
    return [Subset(dataset, order[end - length:end]) for end, length in zip(ends, lengths)]


# ---- samplers: which indices, in which order, in which batches ----------------------------


def _permutation(n: int, generator: Generator | None) -> list[int]:
    """A random order of range(n) from `generator` (None: minigrad's global CPU generator)."""
    return randperm(n, generator=generator, device="cpu").tolist()


class SequentialSampler:
    """0, 1, ..., len(data_source) - 1, every epoch."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """A new permutation of the indices every time it is iterated (every epoch)."""

    def __init__(self, data_source: Any, *, generator: Generator | None = None) -> None:
        self.data_source, self.generator = data_source, generator

    def __iter__(self) -> Iterator[int]:
        return iter(_permutation(len(self.data_source), self.generator))

    def __len__(self) -> int:
        return len(self.data_source)


class BatchSampler:
    """Lists of batch_size indices from `sampler`; the last is shorter, or dropped with drop_last."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ---- collation: a list of samples -> one batch ---------------------------------------------

_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def default_collate(batch: Sequence[Any]) -> Any:
    """PyTorch's default_collate: tensors stacked along a new dim 0; NumPy arrays and scalars the
    same, as tensors of their dtype (on the CPU); Python ints -> int64 (bools -> bool), floats ->
    float64, as PyTorch; strings kept as the list; dicts key by key; tuples and lists position by
    position (a tuple becomes a list, a namedtuple stays one)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch)  # (B, *elem.shape)
    if isinstance(elem, (np.ndarray, np.generic)):
        if elem.dtype.kind not in "biuf":
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        arr = np.stack(batch)  # (B, *elem.shape)
        return Tensor(arr, dtype=arr.dtype)
    if isinstance(elem, float):
        return Tensor(np.asarray(batch, dtype=np.float64), dtype=np.float64)
    if isinstance(elem, int):  # bool too: a batch of bools is a bool tensor, of ints (with bools) int64
        return Tensor(np.asarray(batch))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(samples) for samples in zip(*batch)]
        return type(elem)(*columns) if hasattr(elem, "_fields") else columns  # a namedtuple by its fields
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


# ---- the loader ---------------------------------------------------------------------------


class DataLoader:
    """Batches of `dataset`, as torch.utils.data.DataLoader, loaded in the calling process.

    pin_memory is accepted and ignored: it only speeds up copies from pinned host memory to a
    GPU, and batches here stay where the dataset made them. num_workers must be 0."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable[int] | None = None,
        batch_sampler: Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        *,
        generator: Generator | None = None,
        persistent_workers: bool = False,
    ) -> None:
        if num_workers < 0:
            raise ValueError("DataLoader: num_workers option should be non-negative; "
                             "use num_workers=0 to disable multiprocessing.")
        if num_workers > 0:
            raise ValueError(f"num_workers={num_workers} is not supported by minigrad's DataLoader; use num_workers=0")
        if persistent_workers:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if batch_size is None:
            raise ValueError("DataLoader: batch_size=None (samples without batching) is not supported")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size should be a positive integer value, "
                             f"but got batch_size={batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False  # type: ignore[assignment]  # as PyTorch: the batch sampler decides
        elif sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        self.dataset, self.batch_size, self.drop_last, self.generator = dataset, batch_size, drop_last, generator
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.sampler = sampler
        if batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn or default_collate

    def __iter__(self) -> Iterator[Any]:
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]
