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

`backward` is micrograd's loop: sort the graph topologically (with an explicit
stack, so a 10,000-op chain is fine), then call each Function's backward once,
after all gradients flowing into its output have been summed, and hand its
input grads on. Each node's saved arrays are freed as soon as its backward has
run, so a second backward through the same graph raises.

In-place writes (`t += 1`, `t[0] = 5`, see inplace.py) could change an array some
Function saved for its backward after the fact, and give a wrong gradient without
a word. PyTorch's answer is a version counter, and so is ours (the last section):
every in-place write counts up the version of the memory it writes into, each
Function notes the versions of its inputs when it is recorded, and its backward
refuses to run if an array it saved has been written since.

Read next: simple.py (the fused ops the simple way), then ops/elementwise.py, the first ops.
"""
from __future__ import annotations

import contextlib
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from minigrad.backend import Array
from minigrad.speed import is_plain

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

_grad_enabled = True


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


class Function:
    """One differentiable op. Subclasses define forward and backward; forward may save
    what backward needs as attributes on self (and only that). needs_grad tells, per
    input, whether backward will be asked for its grad: all False under no_grad(), so
    forward can skip work that only backward would use.

    Two rules keep hand-written ops from corrupting each other's gradients:
    1. Never write into `dout`: the same array may also be the gradient of another
       input (Add hands dout on as it is) or of another op.
    2. Write only into arrays the op alone owns: ones its own forward or backward
       allocated, never an input, an output, or a view of either (LayerNorm without
       a weight returns xhat itself). A saved array may be reused when reuse_saved is
       True: backward runs for the last time and the graph is freed right after (no
       retain_graph), so nobody reads the saved array again. Plain mode (speed.py)
       keeps it False."""

    edges: tuple[Function | Tensor | None, ...] | None  # per input: its Function, itself if a leaf, None if no grad
    input_specs: tuple[tuple[tuple[int, ...], Any, type], ...]  # per input: (shape, dtype, array type), for checks
    needs_grad: tuple[bool, ...]
    reuse_saved = False
    retained_output: Any = None  # a weakref to the output, if it asked for its grad (retain_grad)
    versions: dict[int, int] | None = None  # id(memory) -> its version when recorded, where not 0

    def forward(self, *arrays: Array, **params: Any) -> Array:
        raise NotImplementedError

    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        # Sampling runs about a hundred ops per token on tiny arrays, so every line here counts.
        check_same_device(cls.__name__, inputs)
        fn = cls()
        fn.needs_grad = needs = tuple([t.requires_grad for t in inputs]) if _grad_enabled else (False,) * len(inputs)
        record = True in needs
        try:
            out = fn._forward([t.data for t in inputs], params)
        except ValueError as e:  # NumPy's shape errors, re-raised with the op and the shapes
            shapes = ", ".join(str(t.shape) for t in inputs)
            raise ValueError(f"{cls.__name__}: {e} (input shapes: {shapes})") from None
        if isinstance(out, np.generic):  # NumPy gives scalars for 0-d results; keep arrays
            out = np.asarray(out)
        result = _make_tensor(out, record)
        if record:
            fn.edges = tuple([(t._ctx or t) if need else None for t, need in zip(inputs, needs)])
            fn.input_specs = tuple([(t.data.shape, t.data.dtype, type(t.data)) for t in inputs])
            if _versions:  # some memory has been written in place: note the inputs' versions
                fn.versions = {k: _versions[k] for t in inputs if (k := id(memory_of(t.data))) in _versions}
            result._ctx = fn
        return result

    def _forward(self, arrays: list[Array], params: dict[str, Any]) -> Array:
        return self.forward(*arrays, **params)  # (profile() times the ops by wrapping this and _backward)

    def _backward(self, dout: Array) -> tuple[Array | None, ...]:
        return self.backward(dout)

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


class SparseGrad:
    """A gradient kept in pieces until someone needs it whole: indexing's backward returns one
    (ops/shape.py's ScatteredGrad), so the three pieces of q, k, v = qkv.split(...) fill one zero
    array instead of three. The engine only adds them (`plus`) and densifies them (`to_array`)."""

    shape: tuple[int, ...]
    dtype: Any
    array_type: type

    def plus(self, other: Array | SparseGrad) -> Array | SparseGrad:
        raise NotImplementedError

    def to_array(self) -> Array:
        raise NotImplementedError


def _add_grads(a: Array | SparseGrad, b: Array | SparseGrad) -> Array | SparseGrad:
    if isinstance(a, SparseGrad):
        return a.plus(b)
    if isinstance(b, SparseGrad):
        return b.plus(a)
    total = a + b
    return np.asarray(total) if isinstance(total, np.generic) else total  # NumPy gives a scalar for 0-d


def backward(root: Tensor, dout: Array, retain_graph: bool = False) -> None:
    start = root._ctx or root
    grads: dict[int, Any] = {id(start): dout}  # node -> the gradient of its output, summed so far
    for node in _topological_order(start):
        g = grads.pop(id(node), None)
        if g is None:  # no gradient reached this node
            continue
        if isinstance(g, SparseGrad):
            g = g.to_array()
        if not isinstance(node, Function):  # a leaf: its .grad collects the gradient
            node._accumulate_grad(g)
            continue
        edges = node.edges or ()  # (_run_backward frees the node, or raises if it was freed before)
        for edge, g_in in zip(edges, _run_backward(node, g, retain_graph)):
            if edge is not None and g_in is not None:
                k = id(edge)
                grads[k] = g_in if k not in grads else _add_grads(grads[k], g_in)


def _run_backward(fn: Function, dout: Array, retain_graph: bool) -> tuple[Array | None, ...]:
    """fn.backward(dout) and what goes around it: the grad of a tensor that asked for it
    (retain_grad), reuse_saved, checks on the grads it returns, and freeing the node."""
    if fn.edges is None:
        raise RuntimeError(
            f"backward through a graph that was already freed (at {type(fn).__name__}): "
            "call backward(retain_graph=True) the first time to backward twice"
        )
    if _versions:
        _check_versions(fn)
    kept = fn.retained_output() if fn.retained_output is not None else None
    if kept is not None:
        kept._accumulate_grad(dout)
    fn.reuse_saved = not retain_graph and not is_plain()
    in_grads = tuple(np.asarray(g) if isinstance(g, np.generic) else g for g in fn._backward(dout))
    for spec, g in zip(fn.input_specs, in_grads):
        if g is not None:
            _check_grad(fn, spec, g)
    if not retain_graph:
        fn.free()
    return in_grads


def _check_grad(fn: Function, spec: tuple[tuple[int, ...], Any, type], g: Any) -> None:
    shape, dtype, array_type = spec
    g_type = g.array_type if isinstance(g, SparseGrad) else type(g)
    if g.shape != shape or g.dtype != dtype or g_type is not array_type:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a grad {g_type.__name__}{tuple(g.shape)} {g.dtype} "
            f"for an input {array_type.__name__}{tuple(shape)} {dtype}"
        )


# ---- versions: no in-place write may change what a Function saved for its backward ----------

_versions: dict[int, int] = {}  # id(memory) -> in-place writes into it; only memory ever written has an entry


def memory_of(a: Array) -> Array:
    """The array that owns a's memory: a itself, or the array a view was taken from."""
    while isinstance(a.base, type(a)):
        a = a.base
    return a


def bump_version(a: Array) -> None:
    """Count one in-place write into a's memory (inplace.py calls this after every write)."""
    mem = memory_of(a)
    k = id(mem)
    if k not in _versions:
        try:  # forget the entry when the memory is freed, before Python can reuse its id
            weakref.finalize(mem, _versions.pop, k, None)
        except TypeError:  # an array type that takes no weak references: not tracked
            return
    _versions[k] = _versions.get(k, 0) + 1


def _check_versions(fn: Function) -> None:
    """Raise if an array fn saved was written in place after fn was recorded (PyTorch's error).
    Only saved arrays count: y = x + 1 saves nothing of x, so x may change before backward."""
    array_types = {spec[2] for spec in fn.input_specs}
    recorded = fn.versions or {}
    for name, value in vars(fn).items():
        if type(value) in array_types:
            k = id(memory_of(value))
            now = _versions.get(k, 0)
            if now != recorded.get(k, 0):
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: {type(fn).__name__} saved {name} (shape {tuple(value.shape)}), which is at "
                    f"version {now}; expected version {recorded.get(k, 0)} instead. Use an out-of-place op "
                    f"(x = x + y instead of x += y) before backward."
                )


# ---- profiling: a wrapper around every forward and backward, only while it is on -------------


@contextlib.contextmanager
def profile() -> Iterator[dict[str, float]]:
    """Collect the seconds spent in each op's forward and backward ("Linear.forward": 0.12, ...).
    On a GPU the numbers are launch times unless you synchronize: use it on the CPU."""
    timings: dict[str, float] = {}

    def timed(run: Any, phase: str) -> Any:
        def timed_run(fn: Function, *args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return run(fn, *args)
            finally:
                key = f"{type(fn).__name__}.{phase}"
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0

        return timed_run

    untimed = Function._forward, Function._backward
    Function._forward, Function._backward = timed(untimed[0], "forward"), timed(untimed[1], "backward")
    try:
        yield timings
    finally:
        Function._forward, Function._backward = untimed


# Tensor needs this module, so this module takes what it needs from Tensor last.
from minigrad.tensor import check_same_device  # noqa: E402
from minigrad.tensor import Tensor as _Tensor  # noqa: E402

_make_tensor = _Tensor._make
