"""Reductions (sum, mean, amax, amin, var, std) over any axes, keepdims or not: vs NumPy and finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from helpers import arrays, axes, check_op, shapes

pytestmark = pytest.mark.usefixtures("float64")

REDUCTIONS = {  # name: (minigrad op, NumPy reference, values, fewest elements per output)
    "sum": (F.sum, np.sum, "normal", 1),
    "mean": (F.mean, np.mean, "normal", 1),
    "amax": (minigrad.amax, np.max, "distinct", 1),  # distinct values: no ties, so amax is differentiable
    "amin": (minigrad.amin, np.min, "distinct", 1),
    "var": (lambda x, axis, keepdims: F.var(x, axis, keepdim=keepdims),
            lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=1), "normal", 2),
    "var(correction=0)": (
        lambda x, axis, keepdims: F.var(x, axis, keepdims=keepdims, correction=0),
        lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=0),
        "normal",
        1,
    ),
    "std(unbiased=False)": (
        lambda x, axis, keepdims: minigrad.std(x, axis, False, keepdims),
        lambda x, axis, keepdims: np.std(x, axis=axis, keepdims=keepdims),
        "distinct",  # std > 0, where sqrt is differentiable
        2,
    ),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(shape=shapes(), keepdims=st.booleans(), data=st.data())
def test_reduction(name, device, shape, keepdims, data):
    op, ref, values, min_count = REDUCTIONS[name]
    axis = data.draw(axes(len(shape)))
    x = data.draw(arrays(shape, values))
    assume(x.size // np.sum(x, axis=axis).size >= min_count)  # elements reduced into each output
    check_op(lambda x: op(x, axis, keepdims), lambda x: ref(x, axis=axis, keepdims=keepdims), [x], device)


@pytest.mark.parametrize("axis", [(0, 2), (-1, 0), None])
def test_mean_over_several_axes_divides_by_all_of_them(device, axis):
    """Hypothesis draws several axes only sometimes: here always. (2, 3, 4) over (0, 2) averages
    8 elements into each output, so each element's gradient is dout / 8."""
    x = np.arange(24.0).reshape(2, 3, 4) ** 1.5
    check_op(lambda t: F.mean(t, axis), lambda a: np.mean(a, axis=axis), [x], device)
    t = minigrad.tensor(x, device=device, requires_grad=True)
    (F.mean(t, axis) * 8.0).sum().backward()
    count = x.size // np.mean(x, axis=axis).size
    np.testing.assert_allclose(t.grad.numpy(), np.full(x.shape, 8.0 / count))


def test_amax_shares_the_gradient_between_ties(device):
    x = minigrad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], device=device, requires_grad=True)
    minigrad.amax(x, axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
