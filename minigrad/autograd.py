"""The graph: `Function` (one differentiable op) and the backward pass that walks the ops in reverse.

Each op is a Function subclass with `forward(*arrays, **params) -> array` and
`backward(dout) -> (dinput, ...)` written by hand, one grad per input (None
where no grad is needed). `Function.apply` runs forward on raw arrays and, if
any input requires grad, records the node: the output tensor points to its
Function (`_ctx`), and the Function keeps one edge per input: the Function that
made that input, or the input itself if it is a leaf (a parameter), whose .grad
backward fills. A Function holds no intermediate tensor, only the arrays its
backward needs (GELU's input, say, is freed as soon as GELU has run), and
nothing points from a Function to its output, so there are no reference cycles:
when the last reference to a loss goes away, the whole graph, activations
included, is freed by reference counting alone.

`backward` sorts the graph topologically with an explicit stack (no recursion,
so a 10,000-op chain is fine), then calls each Function's backward once, after
all gradients flowing into its output have been summed. It then frees each
node's saved arrays, so a second backward through the same graph raises.

Read next: ops/elementwise.py, the first ops.
"""
from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from minigrad.backend import get_array_module

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

_grad_enabled = True
_timings: dict[str, float] | None = None  # op name -> seconds, while profile() is on


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block ops record no graph: for evaluation, sampling and optimizer updates."""
    global _grad_enabled
    prev, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = prev


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def profile() -> Iterator[dict[str, float]]:
    """Collect the seconds spent in each op's forward and backward ("Linear.forward": 0.12, ...).
    On a GPU the numbers are launch times unless you synchronize: use it on the CPU."""
    global _timings
    prev, _timings = _timings, {}
    try:
        yield _timings
    finally:
        _timings = prev


def _record(key: str, t0: float) -> None:
    if _timings is not None:
        _timings[key] = _timings.get(key, 0.0) + time.perf_counter() - t0


class Function:
    """One differentiable op. Subclasses define forward and backward; forward may save
    what backward needs as attributes on self (and only that). needs_grad tells, per
    input, whether backward will be asked for its grad: all False under no_grad(), so
    forward can skip work that only backward would use. reuse_saved is True while backward
    runs for the last time (the graph is freed right after, no retain_graph): backward may
    then write into arrays that it alone saved instead of allocating new ones."""

    edges: tuple[Function | Tensor | None, ...] | None  # per input: its Function, itself if a leaf, None if no grad
    input_specs: tuple[tuple[tuple[int, ...], Any, type], ...]  # per input: (shape, dtype, array type), for checks
    needs_grad: tuple[bool, ...]
    reuse_saved = False
    retained_output: Any = None  # a weakref to the output, if it asked for its grad (retain_grad)

    def forward(self, *arrays: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, dout: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        # Sampling runs about a hundred ops per token on tiny arrays, so every line here counts.
        check_same_device(cls.__name__, inputs)
        fn = cls()
        fn.needs_grad = needs = tuple([t.requires_grad for t in inputs]) if _grad_enabled else (False,) * len(inputs)
        record = True in needs
        t0 = time.perf_counter() if _timings is not None else 0.0
        try:
            out = fn.forward(*[t.data for t in inputs], **params)
        except ValueError as e:  # NumPy's shape errors, re-raised with the op and the shapes
            shapes = ", ".join(str(t.shape) for t in inputs)
            raise ValueError(f"{cls.__name__}: {e} (input shapes: {shapes})") from None
        if isinstance(out, np.generic):  # NumPy gives scalars for 0-d results; keep arrays
            out = np.asarray(out)
        if _timings is not None:
            _record(cls.__name__ + ".forward", t0)
        result = _make_tensor(out, record)
        if record:
            fn.edges = tuple([(t._ctx or t) if need else None for t, need in zip(inputs, needs)])
            fn.input_specs = tuple([(t.data.shape, t.data.dtype, type(t.data)) for t in inputs])
            result._ctx = fn
        return result

    def free(self) -> None:
        """Drop the edges and every saved array; a later backward through here raises."""
        self.__dict__.clear()
        self.edges = None


def _topological_order(root: Function | Tensor) -> list[Function | Tensor]:
    """The graph's nodes (Functions, and leaf Tensors at the ends), each before all of the nodes
    its inputs came from (reverse DFS post-order, iterative)."""
    order: list[Function | Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        edges = getattr(node, "edges", None)  # None for leaf tensors and freed Functions
        if edges:
            stack.extend((e, False) for e in edges if e is not None and id(e) not in visited)
    order.reverse()
    return order


class Scatter:
    """A gradient that is zero except at some indexed places: what indexing's backward returns.

    q, k, v = qkv.split(C, axis=2) makes three GetItem ops. If each backward returned a
    zero array of qkv's full shape with its third filled in, the engine would then add the
    three full arrays: five full-size passes of nothing but zeros and copies. Kept as
    (index, values) parts instead, the pieces of one tensor's gradient are written into a
    single zero array when the gradient is needed."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, parts: list[tuple[Any, Any, bool]]) -> None:
        self.shape, self.dtype, self.parts = shape, dtype, parts  # parts: (index, values, index repeats?)
        self.array_type = type(parts[0][1])

    def plus(self, other: Any) -> Any:
        if isinstance(other, Scatter):
            return Scatter(self.shape, self.dtype, self.parts + other.parts)
        return self.to_array(start=other)

    def to_array(self, start: Any = None) -> Any:
        """The dense gradient: zeros (or a copy of `start`) plus every part at its index."""
        xp = get_array_module(self.parts[0][1])
        out = xp.zeros(self.shape, dtype=self.dtype) if start is None else start.copy()
        for index, values, repeats in self.parts:
            if repeats:  # an integer-array index may name one place twice: add every time
                xp.add.at(out, index, values)
            else:
                out[index] += values
        return out


