"""Shared pieces of the op tests: hypothesis strategies for shapes and arrays, and `check_op`.

An array is drawn as an integer seed plus a memory layout: np.random.default_rng(seed)
makes the values (fast, and hypothesis shrinks a seed like any integer), and the layout
sometimes makes the array transposed or strided, so ops also see non-contiguous inputs.
Value kinds keep inputs off the points where an op is not differentiable.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad

# ---- shapes ---------------------------------------------------------------------------


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_shapes(n: int = 2, min_dims: int = 0, max_dims: int = 3) -> st.SearchStrategy:
    """n shapes that broadcast together: missing leading dims and size-1 dims included."""
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims, max_dims=max_dims, max_side=4).map(
        lambda bs: bs.input_shapes
    )


@st.composite
def axes(draw: Any, ndim: int) -> Any:
    """An `axis` argument for a reduction: None, one axis, or a tuple of distinct axes (maybe empty),
    each sometimes written negative."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    one = st.integers(-ndim, ndim - 1)
    subset = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim)
    axis = draw(st.one_of(st.none(), one, subset))
    if isinstance(axis, list):
        axis = tuple(a - ndim if draw(st.booleans()) else a for a in axis)
    return axis


def with_size(shape: tuple[int, ...], axis: int, n: int) -> tuple[int, ...]:
    """`shape` with its `axis` set to n."""
    s = list(shape)
    s[axis] = n
    return tuple(s)


# ---- values and layouts ----------------------------------------------------------------

Values = Callable[[np.random.Generator, tuple[int, ...]], Any]

VALUES: dict[str, Values] = {
    "normal": lambda rng, s: rng.standard_normal(s),
    "positive": lambda rng, s: rng.uniform(0.5, 2.0, s),  # log, sqrt, fractional powers
    "nonzero": lambda rng, s: rng.choice([-1.0, 1.0], s) * rng.uniform(0.1, 2.0, s),  # relu off its kink; divisors
    "distinct": lambda rng, s: 0.1 * (rng.permutation(int(np.prod(s))) - np.prod(s) / 2).reshape(s),  # max: no ties
    "even": lambda rng, s: 0.2 * rng.integers(-5, 6, s),  # maximum(even, odd): a == b never happens
    "odd": lambda rng, s: 0.2 * rng.integers(-5, 5, s) + 0.1,
}

LAYOUTS = ("contiguous", "transposed", "strided")


def make_array(seed: int, shape: tuple[int, ...], values: str = "normal", layout: str = "contiguous") -> np.ndarray:
    """A float64 array of `shape`; "transposed" is Fortran-ordered, "strided" takes every other element."""
    rng, fill = np.random.default_rng(seed), VALUES[values]
    if layout == "transposed":
        a = fill(rng, shape[::-1]).T
    elif layout == "strided" and shape:
        a = fill(rng, shape[:-1] + (2 * shape[-1],))[..., ::2]
    else:
        a = fill(rng, shape)
    return np.asarray(a, dtype=np.float64)


seeds = st.integers(0, 2**32 - 1)


@st.composite
def arrays(draw: Any, shape: tuple[int, ...], values: str = "normal") -> np.ndarray:
    """A float64 NumPy array of `shape`: values from a drawn seed, sometimes non-contiguous."""
    return make_array(draw(seeds), tuple(shape), values, draw(st.sampled_from(LAYOUTS)))


# ---- checking --------------------------------------------------------------------------


def check_op(fn: Callable[..., Any], reference: Callable[..., Any], arrays: Sequence[np.ndarray], device: str) -> None:
    """fn's forward against a NumPy reference on the host copies, then its backward against
    finite differences. Every array becomes a float64 Tensor on `device` that requires grad."""
    expected = np.asarray(reference(*arrays))
    xs = [minigrad.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = fn(*xs)
    assert (out.device, out.dtype, out.shape) == (device, np.float64, expected.shape)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert minigrad.gradcheck(fn, xs)
    for x, a in zip(xs, arrays):  # no op may write into its inputs
        np.testing.assert_array_equal(x.numpy(), a)


def matches_torch(mg: Callable[..., Any], th: Callable[..., Any], arrays: Sequence[np.ndarray], grads: Sequence[bool],
                  device: str) -> tuple[Any, Any]:
    """mg on minigrad tensors (on `device`) and th on torch tensors of the same float64 arrays: equal
    values, and equal gradients of sum(out * u) for a random cotangent u, for the inputs marked in
    `grads`. Returns both outputs, for further checks (dtype, shape)."""
    torch = need("torch")
    ours = [minigrad.tensor(a, device=device, requires_grad=g) for a, g in zip(arrays, grads)]
    theirs = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
    out, expected = mg(*ours), th(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    if any(grads):
        cotangent = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(minigrad.tensor(cotangent, device=device))
        expected.backward(torch.tensor(cotangent))
        for a, b, g in zip(ours, theirs, grads):
            if g:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
    return out, expected


# ---- optional packages ----------------------------------------------------------------


def need(module: str) -> Any:
    """The module, or skip the test naming the package and its install command
    (minigrad.extras.INSTALL, the same line the library prints when a feature misses it)."""
    import pytest

    from minigrad.extras import install_hint

    __tracebackhide__ = True  # the skip is reported at the test's line

    return pytest.importorskip(module, reason=f"needs {install_hint(module)}")
