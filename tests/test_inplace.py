"""In-place operations (minigrad/inplace.py) and the version counter (autograd.py), as PyTorch's."""
import numpy as np
import pytest

import minigrad
from helpers import need

pytestmark = pytest.mark.usefixtures("float64")


def test_every_name_for_a_tensor_sees_an_in_place_change():
    a = minigrad.tensor([1.0, 2.0, 3.0])
    b = a
    a += 1
    a *= 2
    a -= 1
    a /= 3
    assert b is a
    np.testing.assert_allclose(b.numpy(), [1.0, 5.0 / 3.0, 7.0 / 3.0])


def test_a_view_sees_a_write_into_its_tensor_and_the_other_way_round():
    a = minigrad.zeros(2, 3)
    row = a[1]
    a += 1
    np.testing.assert_array_equal(row.numpy(), [1.0, 1.0, 1.0])
    row.fill_(7.0)
    np.testing.assert_array_equal(a.numpy(), [[1.0, 1.0, 1.0], [7.0, 7.0, 7.0]])
    a[0, 1] += 4  # a view's __iadd__, then __setitem__: both write into a
    assert a.numpy()[0, 1] == 5.0


def test_a_leaf_that_requires_grad_is_written_only_under_no_grad():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    for write in (lambda: w.add_(1), lambda: w.__iadd__(1), lambda: w.zero_(), lambda: w.__setitem__(0, 3.0)):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            write()
    with minigrad.no_grad():
        w -= 0.5
        w[1] = 9.0
    np.testing.assert_array_equal(w.numpy(), [0.5, 9.0])
    assert w.requires_grad and w.is_leaf


def test_results_that_do_not_fit_the_tensor_are_errors_as_in_pytorch():
    i = minigrad.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        minigrad.zeros(3).add_(minigrad.ones(2, 3))
    f = minigrad.zeros(3, dtype="float32")
    f += minigrad.ones(3, dtype="float64")  # a wider float is cast into the tensor's dtype
    assert f.dtype == np.float32
    i += 3  # an integer result fits an integer tensor
    np.testing.assert_array_equal(i.numpy(), [4, 5])


def test_copy_and_setitem_cast_into_the_tensor_as_pytorch():
    torch = need("torch")
    t, tt = minigrad.zeros(2, 3, dtype="int64"), torch.zeros(2, 3, dtype=torch.int64)
    src = np.array([1.7, -2.7, 3.2])
    t.copy_(minigrad.tensor(src))
    tt.copy_(torch.tensor(src))
    np.testing.assert_array_equal(t.numpy(), tt.numpy())
    mask = np.array([[True, False, True], [False, False, True]])
    t[minigrad.tensor(mask)] = 9
    tt[torch.tensor(mask)] = 9
    t[minigrad.tensor([1])] = -1
    tt[torch.tensor([1])] = -1
    np.testing.assert_array_equal(t.numpy(), tt.numpy())


def _grads_match(fn, *shapes, seed=0):
    """fn(lib, *inputs) written once with in-place ops runs on minigrad and on torch: same values,
    same gradients for a random cotangent."""
    torch = need("torch")
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    ours = [minigrad.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = fn(minigrad, *ours), fn(torch, *theirs)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(ty.shape)
    y.backward(minigrad.tensor(g))
    ty.backward(torch.tensor(g))
    for a, ta in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_in_place_arithmetic_on_a_recorded_tensor_is_recorded():
    def fn(lib, x, y):
        h = x * 2
        h += y
        h *= x
        h -= 1
        h /= y.exp()
        h.add_(x, alpha=0.5)
        h.sub_(y, alpha=2)
        return h

    _grads_match(fn, (2, 3), (2, 3))


def test_the_books_masked_fill_in_place_on_attention_scores():
    def fn(lib, q, k):
        scores = q @ k.transpose(-2, -1)
        mask = lib.tensor(np.triu(np.ones((4, 4), dtype=bool), k=1))
        scores.masked_fill_(mask, -np.inf)
        return (scores / 2.0).softmax(-1)

    _grads_match(fn, (2, 4, 3), (2, 4, 3))


def test_setitem_copy_and_fill_while_recording_send_the_gradient_where_the_values_went():
    def fn(lib, x, w):
        h = x * 1.5
        h[0] = w[1] * 3  # row 0 of h now comes from w: x gets no gradient there
        h[:, 2] = 0.25
        g = x * 1.0
        g.copy_(w[0])  # broadcast over rows
        z = x + 0
        z.zero_()
        return h + g * h + z

    _grads_match(fn, (3, 4), (2, 4))


def test_a_tensor_that_needs_no_grad_becomes_part_of_the_graph_when_a_grad_value_is_added():
    def fn(lib, w):
        acc = lib.zeros(2, 3, dtype=lib.float64)
        acc += w
        acc *= w
        return acc

    _grads_match(fn, (2, 3))


def test_writing_what_a_recorded_op_saved_is_an_error_not_a_wrong_gradient():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    c = minigrad.tensor([3.0, 4.0])
    y = (w * c).sum()  # Mul saves c to compute w's gradient
    c += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Mul"):
        y.backward()


def test_writing_an_input_that_no_op_saved_is_fine_as_in_pytorch():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    c = minigrad.tensor([3.0, 4.0])
    y = (w + c).sum()  # Add saves nothing
    c += 1
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_writing_a_saved_output_under_no_grad_is_an_error():
    x = minigrad.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # Exp saves its output
    with minigrad.no_grad():
        y += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Exp"):
        y.sum().backward()


def test_writing_through_a_view_counts_for_the_memory_it_views():
    w = minigrad.tensor([[1.0, 2.0]], requires_grad=True)
    c = minigrad.tensor([[3.0, 4.0], [5.0, 6.0]])
    y = (w * c[1:]).sum()  # Mul saves a view of c
    c[1, 0] = 0.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_a_write_into_a_view_while_recording_is_refused_not_silently_lost():
    x = minigrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    h = x * 2
    row = h[0]
    with pytest.raises(RuntimeError, match="view of another tensor"):
        row += x[1]


def test_an_optimizer_step_between_forward_and_backward_is_pytorchs_error():
    """step() writes the parameters in place; a graph that saved them (Linear saves its weight) must not
    backward through the new values: PyTorch raises, and so does minigrad (before, a wrong gradient)."""
    model = minigrad.nn.Linear(3, 2)
    opt = minigrad.optim.SGD(model.parameters(), lr=0.1)
    loss = model(minigrad.randn(4, 3)).pow(2).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation: Linear saved w"):
        loss.backward()
    opt.zero_grad()
    loss = model(minigrad.randn(4, 3)).pow(2).sum()  # a graph recorded after the step backwards as usual
    loss.backward()
    assert model.weight.grad is not None