def _add_grads(a: Any, b: Any) -> Any:
    if isinstance(a, Scatter):
        return a.plus(b)
    if isinstance(b, Scatter):
        return b.plus(a)
    return a + b


def backward(root: Tensor, dout: Any, retain_graph: bool = False) -> None:
    start = root._ctx or root
    grads: dict[int, Any] = {id(start): dout}  # node -> the gradient of its output, summed so far
    for node in _topological_order(start):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if isinstance(g, Scatter):
            g = g.to_array()
        if not isinstance(node, Function):  # a leaf
            node._accumulate_grad(g)
            continue
        fn = node
        if fn.edges is None:
            raise RuntimeError(
                f"backward through a graph that was already freed (at {type(fn).__name__}): "
                "call backward(retain_graph=True) the first time to backward twice"
            )
        kept = fn.retained_output() if fn.retained_output is not None else None
        if kept is not None:
            kept._accumulate_grad(g)
        t0 = time.perf_counter() if _timings is not None else 0.0
        fn.reuse_saved = not retain_graph
        in_grads = fn.backward(g)
        if _timings is not None:
            _record(type(fn).__name__ + ".backward", t0)
        for edge, spec, gi in zip(fn.edges, fn.input_specs, in_grads):
            if gi is None or edge is None:
                continue
            if isinstance(gi, np.generic):
                gi = np.asarray(gi)
            _check_grad(fn, spec, gi)
            k = id(edge)
            grads[k] = gi if k not in grads else _add_grads(grads[k], gi)
        if not retain_graph:
            fn.free()


def _check_grad(fn: Function, spec: tuple[tuple[int, ...], Any, type], g: Any) -> None:
    shape, dtype, array_type = spec
    g_type = g.array_type if isinstance(g, Scatter) else type(g)
    if g.shape != shape or g.dtype != dtype or g_type is not array_type:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a grad {g_type.__name__}{tuple(g.shape)} {g.dtype} "
            f"for an input {array_type.__name__}{tuple(shape)} {dtype}"
        )


# Tensor needs this module, so this module takes what it needs from Tensor last.
from minigrad.tensor import check_same_device  # noqa: E402
from minigrad.tensor import Tensor as _Tensor  # noqa: E402

_make_tensor = _Tensor._make
