"""The autograd graph: backward order and accumulation, no_grad/detach/retain_grad, freeing, tensor facts."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import nn
from minigrad.autograd import Function


def leaf(values, device):
    return minigrad.tensor(values, requires_grad=True, device=device)


def test_backward_through_a_10000_op_chain(device):
    x = leaf([1.0, 2.0], device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001  # dy/dx is the product of the 10,000 local derivatives
    y.sum().backward()  # an iterative topological sort: no RecursionError
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000] * 2, rtol=1e-3)


def test_grads_accumulate_until_zero_grad(device):
    x = leaf([1.0, 2.0], device)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * np.array([1.0, 2.0])))
    x.zero_grad()
    assert x.grad is None
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_diamond_sums_the_grads_of_both_paths(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3  # h feeds two branches that meet again in y
    y = (h * h + h).sum()  # dy/dx = (2h + 1) * 3
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), (2 * np.array([3.0, 6.0]) + 1) * 3)


def test_grads_of_pieces_and_of_the_whole_add_up(device):
    """Indexing's backward returns a ScatteredGrad (zero but at the index); pieces, repeated integer
    indices and dense grads of one tensor must all be summed, in any order of arrival."""
    rng = np.random.default_rng(0)
    x0, w = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    x = minigrad.tensor(x0, device=device, requires_grad=True)
    wt = minigrad.tensor(w, device=device)
    q, k, v = x.split(1, axis=1)
    loss = (q * 2.0).sum() + (k * 3.0).sum() + (x * wt).sum() + (x[[0, 0, 2]] * 5.0).sum() + (v * 7.0).sum()
    loss.backward()
    expected = w + np.array([2.0, 3.0, 7.0])
    expected[0] += 10.0
    expected[2] += 5.0
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_a_scatter_never_writes_into_a_grad_another_tensor_shares(device):
    # Add's backward hands the same array to both inputs; x's slice grad must not land in y's.
    x = minigrad.tensor(np.zeros((4, 3)), device=device, requires_grad=True)
    y = minigrad.tensor(np.zeros((4, 3)), device=device, requires_grad=True)
    loss = (x[1:3] * 5.0).sum() + ((x + y) * 2.0).sum() + (y[:1] * 3.0).sum()  # whichever comes first
    loss.backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.full((4, 3), 2.0) + np.array([[3], [0], [0], [0]]))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 3), 2.0) + np.array([[0], [5], [5], [0]]))


def test_the_graph_keeps_only_what_backward_needs():
    # GELU keeps its dy/dx, not its input, and the graph keeps no tensor alive by itself:
    # the (N, 4C) array between c_fc and GELU in a GPT goes as soon as GELU has run.
    x = leaf(np.ones((4, 8)), "cpu")
    h = x * 2.0  # Mul saves x (a leaf) and the scalar, not h
    ref = weakref.ref(h.data)
    y = F.gelu(h)
    del h
    assert ref() is None
    y.sum().backward()
    assert x.grad is not None


def test_no_grad_records_no_graph(device):
    x = leaf([1.0, 2.0], device)
    with minigrad.no_grad():
        assert not minigrad.is_grad_enabled()
        y = x * 2
    assert minigrad.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert (x * 2).requires_grad  # recording is back on outside the block


def test_detach_cuts_the_graph(device):
    x = leaf([1.0, 2.0], device)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0])
    (d * x).sum().backward()  # no gradient flows through d: d(d*x)/dx = d
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_retain_grad_keeps_an_intermediate_grad(device):
    x = leaf([1.0, 2.0], device)
    h = x * 2
    g = x * 3
    h.retain_grad()
    (h * g).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [3.0, 6.0])  # dy/dh = g
    assert g.grad is None  # intermediates keep no grad unless asked
    np.testing.assert_allclose(x.grad.numpy(), [12.0, 24.0])  # d(6 x^2)/dx


def test_backward_on_a_scalar_uses_grad_one_and_others_take_grad(device):
    x = leaf([1.0, 2.0], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    x.zero_grad()
    (x * x).backward(minigrad.tensor([1.0, 10.0], device=device))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 40.0])


def test_retain_graph_allows_a_second_backward(device):
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_retain_graph_keeps_what_a_last_backward_may_overwrite(device):
    # GELU's backward writes into its saved dy/dx when the graph dies after it; not before.
    x = leaf([-1.0, 0.5, 2.0], device)
    y = F.gelu(x)
    g = minigrad.tensor([1.0, -2.0, 3.0], device=device)
    y.backward(g, retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def data_owner(t):
    """The array that owns t's memory: the base of any view (a fakegpu array wraps a NumPy array)."""
    a = getattr(t.data, "_a", t.data)
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


@pytest.mark.parametrize("run_backward", [False, True])
def test_graph_is_freed_by_reference_counting_alone(device, run_backward):
    x = leaf(np.ones((4, 8)), device)
    gc.disable()  # any reference cycle would now keep the activations alive
    try:
        h = (x * 2).tanh()  # an intermediate activation, saved by the ops that use it
        loss = (h * h).sum()
        try:
            refs = [weakref.ref(data_owner(h))]
        except TypeError:
            pytest.skip("this backend's arrays take no weak references")
        tensor_ref = weakref.ref(h)
        del h
        assert tensor_ref() is None  # the graph keeps the arrays backward needs, never a Tensor
        if run_backward:
            loss.backward()
        else:
            assert all(r() is not None for r in refs)  # the graph holds the activation...
        del loss
        assert all(r() is None for r in refs)  # ...and dropping the loss frees it, without gc.collect
    finally:
        gc.enable()


def test_tensor_facts_and_host_copies(device):
    x = minigrad.tensor([[1.0, 2.0, 3.0]], device=device)
    assert (x.shape, x.dtype, x.device) == ((1, 3), np.float32, device)
    a = x.numpy()
    assert type(a) is np.ndarray
    np.testing.assert_array_equal(a, [[1.0, 2.0, 3.0]])
    a[0, 0] = 100.0  # numpy() is a copy
    assert x.numpy()[0, 0] == 1.0
    s = x.sum().item()
    assert s == 6.0 and type(s) is float


def test_default_dtype_is_float32_and_can_be_float64(device):
    assert minigrad.get_default_dtype() == np.float32
    assert minigrad.tensor([1.0, 2.0], device=device).dtype == np.float32  # Python floats take the default
    assert minigrad.tensor(np.ones(2), device=device).dtype == np.float64  # an array keeps its dtype (as torch)
    assert minigrad.tensor([1, 2], device=device).dtype.kind == "i"  # integers keep their kind
    assert minigrad.zeros(2, device=device, dtype=np.float64).dtype == np.float64  # unless asked otherwise
    prev = minigrad.get_default_dtype()
    minigrad.set_default_dtype(np.float64)
    try:
        assert minigrad.tensor([1.0], device=device).dtype == np.float64
        assert minigrad.randn(2, device=device).dtype == np.float64
        assert nn.Linear(2, 3).weight.dtype == np.float64
    finally:
        minigrad.set_default_dtype(prev)
    assert minigrad.tensor([1.0], device=device).dtype == np.float32


def test_profile_times_each_op_then_unwraps():
    forward, backward = Function._forward, Function._backward
    x = minigrad.randn(4, 5, requires_grad=True)
    with minigrad.autograd.profile() as seconds:
        F.softmax(x * 2.0).sum().backward()
    assert set(seconds) == {f"{op}.{phase}" for op in ("Mul", "Softmax", "Sum") for phase in ("forward", "backward")}
    assert all(s >= 0 for s in seconds.values())
    assert (Function._forward, Function._backward) == (forward, backward)  # no wrapper left behind
