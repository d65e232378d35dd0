"""matmul as NumPy defines it (batched, broadcast batch dims, every 1-D case) vs NumPy and finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from helpers import arrays, broadcast_shapes, check_op

pytestmark = pytest.mark.usefixtures("float64")

sides = st.integers(1, 4)


@pytest.mark.parametrize("a_1d", [False, True], ids=["a (..., n, k)", "a (k,)"])
@pytest.mark.parametrize("b_1d", [False, True], ids=["b (..., k, m)", "b (k,)"])
@given(n=sides, k=sides, m=sides, batch=broadcast_shapes(2, max_dims=2), data=st.data())
def test_matmul(a_1d, b_1d, device, n, k, m, batch, data):
    a_shape = (k,) if a_1d else (*batch[0], n, k)
    b_shape = (k,) if b_1d else (*batch[1], k, m)
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    check_op(F.matmul, np.matmul, [a, b], device)
