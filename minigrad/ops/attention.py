"""scaled_dot_product_attention with the arguments and masks of PyTorch's, and one difference:
is_causal with fewer queries than keys (Tq < Tk) puts the causal triangle bottom-right here (query i
sees keys j <= i + Tk - Tq) and top-left in PyTorch (j <= i). A query whose keys are all masked
gets output 0 and gradient 0, as in torch 2.13's F.scaled_dot_product_attention (its
nn.MultiheadAttention with need_weights=True gives NaN there instead).

A simple version composed of primitives comes first (read it first), then the same thing as one op
with a hand-written backward:

    S = q @ k^T * scale + M   (B, H, Tq, Tk)   scores; M is the mask (0 or -inf, or any float)
    P = softmax(S)            (B, H, Tq, Tk)   attention weights, each row sums to 1
    Pd = P * dropmask         (B, H, Tq, Tk)   dropout on the weights (training only)
    O = Pd @ v                (B, H, Tq, Dv)

B batch, H heads, Tq queries, Tk keys, D head size (Dv that of v), as docs/glossary.md. Any
leading axes work in place of (B, H).

Masks: a boolean attn_mask is True where a query may look at a key (PyTorch's convention for this
function), a float attn_mask is added to S; either broadcasts to (B, H, Tq, Tk). is_causal lets
query i see keys j <= i + (Tk - Tq): for Tq = Tk, the lower triangle, as PyTorch; for Tq < Tk (a
KV cache: new queries after Tk - Tq cached keys) the triangle sits bottom-right, so a single new
query sees every cached key. For PyTorch's top-left triangle pass attn_mask=tril(ones(Tq, Tk))
instead. A query whose keys are all masked has no softmax: its output and gradient are 0 (a padding
query in a padded batch).

Causal attention never looks at the upper triangle of S, so the fused op takes the queries
in blocks of QUERY_BLOCK rows and each block multiplies only the keys it may see: for
T = 256 that is 9/16 of the work and memory of the full (T, T) square, and only the block
on the diagonal needs the mask. Backward goes through the same blocks.

Read next: flash_attention.py (the same attention in tiles, memory O(T)), experts.py (a mixture of
experts' dispatch and combine), quant.py (quantized weights), then ../functional.py and ../nn/module.py.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, device_of, get_array_module
from minigrad.ops.dropout import dropout, keep_mask
from minigrad.ops.elementwise import masked_fill, unbroadcast
from minigrad.ops.softmax import softmax
from minigrad.speed import is_plain
from minigrad.tensor import Tensor, check_same_device

# Rows per block, per device; devices not listed take all queries as one block. Blocks of r rows do
# (1 + r/T)/2 of the full square's work, so smaller blocks skip more of the masked triangle, but
# each block adds a few dozen array operations (forward and backward), each paying Python's and
# NumPy's call overhead, on smaller products that BLAS runs less well. 32 is the CPU's best trade
# (docs/results.md, speed). A GPU pays a kernel launch per operation, which costs more there than
# the wasted triangle's arithmetic: one block.
QUERY_BLOCK: dict[str, int] = {"cpu": 32}

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


# ---- the simple version: primitives only ------------------------------------------------------


def scaled_dot_product_attention_simple(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """The attention below, composed of matmul, masked_fill, softmax and dropout, whose backward
    passes the engine chains. It keeps every (B, H, Tq, Tk) intermediate; the fused op does not.
    Tests prove the two equal in value and gradient."""
    _check(query, key, value, attn_mask, dropout_p, is_causal)
    P = attention_weights_simple(query, key, attn_mask, is_causal, scale)  # (B, H, Tq, Tk)
    return dropout(P, dropout_p) @ value  # (B, H, Tq, Dv)


def attention_weights_simple(
    q: Tensor, k: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    """P = softmax(q @ k^T * scale + mask) (B, H, Tq, Tk), rows of queries that see no key 0.
    nn.MultiheadAttention uses it when it must return the weights (need_weights=True)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    xp = get_array_module(q.data)
    S = (q @ k.transpose(-2, -1)) * scale  # (B, H, Tq, Tk)
    tq, tk = S.shape[-2:]
    if is_causal:  # key j is hidden from query i when j > i + (Tk - Tq)
        S = masked_fill(S, ~xp.tri(tq, tk, k=tk - tq, dtype=bool), -math.inf)
    if attn_mask is not None and attn_mask.dtype == bool:
        S = masked_fill(S, ~attn_mask.data, -math.inf)  # True = may attend
    elif attn_mask is not None:
        S = S + attn_mask  # a float mask is added
    dead = xp.isneginf(S.data).all(axis=-1, keepdims=True)  # (B, H, Tq, 1): queries that see no key
    S = masked_fill(S, dead, 0.0)  # a finite row, so softmax (and its backward) stays finite there
    return masked_fill(softmax(S), dead, 0.0)  # (B, H, Tq, Tk), rows of dead queries 0


