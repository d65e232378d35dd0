"""scaled_dot_product_attention as one op with a hand-written backward.

    S = q @ k^T * scale       (B, H, Tq, Tk)   scores
    P = softmax(S)            (B, H, Tq, Tk)   masked where a query may not look (causal)
    Pd = P * dropmask         (B, H, Tq, Tk)   dropout on the attention weights (training only)
    O = Pd @ v                (B, H, Tq, D)

B batch, H heads, Tq queries, Tk keys, D head size. With a causal mask, query i sees
keys j <= i + (Tk - Tq), so a single new query (Tq = 1, as when sampling with a KV
cache) sees every cached key.

Causal attention never looks at the upper triangle of S, so the queries are taken in
blocks of QUERY_BLOCK rows and each block multiplies only the keys it may see: for
T = 256 that is 9/16 of the work and memory of the full (T, T) square, and only the
block on the diagonal needs the mask. Backward goes through the same blocks in reverse.

Read next: ../functional.py, then ../nn/.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.ops.dropout import keep_mask
from minigrad.tensor import Tensor, check_same_device

QUERY_BLOCK = 32  # rows per block; measured on CPU, 32 beat 16, 64 and 128 for T = 64 and T = 256

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


def query_blocks(tq: int, tk: int, causal: bool) -> list[tuple[int, int, int]]:
    """(first query, end query, end key) per block: queries r0:r1 look at keys 0:end."""
    if not causal:
        return [(0, tq, tk)]
    return [(r0, min(r0 + QUERY_BLOCK, tq), min(r0 + QUERY_BLOCK, tq) + tk - tq) for r0 in range(0, tq, QUERY_BLOCK)]


class ScaledDotProductAttention(Function):
    def forward(self, q: Any, k: Any, v: Any, causal: bool, scale: float, dropmask: Any) -> Any:
        xp = get_array_module(q)
        self.q, self.k, self.v, self.scale, self.dropmask = q, k, v, scale, dropmask
        # q, k, v usually arrive as strided views into one (B, T, 3C) array. The many small
        # products below run faster on compact copies (measured: 15% of a T = 256 layer); they
        # are made here and again in backward rather than kept, which would cost memory.
        tq, tk = q.shape[-2], k.shape[-2]
        qs = xp.multiply(q, scale, out=xp.empty(q.shape, dtype=q.dtype))  # scale folded into q: (Tq, D) not (Tq, Tk)
        kt = xp.ascontiguousarray(k.swapaxes(-1, -2))  # K^T (B, H, D, Tk): faster in BLAS than a transposed view
        v = xp.ascontiguousarray(v)
        out = xp.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # O (B, H, Tq, D)
        self.blocks = query_blocks(tq, tk, causal)
        self.p, self.pd = [], []  # per block, P and Pd (B, H, r1 - r0, end)
        for r0, r1, end in self.blocks:
            p = qs[..., r0:r1, :] @ kt[..., :end]  # S, turned into P in place below
            if causal:  # keys before the diagonal block are all visible
                p[..., end - (r1 - r0) :] += causal_mask(xp, r1 - r0, r1 - r0, p.dtype)
            p -= p.max(axis=-1, keepdims=True)  # softmax is unchanged and exp cannot overflow
            xp.exp(p, out=p)
            p /= xp.einsum("...j->...", p)[..., None]  # P = softmax(S), rows sum to 1
            pd = p if dropmask is None else p * dropmask[..., r0:r1, :end]
            out[..., r0:r1, :] = pd @ v[..., :end, :]
            self.p.append(p)
            self.pd.append(pd)
        return out

    # Per block of queries r = r0:r1 and the keys e = 0:end they see:
    # dV[e] += Pd^T @ dO[r]                (B,H,end,D) = (B,H,end,rows) @ (B,H,rows,D)
    # dPd = dO[r] @ V[e]^T                 (B,H,rows,end) = (B,H,rows,D) @ (B,H,D,end)
    # dP  = dPd * dropmask                 (dropout's backward)
    # dS  = P * (dP - rowsum(dP * P))      (softmax's backward, row by row; 0 where masked)
    # dQ[r]  = dS @ K[e] * scale           (B,H,rows,D) = (B,H,rows,end) @ (B,H,end,D)
    # dK[e] += dS^T @ Q[r] * scale         (B,H,end,D) = (B,H,end,rows) @ (B,H,rows,D)
    def backward(self, dout: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(dout)
        q, k = xp.ascontiguousarray(self.q), xp.ascontiguousarray(self.k)
        dout = xp.ascontiguousarray(dout)  # usually a transposed view too
        vt = xp.ascontiguousarray(self.v.swapaxes(-1, -2))  # V^T (B, H, D, Tk)
        dq = xp.empty(q.shape, dtype=q.dtype)
        dk, dv = xp.zeros(k.shape, dtype=k.dtype), xp.zeros(self.v.shape, dtype=k.dtype)
        for (r0, r1, end), p, pd in zip(self.blocks, self.p, self.pd):
            d_o = dout[..., r0:r1, :]
            dv[..., :end, :] += pd.swapaxes(-1, -2) @ d_o
            ds = d_o @ vt[..., :end]  # dP, turned into dS in place
            if self.dropmask is not None:
                ds *= self.dropmask[..., r0:r1, :end]
            ds -= xp.einsum("...j,...j->...", ds, p)[..., None]  # rowsum(dP * P) without a temporary
            ds *= p
            dq[..., r0:r1, :] = ds @ k[..., :end, :]
            dk[..., :end, :] += ds.swapaxes(-1, -2) @ q[..., r0:r1, :]
        dq *= self.scale
        dk *= self.scale
        return tuple(g if need else None for g, need in zip((dq, dk, dv), self.needs_grad))


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
