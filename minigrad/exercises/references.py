"""The reference value of every term an exercise asks for, computed by minigrad's autograd.

The gradients a backward returns (dx, dweight, ...) come from the project's own op, the solution
(see catalog.py). The terms in between (layer norm's three ways into x, attention's dP and dS) are
computed inside each fused backward and never come out of it, so each function here gets them from
autograd instead, without restating the answer: a term that is "the gradient along one way, the
others held fixed" is the vector-Jacobian product of the forward written with those others as
constants; a step of a chain (attention's dP, dS) is the vector-Jacobian product of that one step.
Each function takes the case's differentiable arrays, its parameters and the cotangent dout, all
float64 NumPy, and returns {term name: array} for the terms that are not gradients of the inputs.

Read next: checker.py, which compares a learner's terms with these.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from minigrad.ops.softmax import softmax
from minigrad.tensor import Tensor


def vjp(fn: Callable[..., Tensor], arrays: list[np.ndarray], dout: np.ndarray, **params: Any) -> list[np.ndarray]:
    """d sum(fn(*arrays) * dout) / d array, for each array, by minigrad's backward."""
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    fn(*leaves, **params).backward(dout)
    return [np.zeros_like(a) if t.grad is None else t.grad.data for t, a in zip(leaves, arrays)]


def layer_norm_terms(arrays: list[np.ndarray], params: dict[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """dxhat, and dx split by the three ways x reaches xhat = (x - mean) * rstd: each way is autograd
    through a forward in which the two other quantities are constants (plain arrays)."""
    x, weight, bias = arrays
    eps = params["eps"]
    mean = x.mean(-1, keepdims=True)  # (N, 1)
    rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + eps)  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C)
    (dxhat,) = vjp(lambda xh: xh * weight + bias, [xhat], dout)
    (direct,) = vjp(lambda x_: (x_ - mean) * rstd, [x], dxhat)
    (via_mean,) = vjp(lambda x_: (x - x_.mean(-1, keepdims=True)) * rstd, [x], dxhat)
    (via_rstd,) = vjp(lambda x_: (x - mean) / (x_.var(-1, keepdims=True, correction=0) + eps).sqrt(), [x], dxhat)
    return {"dxhat": dxhat, "dx_direct": direct, "dx_via_mean": via_mean, "dx_via_rstd": via_rstd}


def softmax_terms(arrays: list[np.ndarray], params: dict[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """dx split by the two ways x reaches y = e / s: through the numerator e with the sum s a
    constant, and through s with the numerator a constant."""
    (x,) = arrays
    m = x.max(-1, keepdims=True)  # (N, 1) a constant shift, as in forward: it cancels in e / s
    e = np.exp(x - m)  # (N, V)
    s = e.sum(-1, keepdims=True)  # (N, 1)
    (via_numerator,) = vjp(lambda x_: (x_ - m).exp() / s, [x], dout)
    (via_sum,) = vjp(lambda x_: e / (x_ - m).exp().sum(-1, keepdims=True), [x], dout)
    return {"dx_via_numerator": via_numerator, "dx_via_sum": via_sum}


def cross_entropy_terms(arrays: list[np.ndarray], params: dict[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """dlogits split by the two parts of the loss, mean(logsumexp(logits)) and mean(-logits[n, t_n]),
    each differentiated by itself."""
    (logits,) = arrays
    t = params["targets"]
    m = logits.max(1, keepdims=True)  # (N, 1) a constant shift: logsumexp(z) = log sum e^(z - m) + m

    def logsumexp_part(z: Tensor) -> Tensor:
        return ((z - m).exp().sum(1).log() + m[:, 0]).mean()

    def target_part(z: Tensor) -> Tensor:
        return -z[np.arange(len(t)), t].mean()

    (via_lse,) = vjp(logsumexp_part, [logits], dout)
    (via_target,) = vjp(target_part, [logits], dout)
    return {"dlogits_via_logsumexp": via_lse, "dlogits_via_target": via_target}


def gelu_terms(arrays: list[np.ndarray], params: dict[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """dx split by the two factors of y = (x/2) (1 + tanh u(x)), the other factor a constant."""
    (x,) = arrays
    c = math.sqrt(2 / math.pi)

    def one_plus_tanh(x_: Any) -> Any:
        return 1 + (c * (x_ + 0.044715 * x_**3)).tanh()

    b = one_plus_tanh(Tensor(x)).data  # (...) 1 + tanh u, as a constant
    (via_half_x,) = vjp(lambda x_: 0.5 * x_ * b, [x], dout)
    (via_tanh,) = vjp(lambda x_: 0.5 * x * one_plus_tanh(x_), [x], dout)
    return {"dx_via_half_x": via_half_x, "dx_via_tanh": via_tanh}


def attention_terms(arrays: list[np.ndarray], params: dict[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """dP and dS, the steps of the chain between dO and dQ, dK: the vector-Jacobian product of
    O = P @ v with respect to P, then of P = softmax(S) with respect to S (minigrad's Softmax)."""
    q, k, v = arrays
    scale = params["scale"]
    S = q @ k.swapaxes(-1, -2) * scale  # (B, H, Tq, Tk)
    if params["causal"]:  # query i sees keys j <= i + (Tk - Tq)
        tq, tk = S.shape[-2:]
        S = np.where(np.tri(tq, tk, k=tk - tq, dtype=bool), S, -np.inf)
    P = softmax(Tensor(S)).data  # (B, H, Tq, Tk)
    dP, _ = vjp(lambda P_, v_: P_ @ v_, [P, v], dout)
    (dS,) = vjp(softmax, [S], dP)
    return {"dP": dP, "dS": dS}
