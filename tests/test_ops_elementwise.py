"""Elementwise ops (add ... gelu, maximum, where, masked_fill): forward vs NumPy, backward vs finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad
import minigrad.functional as F
from minigrad.ops import elementwise
from helpers import arrays, broadcast_shapes, check_op, shapes

pytestmark = pytest.mark.usefixtures("float64")


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


erf_ref = np.vectorize(math.erf)  # Python's own erf, element by element


def gelu_exact(x):
    return 0.5 * x * (1 + erf_ref(x / np.sqrt(2)))


BINARY = {  # name: (minigrad op, NumPy reference, values of a, values of b)
    "add": (F.add, np.add, "normal", "normal"),
    "sub": (F.sub, np.subtract, "normal", "normal"),
    "mul": (F.mul, np.multiply, "normal", "normal"),
    "div": (F.div, np.divide, "normal", "nonzero"),
    "maximum": (F.maximum, np.maximum, "even", "odd"),  # a and b never tie
}


@pytest.mark.parametrize("name", BINARY)
@given(in_shapes=broadcast_shapes(2), data=st.data())
def test_binary(name, device, in_shapes, data):
    op, ref, values_a, values_b = BINARY[name]
    a, b = data.draw(arrays(in_shapes[0], values_a)), data.draw(arrays(in_shapes[1], values_b))
    check_op(op, ref, [a, b], device)


UNARY = {  # name: (minigrad op, NumPy reference, values inside the domain and off any kink)
    "neg": (F.neg, np.negative, "normal"),
    "exp": (F.exp, np.exp, "normal"),
    "log": (F.log, np.log, "positive"),
    "sqrt": (F.sqrt, np.sqrt, "positive"),
    "tanh": (F.tanh, np.tanh, "normal"),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "normal"),
    "relu": (F.relu, lambda x: np.maximum(x, 0), "nonzero"),
    "gelu": (F.gelu, gelu_exact, "normal"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), gelu_tanh, "normal"),
    "erf": (F.erf, erf_ref, "normal"),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes(), data=st.data())
def test_unary(name, device, shape, data):
    op, ref, values = UNARY[name]
    check_op(op, ref, [data.draw(arrays(shape, values))], device)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(shape=shapes(), data=st.data())
def test_gelu_in_small_pieces(device, small_chunks, approximate, shape, data):
    """GELU's chain runs on pieces (minigrad.speed.chunks); with 7-element pieces most arrays span several."""
    ref = gelu_tanh if approximate == "tanh" else gelu_exact
    check_op(lambda x: F.gelu(x, approximate=approximate), ref, [data.draw(arrays(shape, "normal"))], device)


def test_erf_series_matches_pythons_erf(device, monkeypatch):
    """Without a library erf (NumPy without SciPy; always on fakegpu) erf comes from its series:
    within 4e-15 of math.erf from 0 to past the point where erf rounds to 1."""
    monkeypatch.setattr(elementwise, "library_erf", lambda xp: None)
    x = np.concatenate([-np.logspace(-12, 0.9, 200), [0.0], np.linspace(-7, 7, 301)])
    got = F.erf(minigrad.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(got, erf_ref(x), rtol=4e-15, atol=4e-15)
    np.testing.assert_allclose(got[:200], erf_ref(x[:200]), rtol=4e-15)  # tiny x: relative error too


def test_gelu_rejects_unknown_forms():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        F.gelu(minigrad.randn(3), approximate="erf")
    with pytest.raises(ValueError, match="approximate must be"):
        minigrad.nn.GELU(approximate="exact")


POWERS = [(2, "normal"), (3, "normal"), (-1, "nonzero"), (0.5, "positive"), (-1.5, "positive")]


@pytest.mark.parametrize("p, values", POWERS)
@given(shape=shapes(), data=st.data())
def test_pow(p, values, device, shape, data):
    check_op(lambda x: F.pow(x, p), lambda x: x**p, [data.draw(arrays(shape, values))], device)


# Operators with a Python number on either side; each lambda runs on NumPy arrays and Tensors alike.
WITH_SCALARS = {
    "x + 2": lambda x: x + 2.0,
    "2 - x": lambda x: 2.0 - x,
    "-3 * x": lambda x: -3.0 * x,
    "x / 4": lambda x: x / 4.0,
    "1 / x": lambda x: 1.0 / x,
    "-x ** 2": lambda x: -(x**2),
}


@pytest.mark.parametrize("name", WITH_SCALARS)
@given(shape=shapes(), data=st.data())
def test_operators_with_python_numbers(name, device, shape, data):
    check_op(WITH_SCALARS[name], WITH_SCALARS[name], [data.draw(arrays(shape, "nonzero"))], device)


@given(in_shapes=broadcast_shapes(3), data=st.data())
def test_where(device, in_shapes, data):
    cond = data.draw(hnp.arrays(np.bool_, in_shapes[0]))
    a, b = data.draw(arrays(in_shapes[1])), data.draw(arrays(in_shapes[2]))
    c = minigrad.tensor(cond, device=device)
    check_op(lambda a, b: F.where(c, a, b), lambda a, b: np.where(cond, a, b), [a, b], device)


@given(shape=shapes(), value=st.sampled_from([-1e4, 0.0, 7.5]), data=st.data())
def test_masked_fill(device, shape, value, data):
    x = data.draw(arrays(shape))
    mask = data.draw(hnp.arrays(np.bool_, hnp.broadcastable_shapes(shape, max_side=4)))
    m = minigrad.tensor(mask, device=device)
    check_op(lambda x: F.masked_fill(x, m, value), lambda x: np.where(mask, value, x), [x], device)


def test_maximum_splits_the_gradient_at_ties(device):
    a = minigrad.tensor([1.0, 2.0, 5.0], device=device, requires_grad=True)
    b = minigrad.tensor([1.0, 3.0, 4.0], device=device, requires_grad=True)
    F.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0, 0.0])


def test_relu_gradient_is_zero_at_zero(device):
    x = minigrad.tensor([-1.0, 0.0, 2.0], device=device, requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
