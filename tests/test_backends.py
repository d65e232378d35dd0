"""Backends: fakegpu really refuses implicit NumPy, get_array_module, moving data, and choosing the default device."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad
from minigrad.backend import device_of, get_backend, to_device
from minigrad.testing.fakegpu import FakeGPUArray


@pytest.mark.parametrize(
    "misuse",
    [
        lambda a: np.asarray(a),
        lambda a: np.exp(a),
        lambda a: np.sum(a),
        lambda a: a + np.ones(3),
        lambda a: np.ones(3) + a,
        lambda a: a[np.array([0, 1])],
    ],
    ids=["asarray", "exp", "sum", "add_numpy", "numpy_add", "numpy_index"],
)
def test_fakegpu_refuses_implicit_numpy(misuse):
    a = minigrad.tensor([1.0, 2.0, 3.0], device="fakegpu").data
    assert isinstance(a, FakeGPUArray)
    with pytest.raises(TypeError):
        misuse(a)


def test_fakegpu_allows_what_cupy_allows():
    xp = get_backend("fakegpu").xp
    a = xp.asarray(np.array([1.0, 2.0]))  # an explicit host -> device copy
    b = xp.exp(a) + a  # xp functions and operators between device arrays
    assert isinstance(b, FakeGPUArray)
    np.testing.assert_allclose(b.get(), np.exp([1.0, 2.0]) + [1.0, 2.0])


def test_get_array_module(device):
    xp = get_backend(device).xp
    t = minigrad.ones(2, device=device)
    assert minigrad.get_array_module(t) is xp
    assert minigrad.get_array_module(t.data) is xp
    assert minigrad.get_array_module(3.0, t) is xp  # the first argument that is an array
    assert minigrad.get_array_module(3.0) is np


def test_to_device_round_trip(device):
    a = np.arange(6.0).reshape(2, 3)
    b = to_device(a, device)
    assert device_of(b) == device
    back = to_device(b, "cpu")
    assert type(back) is np.ndarray
    np.testing.assert_array_equal(back, a)
    assert to_device(a, "cpu") is a  # already there: no copy


def test_tensor_to_moves_data_and_grad(device):
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.to(device).is_leaf == (device == "cpu")  # a move in the graph, as PyTorch (a node, not a leaf)
    with minigrad.no_grad():  # outside the graph: a new leaf, its grad moved with it
        y = x.to(device)
    assert y.device == device and y.grad.device == device
    assert y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 4.0])
    assert y.to(device) is y
    assert y.cpu().device == "cpu"


def test_set_default_device(device):
    prev = minigrad.get_default_device()
    minigrad.set_default_device(device)
    try:
        assert minigrad.tensor([1.0]).device == device
        assert minigrad.zeros(2).device == device
        assert minigrad.randn(2).device == device
        assert minigrad.nn.Linear(2, 3).weight.device == device
    finally:
        minigrad.set_default_device(prev)


def test_minigrad_device_env_var_sets_the_default(device):
    code = (
        "import minigrad, minigrad.testing.fakegpu\n"
        "print(minigrad.get_default_device(), minigrad.zeros(1).device)"
    )
    env = {**os.environ, "MINIGRAD_DEVICE": device}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [device, device]