# ---- the fused op -----------------------------------------------------------------------------


def query_blocks(tq: int, tk: int, causal: bool, device: str) -> list[tuple[int, int, int]]:
    """(first query, end query, end key) per block: queries r0:r1 look at keys 0:end. One block of
    all queries without a causal mask, and in plain mode (speed.py)."""
    rows = QUERY_BLOCK.get(device, tq) if causal and not is_plain() else tq
    return [(r0, min(r0 + rows, tq), min(r0 + rows, tq) + tk - tq) for r0 in range(0, tq, max(rows, 1))]


class ScaledDotProductAttention(Function):
    """Inputs q, k, v and, if there is one, the additive mask M (a float mask, or 0/-inf made from
    a boolean one). Keeps P and Pd per block of queries; S and dS are never kept."""

    def forward(self, q: Array, k: Array, v: Array, *mask: Array, causal: bool, scale: float, dropmask: Array) -> Array:
        xp = get_array_module(q)
        self.q, self.k, self.v, self.scale, self.dropmask = q, k, v, scale, dropmask
        M = xp.broadcast_to(mask[0], q.shape[:-1] + k.shape[-2:-1]) if mask else None  # (B, H, Tq, Tk), a view
        self.mask_shape = mask[0].shape if mask else None
        # q, k, v usually arrive as strided views into one (B, T, 3C) array: one head's rows lie 3C
        # apart, so each of the many small products below would gather them from all over memory.
        # Compact copies let BLAS read them in order; they are made here and again in backward
        # rather than kept, which would cost memory (what they save: docs/results.md, speed).
        tq, tk = q.shape[-2], k.shape[-2]
        qs = xp.multiply(q, scale, out=xp.empty(q.shape, dtype=q.dtype))  # q * scale: (Tq, D) not (Tq, Tk)
        kt = xp.ascontiguousarray(k.swapaxes(-1, -2))  # K^T (B, H, D, Tk): faster in BLAS than a transposed view
        v = xp.ascontiguousarray(v)
        out = xp.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # O (B, H, Tq, Dv)
        self.blocks = query_blocks(tq, tk, causal, device_of(q))
        self.P, self.Pd = [], []  # per block of rows r0:r1 and keys 0:end: (B, H, r1 - r0, end)
        for r0, r1, end in self.blocks:
            S = qs[..., r0:r1, :] @ kt[..., :end]  # S = q k^T * scale
            if causal:  # keys before the diagonal block are all visible
                S[..., end - (r1 - r0) :] += causal_mask(xp, r1 - r0, r1 - r0, S.dtype)
            if M is not None:
                S += M[..., r0:r1, :end]  # S += M
            Smax = S.max(axis=-1, keepdims=True)  # softmax is unchanged by a shift, and exp cannot overflow
            if M is not None:  # a row masked everywhere has max -inf: shift by 0, so exp gives 0, not NaN
                xp.copyto(Smax, 0.0, where=xp.isneginf(Smax))  # (a boolean-mask assignment would wait for a GPU)
            S -= Smax
            P = xp.exp(S, out=S)  # the same memory from here on
            rowsum = xp.einsum("...j->...", P)[..., None]  # (B, H, rows, 1)
            if M is not None:  # rows masked everywhere sum to 0: leave them 0
                xp.copyto(rowsum, 1.0, where=rowsum == 0)
            P /= rowsum  # P = softmax(S)
            Pd = P if dropmask is None else P * dropmask[..., r0:r1, :end]  # Pd = P * dropmask
            out[..., r0:r1, :] = Pd @ v[..., :end, :]  # O = Pd @ v
            self.P.append(P)
            self.Pd.append(Pd)
        return out

    # Derivation, per block of queries r = r0:r1 and the keys e = 0:end they see: each forward
    # line, undone in reverse order; dX is d(loss)/dX, with X's shape.
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        xp = get_array_module(dout)
        q, k = xp.ascontiguousarray(self.q), xp.ascontiguousarray(self.k)
        dO = xp.ascontiguousarray(dout)  # usually a transposed view too
        vt = xp.ascontiguousarray(self.v.swapaxes(-1, -2))  # V^T (B, H, Dv, Tk)
        dq = xp.empty(q.shape, dtype=q.dtype)
        dk, dv = xp.zeros(k.shape, dtype=k.dtype), xp.zeros(self.v.shape, dtype=k.dtype)
        need_dM = self.mask_shape is not None and self.needs_grad[3]
        dM = xp.empty(q.shape[:-1] + k.shape[-2:-1], dtype=q.dtype) if need_dM else None  # (B, H, Tq, Tk)
        for (r0, r1, end), P, Pd in zip(self.blocks, self.P, self.Pd):
            dOr = dO[..., r0:r1, :]  # (B, H, rows, Dv)
            # in the forward pass this was: O[r] = Pd @ v[e]
            dv[..., :end, :] += Pd.swapaxes(-1, -2) @ dOr  # dv[e] += Pd^T dO[r]   (B, H, end, Dv)
            dPd = dOr @ vt[..., :end]  # dPd = dO[r] v[e]^T   (B, H, rows, end)
            # in the forward pass this was: Pd = P * dropmask
            dP = dPd if self.dropmask is None else xp.multiply(dPd, self.dropmask[..., r0:r1, :end], out=dPd)
            # in the forward pass this was: P = softmax(S), row by row
            # dS = P * (dP - rowsum(dP * P)): 0 where P is 0 (masked keys, rows masked everywhere)
            dS = dP  # the same memory from here on
            dS -= xp.einsum("...j,...j->...", dP, P)[..., None]  # rowsum(dP * P) without a temporary
            dS *= P
            # in the forward pass this was: S += M (broadcast from M's own shape, summed back below)
            if need_dM:
                dM[..., r0:r1, :end] = dS
            # in the forward pass this was: S = (q[r] * scale) @ k[e]^T
            dq[..., r0:r1, :] = dS @ k[..., :end, :]  # dq[r] = dS k[e] * scale (scaled below)
            dk[..., :end, :] += dS.swapaxes(-1, -2) @ q[..., r0:r1, :]  # dk[e] += dS^T q[r] * scale
        dq *= self.scale
        dk *= self.scale
        grads = [dq, dk, dv] + ([unbroadcast(dM, self.mask_shape) if need_dM else None] if self.mask_shape else [])
        return tuple(g if need else None for g, need in zip(grads, self.needs_grad))


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v on (B, H, T, D), with dropout on the weights (see the top
    of this file for the masks). scale defaults to 1/sqrt(D)."""
    q, k, v = query, key, value
    _check(q, k, v, attn_mask, dropout_p, is_causal)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    masks: list[Tensor] = []
    if attn_mask is not None and attn_mask.dtype == bool:  # True = may attend -> 0, False -> -inf
        xp = get_array_module(attn_mask.data)
        zero, minus_inf = xp.zeros((), dtype=q.dtype), xp.full((), -xp.inf, dtype=q.dtype)
        masks.append(Tensor._make(xp.where(attn_mask.data, zero, minus_inf), False))
    elif attn_mask is not None:
        masks.append(attn_mask)
    shape = q.shape[:-1] + k.shape[-2:-1]  # (B, H, Tq, Tk)
    drop = keep_mask(shape, dropout_p, q.device, q.dtype) if dropout_p > 0 else None
    return ScaledDotProductAttention.apply(q, k, v, *masks, causal=is_causal, scale=scale, dropmask=drop)


def _check(q: Tensor, k: Tensor, v: Tensor, mask: Any, dropout_p: float, is_causal: bool) -> None:
    """Errors that name what was wrong, shared by both versions."""
    name = "scaled_dot_product_attention"
    if mask is not None and not isinstance(mask, Tensor):
        raise TypeError(f"{name}: attn_mask must be a Tensor on {q.device}, got {type(mask).__name__}")
    check_same_device(name, (q, k, v) if mask is None else (q, k, v, mask))
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"{name}: query, key, value must be (B, H, T, D), got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or k.shape[:-2] != q.shape[:-2] or v.shape[:-2] != q.shape[:-2]:
        raise ValueError(
            f"{name}: shapes do not fit: q {q.shape}, k {k.shape}, v {v.shape} "
            "(need q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv))"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"{name}: dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{name}: dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal and q.shape[-2] > k.shape[-2]:
        raise ValueError(f"{name}: is_causal needs Tq <= Tk, got {q.shape[-2]} queries, {k.shape[-2]} keys")
    if mask is None:
        return
    if is_causal:
        raise ValueError(f"{name}: pass attn_mask or is_causal=True, not both (as PyTorch)")
    expected = q.shape[:-1] + k.shape[-2:-1]
    fits = mask.ndim <= len(expected) and all(m in (1, e) for m, e in zip(mask.shape[::-1], expected[::-1]))
    if not fits:
        raise ValueError(f"{name}: attn_mask of shape {mask.shape} does not broadcast to (B, H, Tq, Tk) = {expected}")
    if mask.dtype != bool and mask.dtype != q.dtype:
        raise TypeError(f"{name}: attn_mask must be bool or {q.dtype} (the query's dtype), got {mask.dtype}")
