"""Shape ops (reshape, permute, getitem, concatenate, stack, split, broadcast_to) vs NumPy and finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad
import minigrad.functional as F
from helpers import arrays, broadcast_shapes, check_op, make_array, seeds, shapes, with_size

pytestmark = pytest.mark.usefixtures("float64")

RESHAPES = {  # name: the new shape, from the old one
    "flatten": lambda s: (-1,),
    "reversed": lambda s: s[::-1],
    "new leading 1": lambda s: (1, *s),
    "column": lambda s: (-1, 1),
    "merge first two": lambda s: (-1, *s[2:]),
}


@pytest.mark.parametrize("name", RESHAPES)
@given(shape=shapes(), data=st.data())
def test_reshape(name, device, shape, data):
    new = RESHAPES[name](shape)
    check_op(lambda x: F.reshape(x, new), lambda x: x.reshape(new), [data.draw(arrays(shape))], device)


@given(shape=shapes(), data=st.data())
def test_permute(device, shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    check_op(lambda x: F.permute(x, perm), lambda x: x.transpose(perm), [data.draw(arrays(shape))], device)


@given(shape=shapes(min_dims=1), data=st.data())
def test_transpose(device, shape, data):
    dim0, dim1 = data.draw(st.tuples(*[st.integers(-len(shape), len(shape) - 1)] * 2))
    check_op(lambda x: F.transpose(x, dim0, dim1), lambda x: x.swapaxes(dim0, dim1), [data.draw(arrays(shape))], device)


@given(shape=shapes(), data=st.data())
def test_getitem_basic(device, shape, data):
    """Ints, slices with any step (negative too), None and Ellipsis; one index works on NumPy and Tensors."""
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    check_op(lambda x: x[index], lambda x: x[index], [data.draw(arrays(shape))], device)


@given(shape=shapes(min_dims=1), idx_shape=shapes(min_dims=1, max_dims=2, max_side=6), seed=seeds, data=st.data())
def test_getitem_integer_array(device, shape, idx_shape, seed, data):
    """x[..., idx, ...] along one axis; ids repeat (and are negative) often, so the scatter must add."""
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx = np.random.default_rng(seed).integers(-n, n, idx_shape)
    lead = (slice(None),) * axis
    t_idx = minigrad.tensor(idx, device=device)  # index arrays live on the tensor's device too
    check_op(lambda x: x[lead + (t_idx,)], lambda x: x[lead + (idx,)], [data.draw(arrays(shape))], device)


@given(shape=shapes(min_dims=2), idx_shapes=broadcast_shapes(2, min_dims=1, max_dims=2), seed=seeds, data=st.data())
def test_getitem_two_integer_arrays(device, shape, idx_shapes, seed, data):
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, shape[0], idx_shapes[0]), rng.integers(0, shape[1], idx_shapes[1])
    ti, tj = minigrad.tensor(i, device=device), minigrad.tensor(j, device=device)
    check_op(lambda x: x[ti, tj], lambda x: x[i, j], [data.draw(arrays(shape))], device)


@given(shape=shapes(min_dims=1), data=st.data())
def test_getitem_boolean_mask(device, shape, data):
    mask = data.draw(hnp.arrays(np.bool_, shape[:1]))
    m = minigrad.tensor(mask, device=device)
    check_op(lambda x: x[m], lambda x: x[mask], [data.draw(arrays(shape))], device)


def test_getitem_accumulates_repeated_indices(device):
    x = minigrad.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    x[minigrad.tensor([0, 2, 0, 0], device=device)].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@given(shape=shapes(min_dims=1), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data())
def test_concatenate(device, shape, sizes, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = [data.draw(arrays(with_size(shape, axis, n))) for n in sizes]
    check_op(lambda *xs: F.concatenate(xs, axis), lambda *xs: np.concatenate(xs, axis), xs, device)


@given(shape=shapes(), count=st.integers(1, 3), data=st.data())
def test_stack(device, shape, count, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(count)]
    check_op(lambda *xs: F.stack(xs, axis), lambda *xs: np.stack(xs, axis), xs, device)


@given(shape=shapes(min_dims=1), data=st.data())
def test_split(device, shape, data):
    """Chunks of one size or a list of sizes; the parts are put back in reverse order, so order matters."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if data.draw(st.booleans()):
        sections = data.draw(st.integers(1, n))
        bounds = list(range(sections, n, sections))
    else:
        bounds = sorted(data.draw(st.sets(st.integers(1, n - 1)))) if n > 1 else []
        sections = list(np.diff([0, *bounds, n]))
    check_op(
        lambda x: F.concatenate(F.split(x, sections, axis)[::-1], axis),
        lambda x: np.concatenate(np.split(x, bounds, axis)[::-1], axis),
        [data.draw(arrays(shape))],
        device,
    )


@given(target=shapes(), data=st.data())
def test_broadcast_to(device, target, data):
    """From a shape missing leading dims and with some dims 1 up to `target`; backward sums the copies."""
    lead = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if data.draw(st.booleans()) else n for n in target[lead:])
    x = data.draw(arrays(shape))
    check_op(lambda x: F.broadcast_to(x, target), lambda x: np.broadcast_to(x, target), [x], device)


def test_noncontiguous_reshape_keeps_element_order(device):
    """reshape of a transposed array must follow the logical (C) order, not the memory order."""
    a = make_array(0, (3, 2), layout="transposed")
    x = minigrad.tensor(a, device=device)
    np.testing.assert_array_equal(F.reshape(x, (-1,)).numpy(), a.reshape(-1))
