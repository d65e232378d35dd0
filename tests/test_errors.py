"""Errors say what was wrong: the op, the shapes, devices, dtypes or ids involved."""
from __future__ import annotations

import operator

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import nn


def ones(*shape, device, **kw):
    return minigrad.ones(*shape, device=device, **kw)


def ids(values, device):
    return minigrad.tensor(values, device=device)


CASES = {
    "add shapes": (
        lambda d: ones(2, 3, device=d) + ones(4, device=d),
        ValueError, r"Add: .*\(2, 3\), \(4,\)",
    ),
    "matmul inner dims": (
        lambda d: ones(2, 3, device=d) @ ones(4, 5, device=d),
        ValueError, r"matmul: inner dimensions differ: \(2, 3\) @ \(4, 5\)",
    ),
    "reshape": (
        lambda d: ones(2, 3, device=d).reshape(4, 2),
        ValueError, r"reshape: .*shape \(2, 3\) \(6 elements\) as \(4, 2\)",
    ),
    "cross_entropy shapes": (
        lambda d: F.cross_entropy(ones(2, 3, 4, device=d), ids([0, 1], d)),
        ValueError, r"cross_entropy: expected logits \(N, V\) and targets \(N,\), got \(2, 3, 4\) and \(2,\)",
    ),
    "linear": (
        lambda d: nn.Linear(5, 4).to(d)(ones(2, 3, device=d)),
        ValueError, r"linear: input \(2, 3\) does not fit weight \(4, 5\)",
    ),
    "sum axis": (
        lambda d: ones(2, 3, device=d).sum(axis=2),
        ValueError, r"sum: axis 2 is out of range for a tensor with 2 dims",
    ),
    "concatenate shapes": (
        lambda d: F.cat([ones(2, 3, device=d), ones(2, 4, device=d)], axis=0),
        ValueError, r"Concatenate: .*input shapes: \(2, 3\), \(2, 4\)",
    ),
    "stack shapes": (
        lambda d: F.stack([ones(2, 3, device=d), ones(3, 2, device=d)]),
        ValueError, r"stack: all tensors need one shape, got \[\(2, 3\), \(3, 2\)\]",
    ),
    "layer_norm weight": (
        lambda d: F.layer_norm(ones(2, 3, device=d), ones(4, device=d)),
        ValueError, r"layer_norm: weight has shape \(4,\), expected \(3,\) for input \(2, 3\)",
    ),
    "attention shapes": (
        lambda d: F.scaled_dot_product_attention(ones(1, 2, 3, 4, device=d), ones(1, 2, 3, 5, device=d),
                                                 ones(1, 2, 3, 4, device=d)),
        ValueError, r"scaled_dot_product_attention: shapes do not fit: q \(1, 2, 3, 4\), k \(1, 2, 3, 5\)",
    ),
    "embedding weight": (
        lambda d: F.embedding(ids([0], d), ones(5, device=d)),
        ValueError, r"embedding: weight must be \(num_embeddings, dim\), got \(5,\)",
    ),
    "getitem out of range": (
        lambda d: ones(2, 3, device=d)[5],
        IndexError, r"getitem: .*tensor shape \(2, 3\)",
    ),
    "dtype mismatch": (
        lambda d: ones(2, 2, device=d) @ ones(2, 2, device=d, dtype=np.float64),
        TypeError, r"matmul: expected both operands to have the same dtype, got float32 and float64",
    ),
    "requires_grad on integers": (
        lambda d: minigrad.tensor([1, 2], requires_grad=True, device=d),
        TypeError, r"only floating tensors can require grad.*int64",
    ),
    "non-scalar backward": (
        lambda d: (ones(2, 3, device=d, requires_grad=True) * 2).backward(),
        RuntimeError, r"needs a scalar, this tensor has shape \(2, 3\)",
    ),
}

# Ids and targets are checked where reading them costs nothing: in NumPy arrays on the host. On a
# GPU the check would make the CPU wait for the GPU at every call (see test_gpt_train's sync budget).
HOST_CHECKED = {
    "embedding id too large": (
        lambda d: F.embedding(ids([0, 5], d), ones(5, 3, device=d)),
        IndexError, r"embedding: id 5 is out of range .* 5 rows",
    ),
    "embedding id negative": (
        lambda d: F.embedding(ids([-1, 0], d), ones(5, 3, device=d)),
        IndexError, r"embedding: id -1 is out of range",
    ),
    "cross_entropy target": (
        lambda d: F.cross_entropy(ones(2, 3, device=d), ids([0, 3], d)),
        IndexError, r"cross_entropy: target 3 is out of range for 3 classes",
    ),
    "cross_entropy label_smoothing": (
        lambda d: F.cross_entropy(ones(2, 3, device=d), ids([0, 1], d), label_smoothing=1.5),
        ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5",
    ),
}


@pytest.mark.parametrize("case", HOST_CHECKED)
def test_ids_on_the_host_are_checked(case):
    fn, error, match = HOST_CHECKED[case]
    with pytest.raises(error, match=match):
        fn("cpu")


@pytest.mark.parametrize("bad", [3, -2])
def test_a_bad_target_on_a_device_makes_the_loss_nan(gpu_device, bad):
    """Without waiting for the GPU: the training loop's NaN guard then stops the run."""
    loss = F.cross_entropy(ones(2, 3, device=gpu_device), ids([0, bad], gpu_device))
    assert np.isnan(loss.item())
    good = F.cross_entropy(ones(2, 3, device=gpu_device), ids([0, -100], gpu_device))
    np.testing.assert_allclose(good.item(), np.log(3), rtol=1e-6)


def test_strict_backend_refuses_a_bad_embedding_id():
    """CuPy would read a wrapped-around row; the strict test backend raises instead."""
    with pytest.raises(IndexError, match="wrap it around silently"):
        F.embedding(ids([0, 5], "fakegpu"), ones(5, 3, device="fakegpu"))


@pytest.mark.parametrize("case", CASES)
def test_error_names_what_was_wrong(device, case):
    fn, error, match = CASES[case]
    with pytest.raises(error, match=match):
        fn(device)


@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.matmul], ids=["add", "mul", "matmul"])
def test_device_mix_names_both_devices(op, gpu_device):
    a, b = minigrad.ones(2, 2, device="cpu"), minigrad.ones(2, 2, device=gpu_device)
    with pytest.raises(RuntimeError, match=f"one device, found cpu and {gpu_device}"):
        op(a, b)
    with pytest.raises(RuntimeError, match=f"one device, found {gpu_device} and cpu"):
        op(b, a)


def test_second_backward_through_a_freed_graph(device):
    x = ones(2, device=device, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        y.backward()


@pytest.mark.parametrize(
    "fn",
    [
        lambda: minigrad.tensor([1.0], device="tpu"),
        lambda: minigrad.ones(2).to("tpu"),
        lambda: minigrad.set_default_device("tpu"),
    ],
    ids=["tensor", "to", "set_default_device"],
)
def test_unknown_device(fn):
    with pytest.raises(ValueError, match=r"unknown or unavailable device 'tpu'; available: \['cpu'"):
        fn()
    assert minigrad.get_default_device() != "tpu"


@pytest.mark.parametrize("index", [[0, 3], (0, [-4]), (Ellipsis, [5])], ids=["axis 0", "negative, axis 1", "after ..."])
def test_list_indices_are_checked_on_the_host(device, index):
    """On every device, though CuPy would wrap them around: a list is checked before it moves."""
    x = ones(3, 3, device=device)
    with pytest.raises(IndexError, match=r"getitem: index -?\d is out of bounds for axis \d with size 3"):
        x[index]
