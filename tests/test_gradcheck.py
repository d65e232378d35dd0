"""gradcheck itself: passes right backwards, fails wrong ones naming the worst element, sees what ones cannot."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad.autograd import Function
from minigrad.ops.softmax import Softmax
from helpers import make_array

pytestmark = pytest.mark.usefixtures("float64")


class SquareWrongAtOneElement(Function):
    """y = x^2 with a backward that is right everywhere except at index (1, 2)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        dx = 2 * self.x * dout
        dx[1, 2] += 1.0
        return (dx,)


class SoftmaxWithZeroBackward(Softmax):
    def backward(self, dout):
        return (0 * dout,)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_gradcheck_passes_a_right_backward(fast_mode, device):
    x = minigrad.tensor(make_array(0, (2, 3)), device=device, requires_grad=True)
    w = minigrad.tensor(make_array(1, (3,)), device=device, requires_grad=True)
    assert minigrad.gradcheck(lambda x, w: F.tanh(x * w).sum(axis=0), [x, w], fast_mode=fast_mode)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_gradcheck_fails_a_wrong_backward_and_names_the_worst_element(fast_mode, device):
    x = minigrad.tensor(make_array(0, (2, 3)), device=device, requires_grad=True)
    with pytest.raises(minigrad.GradcheckError, match=r"input 0 \(shape \(2, 3\)\) at index \(1, 2\)"):
        minigrad.gradcheck(SquareWrongAtOneElement.apply, [x], fast_mode=fast_mode)


def test_a_ones_cotangent_cannot_see_a_wrong_softmax_backward_but_gradcheck_can(device):
    x = minigrad.tensor(make_array(0, (2, 4)), device=device, requires_grad=True)
    # sum(softmax(x)) is 1 whatever x is, so with dout = ones the right gradient is 0 too...
    F.softmax(x).backward(minigrad.ones(2, 4, device=device))
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-15)
    # ...and a backward that always returns 0 would look right; gradcheck's random cotangent catches it.
    assert minigrad.gradcheck(F.softmax, [x])
    with pytest.raises(minigrad.GradcheckError):
        minigrad.gradcheck(lambda x: SoftmaxWithZeroBackward.apply(x, axis=-1), [x])
