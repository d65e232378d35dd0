"""Reductions (sum, mean, max, var) over any axes, keepdims or not: vs NumPy and finite differences."""
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
    "max": (F.max, np.max, "distinct", 1),  # distinct values: no ties, so max is differentiable
    "var": (F.var, lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=1), "normal", 2),
    "var(correction=0)": (
        lambda x, axis, keepdims: F.var(x, axis, keepdims, correction=0),
        lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=0),
        "normal",
        1,
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


def test_max_shares_the_gradient_between_ties(device):
    x = minigrad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], device=device, requires_grad=True)
    F.max(x, axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
