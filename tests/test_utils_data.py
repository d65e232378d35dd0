"""minigrad.utils.data against torch.utils.data: the same batches (shapes, dtypes, values, order),
the same collation, the same split sizes; seeded shuffles; refused arguments."""
from __future__ import annotations

import functools
import warnings
from collections import namedtuple

import numpy as np
import pytest

import minigrad
from helpers import need
from minigrad.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)

Point = namedtuple("Point", "x y")


class Samples(Dataset):
    """Each sample mixes what default_collate handles: arrays, NumPy scalars, ints, floats, bools,
    strings, a dict and a tuple."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        return (rng.standard_normal((2, 3)).astype(np.float32), i, i / 2, i % 2 == 0, f"s{i}",
                {"ids": rng.integers(0, 9, 4), "w": np.float64(i), "p": Point(i, [i, -i])})

    def __len__(self) -> int:
        return self.n


def _plain(batch, torch):
    """A batch as NumPy arrays (with their dtype) and Python containers, from either library."""
    if isinstance(batch, (minigrad.Tensor, torch.Tensor)):
        return np.asarray(batch.numpy())
    if isinstance(batch, dict):
        return {k: _plain(v, torch) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        items = [_plain(v, torch) for v in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    return batch


def _assert_same(ours, theirs) -> None:
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    elif isinstance(ours, dict):
        assert list(ours) == list(theirs)
        for k in ours:
            _assert_same(ours[k], theirs[k])
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)
    else:
        assert ours == theirs


@pytest.mark.parametrize("n, batch_size, drop_last",
                         [(10, 4, False), (10, 4, True), (8, 4, True), (3, 5, False), (3, 5, True), (7, 1, False)])
def test_batches_as_torch(n: int, batch_size: int, drop_last: bool) -> None:
    torch = need("torch")
    ours = DataLoader(Samples(n), batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(Samples(n), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    batches = [_plain(b, torch) for b in ours]
    expected = [_plain(b, torch) for b in theirs]
    assert len(batches) == len(expected) == len(ours)
    for a, b in zip(batches, expected):
        _assert_same(a, b)


@pytest.mark.parametrize("batch", [
    [1, 2, 3], [1.0, 2.5], [True, False], [1, True], ["a", "b"], [b"a", b"b"],
    [np.float32(1), np.float32(2)], [np.int32(4), np.int32(-1)], [np.array(1.5), np.array(2.0)],
    [np.zeros((2, 3), np.float16), np.ones((2, 3), np.float16)], [np.array([1, 2], np.uint8)] * 3,
    [(1, "a"), (2, "b")], [[1, 2.0], [3, 4.0]], [{"a": 1, "b": [2.0]}, {"a": 3, "b": [4.0]}],
    [Point(1, 2.0), Point(3, 4.0)],
])
def test_default_collate_as_torch(batch: list) -> None:
    torch = need("torch")
    _assert_same(_plain(default_collate(batch), torch), _plain(torch.utils.data.default_collate(batch), torch))


def test_collate_tensors(device: str) -> None:
    xs = [minigrad.randn(2, 3, device=device, requires_grad=True) for _ in range(4)]
    batch = default_collate(xs)
    assert batch.shape == (4, 2, 3) and batch.device == device
    batch.sum().backward()  # stacking is an op in the graph, as torch.stack
    assert all(np.all(x.grad.numpy() == 1) for x in xs)


def test_collate_errors() -> None:
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    message = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found <class 'obj"
    with pytest.raises(TypeError, match=message):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_tensor_dataset(device: str) -> None:
    x = minigrad.randn(10, 3, device=device)
    y = minigrad.arange(10, device=device)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert [(bx.shape, by.shape) for bx, by in batches] == [((4, 3), (4,))] * 2 + [((2, 3), (2,))]
    assert all(bx.device == device and by.dtype == np.int64 for bx, by in batches)
    np.testing.assert_array_equal(batches[1][0].numpy(), x.numpy()[4:8])
    with pytest.raises(ValueError, match="differ in their first dimension"):
        TensorDataset(x, minigrad.arange(9))


def test_shuffle_draws_a_new_permutation_each_epoch() -> None:
    loader = DataLoader(list(range(20)), batch_size=6, shuffle=True)
    minigrad.manual_seed(3)
    epochs = [np.concatenate([b.numpy() for b in loader]) for _ in range(3)]
    assert all(sorted(e) == list(range(20)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    minigrad.manual_seed(3)  # the global seed makes it reproducible
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in loader]), epochs[0])


def test_shuffle_with_a_generator() -> None:
    def first_epoch(seed: int) -> list[int]:
        g = minigrad.Generator().manual_seed(seed)
        loader = DataLoader(list(range(20)), batch_size=20, shuffle=True, generator=g)
        minigrad.manual_seed(seed + 100)  # the global generator plays no part
        return next(iter(loader)).tolist()

    assert first_epoch(7) == first_epoch(7) != first_epoch(8)


def test_custom_collate_fn_and_samplers() -> None:
    def collate(batch, pad):  # the book's instruction fine-tuning pads in its collate_fn
        width = max(len(s) for s in batch)
        return minigrad.tensor([s + [pad] * (width - len(s)) for s in batch])

    data = [[1], [2, 3], [4, 5, 6]]
    loader = DataLoader(data, batch_size=2, collate_fn=functools.partial(collate, pad=0))
    assert [b.tolist() for b in loader] == [[[1, 0], [2, 3]], [[4, 5, 6]]]
    loader = DataLoader(list("abcde"), batch_size=2, sampler=[4, 0, 2])
    assert list(loader) == [["e", "a"], ["c"]] and len(loader) == 2
    loader = DataLoader(list("abcde"), batch_sampler=[[1, 2, 3], [0]])
    assert list(loader) == [["b", "c", "d"], ["a"]] and len(loader) == 2 and loader.batch_size is None


def test_refused_arguments() -> None:
    data = [1, 2, 3]
    with pytest.raises(ValueError, match="num_workers=2 is not supported by minigrad's DataLoader; use num_workers=0"):
        DataLoader(data, num_workers=2)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(data, num_workers=-1)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        DataLoader(data, persistent_workers=True)
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        DataLoader(data, batch_size=0)
    with pytest.raises(ValueError, match="batch_size=None .* is not supported"):
        DataLoader(data, batch_size=None)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(data, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(data, batch_sampler=[[0]], drop_last=True)
    with pytest.raises(TypeError, match="prefetch_factor"):
        DataLoader(data, prefetch_factor=2)  # type: ignore[call-arg]
    assert list(DataLoader(data, pin_memory=True)) == list(DataLoader(data))  # a speed hint only


def test_subset_concat_and_base_class() -> None:
    sub = Subset(list("abcdef"), [5, 0, 3])
    assert [sub[i] for i in range(len(sub))] == ["f", "a", "d"] and sub[-1] == "d"
    cat = ConcatDataset([list("ab"), list("cde"), []]) + Subset(list("xyz"), [2])
    assert isinstance(cat, ConcatDataset) and len(cat) == 6
    assert [cat[i] for i in range(-6, 6)] == list("abcdez") * 2
    with pytest.raises(IndexError, match="index 6 is out of range for 6 samples"):
        cat[6]
    with pytest.raises(ValueError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        Dataset()[0]
    with pytest.raises(TypeError, match="has no len"):
        len(Dataset())


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.3, 0.3, 0.4]), (11, [0.5, 0.5]),
                                        (7, [0.1, 0.2, 0.3, 0.4]), (3, [0.25, 0.25, 0.25, 0.25]), (5, [5, 0])])
def test_random_split_as_torch(n: int, lengths: list) -> None:
    torch = need("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty split warns, in both
        parts = random_split(range(n), lengths)
        expected = torch.utils.data.random_split(range(n), lengths)
    assert [len(p) for p in parts] == [len(p) for p in expected]
    indices = [i for p in parts for i in p]
    assert sorted(indices) == list(range(n))  # disjoint, and together the whole dataset


def test_random_split_seeded_and_refused() -> None:
    def split(seed: int) -> list[list[int]]:
        return [list(p) for p in random_split(range(30), [10, 20], generator=minigrad.Generator().manual_seed(seed))]

    assert split(1) == split(1) != split(2)
    minigrad.manual_seed(5)
    a = [list(p) for p in random_split(range(30), [0.5, 0.5])]
    minigrad.manual_seed(5)
    assert a == [list(p) for p in random_split(range(30), [0.5, 0.5])]
    with pytest.raises(ValueError, match=r"the lengths \[3, 3\] do not sum to the dataset's length 10"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="fraction at index 1 is not between 0 and 1"):
        random_split(range(10), [0.6, -0.1, 0.5])
