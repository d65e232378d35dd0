"""PyTorch-familiar functional names (`import minigrad.functional as F`), all in one list.

Each name points at the op where its forward and backward are written; this file
only gathers them, and holds two helpers that have no op of their own: one_hot
(integers, no gradient) and pad (composed of indexing and concatenate, whose
backwards give its gradient). `F.softmax(x)` works over the last axis, as
everywhere here.

Read next: nn/module.py.
"""
from __future__ import annotations

from typing import Sequence

from minigrad.backend import get_array_module
from minigrad.ops.activation import logsigmoid, silu, softplus
from minigrad.ops.attention import scaled_dot_product_attention
from minigrad.ops.dropout import dropout
from minigrad.ops.elementwise import (
    add,
    cast,
    div,
    erf,
    exp,
    gelu,
    log,
    masked_fill,
    maximum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from minigrad.ops.embedding import embedding
from minigrad.ops.flash_attention import flash_attention, sliding_window_mask
from minigrad.ops.layernorm import layer_norm
from minigrad.ops.loss import binary_cross_entropy_with_logits, mse_loss, nll_loss
from minigrad.ops.matmul import linear, matmul
from minigrad.ops.reduce import amax, amin, max, mean, sum, var
from minigrad.ops.rmsnorm import rms_norm
from minigrad.ops.shape import broadcast_to, cat, concatenate, getitem, permute, reshape, split, stack, transpose
from minigrad.ops.softmax import cross_entropy, log_softmax, softmax
from minigrad.tensor import Tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "erf",
    "logsigmoid", "softplus", "silu",
    "maximum", "where", "masked_fill", "cast",
    "sum", "mean", "max", "amax", "amin", "var",
    "reshape", "permute", "transpose", "getitem", "concatenate", "cat", "stack", "split", "broadcast_to", "pad",
    "matmul", "linear",
    "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
    "one_hot", "layer_norm", "rms_norm", "embedding", "dropout", "scaled_dot_product_attention",
    "flash_attention", "sliding_window_mask",
]


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """(..., num_classes) int64, 1 at each id of `tensor` (...) and 0 elsewhere, as PyTorch;
    num_classes=-1 takes the largest id + 1. Ids are read on the host (on a GPU, one wait), as PyTorch checks them."""
    ids = tensor.data
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected integer class ids, got {ids.dtype}")
    if num_classes == -1 and ids.size == 0:
        raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
    if ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0:
            raise ValueError(f"one_hot: class ids must be non-negative, got {low}")
        if num_classes == -1:
            num_classes = high + 1
        if high >= num_classes:
            raise ValueError(f"one_hot: class id {high} is out of range for num_classes={num_classes}")
    xp = get_array_module(ids)
    return Tensor._make((ids[..., None] == xp.arange(num_classes)).astype(xp.int64), False)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last len(pad) // 2 dims with `value` (0 by default), as torch.nn.functional.pad:
    pad = (left, right) for the last dim, then (top, bottom) for the one before, ...; a negative
    size crops instead. Only mode='constant'."""
    if mode != "constant":
        raise ValueError(f"pad: mode={mode!r} is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) > 2 * input.ndim:
        raise ValueError(f"pad: expected pairs of sizes, at most one pair per dim ({input.ndim}), got {tuple(pad)}")
    out = input
    for i in range(len(pad) // 2):
        axis, before, after = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        n = out.shape[axis]
        if n + before + after < 0:
            raise ValueError(f"pad: padding {(before, after)} leaves dim {axis} of size {n} with a negative size")
        if before < 0 or after < 0:  # crop: keep [-before, n + after)
            index = [slice(None)] * out.ndim
            index[axis] = slice(-before if before < 0 else 0, n + after if after < 0 else n)
            out = out[tuple(index)]
        fill = 0 if value is None else value
        parts = _block(out, axis, before, fill) + [out] + _block(out, axis, after, fill)
        out = concatenate(parts, axis) if len(parts) > 1 else out
    return out


def _block(like: Tensor, axis: int, size: int, value: float) -> list[Tensor]:
    """[like's shape with `size` along axis, filled with value], or [] if size <= 0."""
    if size <= 0:
        return []
    shape = like.shape[:axis] + (size,) + like.shape[axis + 1 :]
    return [Tensor._make(get_array_module(like.data).full(shape, value, dtype=like.dtype), False)]
