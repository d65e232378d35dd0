"""The fused ops written the simple way: a few lines of primitives each, to read before the fast ones.

Every function here computes what its fused twin in ops/ computes: tests/test_simple.py proves
values and gradients equal in float64 on every backend (tests/test_functional_torch.py for the
three activations, and for cross_entropy with a -inf logit in an ignored row, which the fused op
once turned into NaN; a row whose logits are all -inf gives both, and PyTorch, a NaN gradient).
Each is built from ops already met (exp, sum, mean, var, indexing, matmul), so its backward
comes for free from theirs. The fused versions exist because these keep every intermediate array
for backward and make one pass over memory per line; each fused op's module says what it saves
instead and derives its backward (all the derivations together: docs/derivations.md).

    simple                     fused
    linear(x, w, b)            ops/matmul.py        Linear
    softmax, log_softmax       ops/softmax.py       Softmax, LogSoftmax
    cross_entropy              ops/softmax.py       CrossEntropy
    layer_norm                 ops/layernorm.py     LayerNorm
    gelu                       ops/elementwise.py   GELU
    logsigmoid, softplus, silu ops/activation.py    LogSigmoid, Softplus, SiLU
    embedding                  ops/embedding.py     Embedding

Shapes: x (..., C) with the op over the last axis; logits (N, V), targets (N,); weight,
bias (C,) for layer_norm; w (out, in), b (out,) for linear; table (V, C) for embedding.

Leaves out: attention (its simple twin sits beside the fused op in ops/attention.py), and
cross_entropy's weight, reduction and layouts (tests/test_functional_torch.py checks those against PyTorch).

Read next: ops/elementwise.py, where the fused ops begin.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.backend import get_array_module
from minigrad.ops.elementwise import erf, maximum, where
from minigrad.ops.reduce import amax
from minigrad.tensor import Tensor


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    y = x @ w.T  # (..., out) = (..., in) @ (in, out)
    return y if b is None else y + b


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    # Subtracting the row max changes nothing (softmax(x - c) = softmax(x)) but keeps exp from
    # overflowing; the max is a constant to backward (detach), since the result does not depend on it.
    e = (x - amax(x, axis, True).detach()).exp()
    return e / e.sum(axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    shifted = x - amax(x, axis, True).detach()
    return shifted - shifted.exp().sum(axis, keepdims=True).log()  # x_i - log sum_j e^x_j


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """Mean of -log p(target) over the rows whose target is not ignore_index."""
    t = targets.data if isinstance(targets, Tensor) else targets
    xp = get_array_module(t)
    rows = xp.flatnonzero(t != ignore_index)  # (M,) the rows that count
    logp = log_softmax(logits)[rows]  # (M, V)
    nll = -logp[xp.arange(len(rows)), t[rows]].mean()  # -log p of each row's target, averaged
    if not label_smoothing:
        return nll
    # the target is (1 - eps) onehot + eps / V: mix in -log p averaged over the classes too
    return (1 - label_smoothing) * nll - label_smoothing * logp.mean()


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    mean = x.mean(-1, keepdims=True)  # (..., 1)
    var = x.var(-1, keepdims=True, correction=0)  # (..., 1) the biased variance, as PyTorch normalizes
    xhat = (x - mean) / (var + eps).sqrt()  # (..., C) mean 0, variance 1 along the last axis
    y = xhat if weight is None else xhat * weight
    return y if bias is None else y + bias


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "tanh":  # GPT-2's approximation
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + (c * (x + 0.044715 * x**3)).tanh())
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))  # x Phi(x), Phi the standard normal CDF


def logsigmoid(x: Tensor) -> Tensor:
    # log sigmoid(x) = -log(1 + e^-x), but e^-x overflows for x << 0; with |x| = max(x, -x),
    # it is min(x, 0) - log(1 + e^-|x|), and e^-|x| <= 1 always. min(x, 0) = x - relu(x).
    return (x - x.relu()) - (1 + (-maximum(x, -x)).exp()).log()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    bx = x * beta
    soft = (bx.relu() + (1 + (-maximum(bx, -bx)).exp()).log()) / beta  # log(1 + e^(beta x)) / beta, as above
    return where(bx > threshold, x, soft)  # x itself past the threshold, as PyTorch


def silu(x: Tensor) -> Tensor:
    return x * x.sigmoid()


def embedding(idx: Any, table: Tensor) -> Tensor:
    return table[idx]  # (..., C): row idx[n] of the table for each id
