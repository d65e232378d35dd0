"""scaled_dot_product_attention as one op with a hand-written backward.

    S = q @ k^T * scale       (B, H, Tq, Tk)   scores
    P = softmax(S)            (B, H, Tq, Tk)   masked where a query may not look (causal)
    Pd = P * dropmask         (B, H, Tq, Tk)   dropout on the attention weights (training only)
    O = Pd @ v                (B, H, Tq, D)

B batch, H heads, Tq queries, Tk keys, D head size. With a causal mask, query i sees
keys j <= i + (Tk - Tq), so a single new query (Tq = 1, as when sampling with a KV
cache) sees every cached key. Backward goes through the same lines in reverse and
never builds more than (B, H, Tq, Tk) arrays.

Read next: ../functional.py, then ../nn/.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.dropout import keep_mask
from minigrad.tensor import Tensor, check_same_device


_masks: dict[tuple[str, str], Any] = {}  # (array module, dtype) -> the largest square mask made so far


def causal_mask(xp: Any, tq: int, tk: int, dtype: Any) -> Any:
    """(Tq, Tk) additive mask: 0 where query i may see key j (j <= i + Tk - Tq), -inf elsewhere.

    It is the bottom-right (Tq, Tk) corner of one square (T, T) mask, kept per array module and
    dtype: a training run asks for it thousands of times."""
    key = (xp.__name__, str(dtype))
    full = _masks.get(key)
    if full is None or full.shape[0] < tk:
        allowed = xp.tri(tk, tk, dtype=bool)  # j <= i
        full = _masks[key] = xp.where(allowed, xp.zeros((), dtype=dtype), xp.full((), -xp.inf, dtype=dtype))
    return full[tk - tq : tk, :tk]


class ScaledDotProductAttention(Function):
    def forward(self, q: Any, k: Any, v: Any, causal: bool, scale: float, dropmask: Any) -> Any:
        xp = get_array_module(q)
        p = (q * scale) @ k.swapaxes(-1, -2)  # S (B, H, Tq, Tk), turned into P in place below
        if causal:
            p += causal_mask(xp, p.shape[-2], p.shape[-1], p.dtype)
        p -= p.max(axis=-1, keepdims=True)
        xp.exp(p, out=p)
        tk = p.shape[-1]
        row_sums = p.reshape(-1, tk) @ xp.ones(tk, dtype=p.dtype)  # (B*H*Tq,) a BLAS matrix-vector product
        p /= row_sums.reshape(p.shape[:-1] + (1,))  # P = softmax(S), rows sum to 1
        pd = p if dropmask is None else p * dropmask
        self.q, self.k, self.v, self.p, self.pd = q, k, v, p, pd
        self.scale, self.dropmask = scale, dropmask
        return pd @ v  # (B, H, Tq, D)

    # dV  = Pd^T @ dO                      (B,H,Tk,D) = (B,H,Tk,Tq) @ (B,H,Tq,D)
    # dPd = dO @ V^T                       (B,H,Tq,Tk) = (B,H,Tq,D) @ (B,H,D,Tk)
    # dP  = dPd * dropmask                 (dropout's backward)
    # dS  = P * (dP - rowsum(dP * P))      (softmax's backward, row by row; 0 where masked)
    # dQ  = dS @ K * scale                 (B,H,Tq,D) = (B,H,Tq,Tk) @ (B,H,Tk,D)
    # dK  = dS^T @ Q * scale               (B,H,Tk,D) = (B,H,Tk,Tq) @ (B,H,Tq,D)
    def backward(self, dout: Any) -> tuple[Any, Any, Any]:
        q, k, v, p = self.q, self.k, self.v, self.p
        dv = self.pd.swapaxes(-1, -2) @ dout if self.needs_grad[2] else None
        xp = get_array_module(dout)
        ds = dout @ v.swapaxes(-1, -2)  # dP, turned into dS in place
        if self.dropmask is not None:
            ds *= self.dropmask
        ds -= xp.einsum("...j,...j->...", ds, p)[..., None]  # rowsum(dP * P) without a temporary
        ds *= p
        dq = (ds @ k) * self.scale if self.needs_grad[0] else None
        dk = (ds.swapaxes(-1, -2) @ q) * self.scale if self.needs_grad[1] else None
        return dq, dk, dv


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> Tensor:
    """softmax(q @ k^T * scale [+ causal mask]) @ v on (B, H, T, D), with dropout on the weights."""
    check_same_device("scaled_dot_product_attention", (q, k, v))
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"scaled_dot_product_attention: q, k, v must be (B, H, T, D), got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or k.shape[:-2] != q.shape[:-2] or v.shape[:-2] != q.shape[:-2]:
        raise ValueError(
            f"scaled_dot_product_attention: shapes do not fit: q {q.shape}, k {k.shape}, v {v.shape} "
            "(need q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv))"
        )
    if causal and q.shape[-2] > k.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: causal needs Tq <= Tk, got {q.shape[-2]} queries, {k.shape[-2]} keys")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"scaled_dot_product_attention: dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    shape = q.shape[:-1] + (k.shape[-2],)
    mask = keep_mask(shape, dropout_p, q.device, q.dtype) if dropout_p > 0 else None
    return ScaledDotProductAttention.apply(q, k, v, causal=causal, scale=scale, dropmask=mask)
