"""The graph: `Function` (one differentiable op) and the backward pass that walks the ops in reverse.

Each op is a Function subclass with `forward(*arrays, **params) -> array` and
`backward(dout) -> (dinput, ...)` written by hand, one grad per input (None
where no grad is needed). `Function.apply` runs forward on raw arrays and, if
any input requires grad, records the node: the output tensor points to its
Function (`_ctx`), the Function points to its inputs. Nothing points from a
Function to its output, so there are no reference cycles: when the last
reference to a loss goes away, the whole graph, activations included, is freed
by reference counting alone.

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
    forward can skip work that only backward would use."""

    inputs: tuple[Tensor, ...] | None
    needs_grad: tuple[bool, ...]

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
            fn.inputs = inputs
            result._ctx = fn
        return result

    def free(self) -> None:
        """Drop the inputs and every saved array; a later backward through here raises."""
        self.__dict__.clear()
        self.inputs = None


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that require grad, each before all of its inputs (reverse DFS post-order, iterative)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        fn = t._ctx
        if fn is not None and fn.inputs is not None:
            stack.extend((i, False) for i in fn.inputs if i.requires_grad and id(i) not in visited)
    order.reverse()
    return order


def backward(root: Tensor, dout: Any, retain_graph: bool = False) -> None:
    grads: dict[int, Any] = {id(root): dout}
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        fn = t._ctx
        if fn is None or t._retains_grad:
            t._accumulate_grad(g)
        if fn is None:
            continue
        if fn.inputs is None:
            raise RuntimeError(
                f"backward through a graph that was already freed (at {type(fn).__name__}): "
                "call backward(retain_graph=True) the first time to backward twice"
            )
        t0 = time.perf_counter() if _timings is not None else 0.0
        in_grads = fn.backward(g)
        if _timings is not None:
            _record(type(fn).__name__ + ".backward", t0)
        for inp, gi in zip(fn.inputs, in_grads):
            if gi is None or not inp.requires_grad:
                continue
            if isinstance(gi, np.generic):
                gi = np.asarray(gi)
            _check_grad(fn, inp, gi)
            k = id(inp)
            grads[k] = gi if k not in grads else grads[k] + gi
        if not retain_graph:
            fn.free()


def _check_grad(fn: Function, inp: Tensor, g: Any) -> None:
    if g.shape != inp.shape or g.dtype != inp.dtype or type(g) is not type(inp.data):
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a grad {type(g).__name__}{tuple(g.shape)} {g.dtype} "
            f"for an input {type(inp.data).__name__}{inp.shape} {inp.dtype}"
        )


# Tensor needs this module, so this module takes what it needs from Tensor last.
from minigrad.tensor import check_same_device  # noqa: E402
from minigrad.tensor import Tensor as _Tensor  # noqa: E402

_make_tensor = _Tensor._make
