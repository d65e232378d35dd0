"""In-place operations, as PyTorch: `t += 1`, `t.add_(x)`, `t.zero_()`, `t[0] = 5`, `t.copy_(src)`
change the tensor itself, so every name for it sees the change.

Each one computes the new values with the ordinary out-of-place op, then:

- If no graph is being recorded (nothing involved requires grad, or under no_grad), the
  values are written into t's memory, which views of t share, and the memory's version is
  counted up (autograd.bump_version): a Function that saved this memory for its backward then
  refuses to run, rather than give a wrong gradient.
- If a graph is being recorded, t takes the result's place: its data and its place in the
  graph (`_ctx`) become the result's, so the gradient flows through the op, and arrays saved
  from t's old values stay as they were. As in PyTorch, a leaf that requires grad cannot be
  written while recording (its .grad would belong to values it no longer holds).

Where minigrad differs from PyTorch (which rewrites the graph of every view of a written
tensor): while recording, writing into a view (say `x[0] += w`) is an error, and views taken
from t before such a write keep the old values (with a correct gradient for them).

Read next: ops/matmul.py.
"""
from __future__ import annotations

from typing import Any, Callable

from minigrad.autograd import bump_version, is_grad_enabled
from minigrad.ops import elementwise
from minigrad.ops.setitem import SetItem
from minigrad.ops.shape import as_index
from minigrad.tensor import Tensor, as_tensor, can_cast


def update(t: Tensor, op: str, compute: Callable[[], Tensor]) -> Tensor:
    """Make t hold compute()'s result, as described above; compute runs the out-of-place op."""
    if is_grad_enabled() and t.requires_grad and t.is_leaf:
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad is being used in an in-place operation; "
            "do it under `with minigrad.no_grad():` (to change a parameter), or out of place"
        )
    out = compute()
    recording = out.requires_grad  # something involved requires grad, and grad mode is on
    if out.shape != t.shape:
        raise RuntimeError(f"{op}: output with shape {list(t.shape)} doesn't match the broadcast shape {list(out.shape)}")
    if out.dtype != t.dtype:
        if not can_cast(out.dtype, t.dtype):
            raise RuntimeError(f"{op}: result type {out.dtype} can't be cast to the desired output type {t.dtype}")
        out = elementwise.cast(out, t.dtype)
    if recording:
        if memory_is_shared(t):
            raise RuntimeError(
                f"{op}: in-place write into a view of another tensor while a graph is recorded; minigrad "
                "cannot rewrite the graph of the tensor it views (PyTorch can): write out of place instead"
            )
        t.data, t._ctx, t.requires_grad = out.data, out._ctx, True
    else:
        t.data[...] = out.data
        bump_version(t.data)
    return t


def memory_is_shared(t: Tensor) -> bool:
    """Is t's array a view into another array's memory?"""
    return isinstance(t.data.base, type(t.data))


def binary(t: Tensor, op: str, fn: Callable[[Any, Any], Tensor], other: Any) -> Tensor:
    """t = fn(t, other), in place: `t += other` is binary(t, "add_", elementwise.add, other)."""
    return update(t, op, lambda: fn(t, other))


def fill(t: Tensor, op: str, value: Any) -> Tensor:
    """Every element of t set to value (zero_, fill_); while recording, t's gradient becomes zero."""
    if isinstance(value, Tensor) and value.numel() != 1:
        raise RuntimeError(f"{op}: the value must be a number or a one-element tensor, got shape {value.shape}")
    return update(t, op, lambda: setitem_value(t, Ellipsis, value))


def setitem_value(t: Tensor, index: Any, value: Any) -> Tensor:
    """t with t[index] = value, out of place (SetItem); value broadcast and cast to t's dtype."""
    index = as_index("setitem", t, index)
    v = as_tensor(value, t) if not isinstance(value, Tensor) else value
    if v.dtype != t.dtype:
        v = elementwise.cast(v, t.dtype)  # as PyTorch: the written values take the tensor's dtype
    return SetItem.apply(t, v, index=index)


def setitem(t: Tensor, index: Any, value: Any) -> None:
    """`t[index] = value`: PyTorch's index_put_, the values cast to t's dtype."""
    update(t, "setitem", lambda: setitem_value(t, index, value))


def copy_(t: Tensor, src: Any) -> Tensor:
    """t's elements replaced by src's, broadcast and cast to t's shape and dtype."""
    return update(t, "copy_", lambda: setitem_value(t, Ellipsis, src))
