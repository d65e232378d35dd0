"""PyTorch-familiar functional names (`import minigrad.functional as F`), all in one list.

Each name points at the op where its forward and backward are written; this file
only gathers them. `F.softmax(x)` works over the last axis, as everywhere here.

Read next: nn/module.py.
"""
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
from minigrad.ops.layernorm import layer_norm
from minigrad.ops.matmul import linear, matmul
from minigrad.ops.reduce import max, mean, sum, var
from minigrad.ops.shape import broadcast_to, cat, concatenate, getitem, permute, reshape, split, stack, transpose
from minigrad.ops.softmax import cross_entropy, log_softmax, softmax

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "erf",
    "maximum", "where", "masked_fill", "cast",
    "sum", "mean", "max", "var",
    "reshape", "permute", "transpose", "getitem", "concatenate", "cat", "stack", "split", "broadcast_to",
    "matmul", "linear",
    "softmax", "log_softmax", "cross_entropy",
    "layer_norm", "embedding", "dropout", "scaled_dot_product_attention",
]
