"""Each fused op equals its simple twin (minigrad/simple.py) in value and in gradient, float64, on every backend.

The twins are built from primitives whose own backwards the op tests check against finite
differences, so agreement here checks each fused op's hand-written backward a second way."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import simple
from helpers import make_array

pytestmark = pytest.mark.usefixtures("float64")


def assert_twins(fused, twin, arrays, device, seed=0):
    """fused(*xs) == twin(*xs), and so are the gradients of sum(out * dout) for a random dout."""
    outs, grads = [], []
    for fn in (fused, twin):
        xs = [minigrad.tensor(a, device=device, requires_grad=True) for a in arrays]
        out = fn(*xs)
        dout = np.random.default_rng(seed).standard_normal(out.shape)
        (out * minigrad.tensor(dout, device=device)).sum().backward()
        outs.append(out.numpy())
        grads.append([x.grad.numpy() for x in xs])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-13)
    for g_fused, g_twin in zip(*grads):
        np.testing.assert_allclose(g_fused, g_twin, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmaxes(device, name, axis):
    x = make_array(1, (3, 5, 4), layout="strided") * 3
    assert_twins(lambda x: getattr(F, name)(x, axis), lambda x: getattr(simple, name)(x, axis), [x], device)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy(device, label_smoothing):
    targets = minigrad.tensor(np.array([3, 0, -100, 4, 4, 1]), device=device)  # one row ignored

    def fused(x):
        return F.cross_entropy(x, targets, label_smoothing=label_smoothing)

    def twin(x):
        return simple.cross_entropy(x, targets, label_smoothing=label_smoothing)

    assert_twins(fused, twin, [make_array(2, (6, 5)) * 2], device)


@pytest.mark.parametrize("affine", ["none", "weight", "weight+bias"])
def test_layer_norm(device, affine):
    arrays = [make_array(3, (2, 3, 8), layout="transposed") * 2 + 1]
    if affine != "none":
        arrays.append(make_array(4, (8,)))
    if affine == "weight+bias":
        arrays.append(make_array(5, (8,)))
    assert_twins(F.layer_norm, simple.layer_norm, arrays, device)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(device, approximate):
    x = make_array(6, (4, 7)) * 2
    assert_twins(lambda x: F.gelu(x, approximate), lambda x: simple.gelu(x, approximate), [x], device)


def test_linear(device):
    arrays = [make_array(7, (2, 3, 4)), make_array(8, (5, 4)), make_array(9, (5,))]
    assert_twins(F.linear, simple.linear, arrays, device)


def test_embedding(device):
    idx = minigrad.tensor(np.array([[1, 3, 1], [0, 3, 3]]), device=device)  # repeated ids sum their grads
    assert_twins(lambda w: F.embedding(idx, w), lambda w: simple.embedding(idx, w), [make_array(10, (4, 3))], device)
