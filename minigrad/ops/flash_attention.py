"""flash_attention: the attention of attention.py computed in tiles, so that no (Tq, Tk) array is
ever kept (FlashAttention, Dao et al. 2022; its backward in FlashAttention-2's order, Dao 2023). The
simple twin is attention.py's scaled_dot_product_attention (and its _simple version): same masks,
same numbers (tests/test_flash_attention.py proves them equal in value and gradient).

Shapes, in the project's legend: B batch, H heads, Tq queries, Tk keys, D head size (Dv that of v);
a tile is `bq` rows of queries by `bk` keys, so each S, P, dP, dS below is (B, H, bq, bk).

Forward: online softmax. For one tile of queries, walk the tiles of keys keeping per row the
running max m, the running sum l of exp(S - m) and the unnormalised output acc. A new tile may
raise the max from m to m' = max(m, rowmax(S)); everything summed so far was exp(S_old - m), and
exp(S_old - m') = exp(S_old - m) * exp(m - m'), so one factor alpha = exp(m - m') rescales it:

    l'   = alpha * l   + rowsum(exp(S - m'))
    acc' = alpha * acc + exp(S - m') @ v_tile
    after the last tile:  O = acc / l   and   L = m + log(l)   (the row's log-sum-exp)

Forward keeps q, k, v, O and L (B, H, Tq, 1), and a mask if given: O(T), where attention.py keeps P.

Backward recomputes each tile's P from L in one step, P = exp(S - L), and runs attention's
backward tile by tile (see the derivation above FlashAttention.backward). Softmax's backward needs
rowsum(dP * P) over all keys of a row, which no single tile has; it equals rowsum(dO * O):

    rowsum_j(dP * P) = sum_j P_ij sum_d dO_id v_jd = sum_d dO_id sum_j P_ij v_jd = sum_d dO_id O_id

so D = rowsum(dO * O) (B, H, Tq, 1) is computed once, before the tiles.

Masks: as attention.py (causal with the triangle bottom-right for Tq < Tk, boolean True = may
attend, float added to S with a gradient, a query that sees no key gives 0 and gradient 0). And a
sliding window (Longformer's local attention, causal): query i, at position p = i + Tk - Tq, sees
key j when p - window < j <= p, or when j < global_tokens (keys every query sees, as Longformer's
global tokens; in a causal band a global token already sees every key before it). Tiles that no
query may look into are skipped, so with a window the work and the memory grow as T * window, not
T^2. Dropout is refused: an exact one must regenerate the same mask tile by tile in backward
(FlashAttention uses a counter-based generator, Philox), which minigrad's generators are not.

Plain mode (speed.py) takes the simple twin with the same mask: no tiles to step through.

Read next: experts.py (a mixture of experts' dispatch and combine), quant.py (quantized weights), then ../functional.py.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module, get_backend
from minigrad.ops.attention import _check, scaled_dot_product_attention_simple
from minigrad.ops.elementwise import unbroadcast
from minigrad.speed import is_plain
from minigrad.tensor import Tensor

# Tile sizes (rows of queries, keys). Larger tiles pay NumPy's per-call overhead less often and
# give BLAS larger products; smaller ones skip more of the causal triangle and keep the (B, H, bq,
# bk) temporaries in cache. Of 64, 128 and 256 each way, forward + backward at T = 2048 (B 1, H 6,
# D 64, causal, float32, one thread; `python tools/attention_bench.py --tiles`, load average 10
# on 2 cores): 128 x 128 0.74 s, 128 x 256 0.74 s, the other seven 0.96 to 1.11 s.
BLOCK_Q, BLOCK_K = 128, 128


def sliding_window_mask(tq: int, tk: int, window: int, global_tokens: int = 0, device: str = "cpu") -> Tensor:
    """The window as a boolean (Tq, Tk) mask, True where query i may see key j (see the top of this
    file): for attention.py's ops, which then compute every tile and keep (Tq, Tk) arrays."""
    _check_window(window, global_tokens, True, None)
    xp = get_backend(device).xp
    p = xp.arange(tq)[:, None] + (tk - tq)  # (Tq, 1) each query's position
    j = xp.arange(tk)[None, :]  # (1, Tk)
    return Tensor._make((j <= p) & ((p - j < window) | (j < global_tokens)), False)  # (Tq, Tk)


def tile_plan(tq: int, tk: int, bq: int, bk: int, causal: bool, window: int | None = None,
              global_tokens: int = 0) -> list[tuple[int, int, list[tuple[int, int, bool]]]]:
    """Which tiles to visit: per tile of queries (r0, r1, [(c0, c1, masked), ...]), the tiles of
    keys c0:c1 that some query r0:r1 may see, `masked` when some of the pairs may not (the tile
    then needs band_mask). Without causal or window every tile is visited, unmasked."""
    off = tk - tq  # query i is at position p = i + off
    w = tk + 1 if window is None else window  # no window: a band wider than any sequence
    g = global_tokens if window is not None else 0
    plan = []
    for r0 in range(0, tq, bq):
        r1 = min(r0 + bq, tq)
        p0, p1 = r0 + off, r1 - 1 + off  # first and last position of the rows
        tiles = []
        for c0 in range(0, tk, bk):
            c1 = min(c0 + bk, tk)
            if not causal:
                tiles.append((c0, c1, False))
                continue
            # p - j over the tile takes every value from p0 - (c1 - 1) to p1 - c0; the band is 0 .. w - 1
            band_some, band_all = p0 - (c1 - 1) <= w - 1 and p1 - c0 >= 0, p0 - (c1 - 1) >= 0 and p1 - c0 <= w - 1
            glob_some, glob_all = c0 < g and c0 <= p1, c1 <= g and c1 - 1 <= p0  # keys j < g with j <= p
            if band_some or glob_some:
                tiles.append((c0, c1, not (band_all or glob_all)))
        plan.append((r0, r1, tiles))
    return plan


def band_mask(xp: Any, r0: int, r1: int, c0: int, c1: int, off: int, window: int | None, global_tokens: int,
              dtype: Any) -> Array:
    """(r1 - r0, c1 - c0) additive mask of one tile: 0 where query i sees key j, -inf elsewhere."""
    p = xp.arange(r0, r1)[:, None] + off  # (bq, 1) positions of the queries
    j = xp.arange(c0, c1)[None, :]  # (1, bk)
    allowed = j <= p
    if window is not None:
        allowed &= (p - j < window) | (j < global_tokens)
    return xp.where(allowed, xp.zeros((), dtype=dtype), xp.full((), -xp.inf, dtype=dtype))  # (bq, bk)


class FlashAttention(Function):
    """Inputs q, k, v and, if there is one, the additive mask M (a float mask, or 0/-inf made from a
    boolean one). Keeps q, k, v, M, O and L; every S and P is recomputed in backward."""

    def forward(self, q: Array, k: Array, v: Array, *mask: Array, causal: bool, window: int | None,
                global_tokens: int, scale: float, block_q: int, block_k: int) -> Array:
        xp = get_array_module(q)
        tq, tk = q.shape[-2], k.shape[-2]
        M = xp.broadcast_to(mask[0], q.shape[:-1] + k.shape[-2:-1]) if mask else None  # (B, H, Tq, Tk), a view
        self.mask_shape = mask[0].shape if mask else None
        self.plan = tile_plan(tq, tk, block_q, block_k, causal, window, global_tokens)
        self.band = (tk - tq, window, global_tokens)
        qs = q * scale  # (B, H, Tq, D): the scale on q, not on every S
        kt = xp.ascontiguousarray(k.swapaxes(-1, -2))  # K^T (B, H, D, Tk)
        O = xp.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # (B, H, Tq, Dv)
        L = xp.full(q.shape[:-1] + (1,), xp.inf, dtype=q.dtype)  # (B, H, Tq, 1); +inf: a row that sees no key
        for r0, r1, tiles in self.plan:
            m = xp.full(q.shape[:-2] + (r1 - r0, 1), -xp.inf, dtype=q.dtype)  # running max (B, H, bq, 1)
            l = xp.zeros_like(m)  # running sum of exp(S - m)  (B, H, bq, 1)
            acc = xp.zeros(q.shape[:-2] + (r1 - r0, v.shape[-1]), dtype=q.dtype)  # running P @ v (B, H, bq, Dv)
            for c0, c1, masked in tiles:
                S = self.scores(xp, qs, kt, M, r0, r1, c0, c1, masked)  # (B, H, bq, bk)
                m_new = xp.maximum(m, S.max(axis=-1, keepdims=True))  # m' = max(m, rowmax(S))
                shift = m_new  # an unmasked tile has a finite max in every row
                if masked or M is not None:  # a row masked everywhere so far has max -inf: shift by 0, not NaN
                    shift = xp.where(xp.isneginf(m_new), xp.zeros((), dtype=q.dtype), m_new)
                S -= shift
                P = xp.exp(S, out=S)  # exp(S - m')  (B, H, bq, bk), unnormalised, in S's memory
                alpha = xp.exp(m - shift)  # exp(m - m'): rescales what was summed so far (B, H, bq, 1)
                l = alpha * l + P.sum(axis=-1, keepdims=True)  # l' = alpha l + rowsum(P)
                acc = alpha * acc + P @ v[..., c0:c1, :]  # acc' = alpha acc + P v_tile  (B, H, bq, Dv)
                m = m_new
            seen = l > 0  # (B, H, bq, 1): False where a query sees no key (acc is 0 there)
            l = xp.where(seen, l, xp.ones((), dtype=q.dtype))  # 1 there: 0 / 1 = 0, and log(1) = 0
            O[..., r0:r1, :] = acc / l  # O = acc / l
            # L = m + log(l); +inf where nothing is seen, so that backward's exp(S - L) is 0 there
            L[..., r0:r1, :] = xp.where(seen, m + xp.log(l), xp.full((), xp.inf, dtype=q.dtype))
        self.q, self.k, self.v, self.M, self.O, self.L, self.scale = q, k, v, M, O, L, scale
        return O

    def scores(self, xp: Any, qs: Array, kt: Array, M: Array | None, r0: int, r1: int, c0: int, c1: int,
               masked: bool) -> Array:
        """S = (q * scale) @ k^T + masks, for queries r0:r1 and keys c0:c1  (B, H, bq, bk)."""
        S = qs[..., r0:r1, :] @ kt[..., c0:c1]  # (B, H, bq, bk)
        if masked:  # the causal triangle or the window's band cuts through this tile
            S += band_mask(xp, r0, r1, c0, c1, *self.band, S.dtype)
        if M is not None:
            S += M[..., r0:r1, c0:c1]
        return S

    # Derivation, per tile (queries r, keys c), each forward line undone in reverse order; dX is
    # d(loss)/dX with X's shape. Forward, as if in one piece:  S = s q k^T + M,  P = exp(S - L),
    # O = P v  (P = softmax(S) since L is the row's log-sum-exp).
    #   O[r] = sum_c P[r, c] v[c]      =>  dv[c] += P^T dO[r]            (B, H, bk, Dv)
    #                                      dP = dO[r] v[c]^T             (B, H, bq, bk)
    #   P = softmax(S), row by row     =>  dS = P * (dP - rowsum(dP * P)) = P * (dP - D[r]),
    #                                      D = rowsum(dO * O) (the top of this file): one per row, no tile needs all keys
    #   S = ... + M                    =>  dM[r, c] = dS                 (summed to M's own shape at the end)
    #   S = s q[r] k[c]^T              =>  dq[r] += s dS k[c]            (B, H, bq, D)
    #                                      dk[c] += s dS^T q[r]          (B, H, bk, D)
    # FlashAttention-2's order: the outer loop over tiles of keys, so dk[c] and dv[c] are summed in
    # one place (a GPU block's registers) and only dq is added to from every tile of keys.
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        xp = get_array_module(dout)
        q, k, v, M, L, scale = self.q, self.k, self.v, self.M, self.L, self.scale
        dO = xp.ascontiguousarray(dout)  # (B, H, Tq, Dv)
        D = (dO * self.O).sum(axis=-1, keepdims=True)  # rowsum(dO * O)  (B, H, Tq, 1)
        qs, kt, vt = q * scale, xp.ascontiguousarray(k.swapaxes(-1, -2)), xp.ascontiguousarray(v.swapaxes(-1, -2))
        dq, dk, dv = xp.zeros(q.shape, dtype=q.dtype), xp.zeros(k.shape, dtype=q.dtype), xp.zeros(v.shape, dtype=q.dtype)
        need_dM = self.mask_shape is not None and self.needs_grad[3]
        dM = xp.zeros(M.shape, dtype=q.dtype) if need_dM else None  # (B, H, Tq, Tk): asked for, so O(T^2)
        by_key: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}  # the plan, turned inside out
        for r0, r1, tiles in self.plan:
            for c0, c1, masked in tiles:
                by_key.setdefault((c0, c1), []).append((r0, r1, masked))
        for (c0, c1), rows in by_key.items():
            for r0, r1, masked in rows:
                S = self.scores(xp, qs, kt, M, r0, r1, c0, c1, masked)  # recomputed (B, H, bq, bk)
                S -= L[..., r0:r1, :]
                P = xp.exp(S, out=S)  # P = softmax(S) = exp(S - L), from the saved log-sum-exp
                dOr = dO[..., r0:r1, :]  # (B, H, bq, Dv)
                dv[..., c0:c1, :] += P.swapaxes(-1, -2) @ dOr  # dv[c] += P^T dO[r]
                dP = dOr @ vt[..., c0:c1]  # dP = dO[r] v[c]^T  (B, H, bq, bk)
                dS = dP  # the same memory from here on
                dS -= D[..., r0:r1, :]
                dS *= P  # dS = P * (dP - D)
                if need_dM:
                    dM[..., r0:r1, c0:c1] = dS
                dq[..., r0:r1, :] += dS @ k[..., c0:c1, :]  # dq[r] += dS k[c]  (times s below)
                dk[..., c0:c1, :] += dS.swapaxes(-1, -2) @ q[..., r0:r1, :]  # dk[c] += dS^T q[r]  (times s below)
        dq *= scale
        dk *= scale
        grads = [dq, dk, dv] + ([unbroadcast(dM, self.mask_shape) if need_dM else None] if self.mask_shape else [])
        return tuple(g if need else None for g, need in zip(grads, self.needs_grad))


def flash_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    window: int | None = None,
    global_tokens: int = 0,
    block_q: int = BLOCK_Q,
    block_k: int = BLOCK_K,
) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v on (B, H, T, D), as F.scaled_dot_product_attention (the
    same arguments and masks), in tiles of block_q queries by block_k keys. `window` (with
    is_causal=True) lets query i see only the `window` latest keys up to its own position, and the
    first `global_tokens` keys; tiles outside that band are skipped."""
    q, k, v = query, key, value
    name = "flash_attention"
    for arg, n in (("block_q", block_q), ("block_k", block_k)):
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"{name}: {arg} must be a positive integer (a tile's size), got {n!r}")
    if window is not None or global_tokens:
        _check_window(window, global_tokens, is_causal, attn_mask)
    _check(q, k, v, attn_mask, dropout_p, is_causal)
    if dropout_p > 0:
        raise ValueError(f"{name}: dropout_p={dropout_p}: no exact dropout here (the same mask would have to be "
                         "regenerated tile by tile in backward, or stored at O(Tq Tk) memory); use "
                         "F.scaled_dot_product_attention for dropout on the weights")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    tq, tk = q.shape[-2], k.shape[-2]
    if is_plain():  # the simple twin, with the window as a mask
        if window is None:
            return scaled_dot_product_attention_simple(q, k, v, attn_mask, is_causal=is_causal, scale=scale)
        band = sliding_window_mask(tq, tk, window, global_tokens, q.device)
        return scaled_dot_product_attention_simple(q, k, v, band, scale=scale)
    masks: list[Tensor] = []
    if attn_mask is not None and attn_mask.dtype == bool:  # True = may attend -> 0, False -> -inf
        xp = get_array_module(attn_mask.data)
        zero, minus_inf = xp.zeros((), dtype=q.dtype), xp.full((), -xp.inf, dtype=q.dtype)
        masks.append(Tensor._make(xp.where(attn_mask.data, zero, minus_inf), False))
    elif attn_mask is not None:
        masks.append(attn_mask)
    return FlashAttention.apply(q, k, v, *masks, causal=is_causal, window=window, global_tokens=global_tokens,
                                scale=scale, block_q=block_q, block_k=block_k)


def _check_window(window: Any, global_tokens: Any, is_causal: bool, attn_mask: Any) -> None:
    """The window's errors, each naming what was wrong."""
    name = "flash_attention"
    if window is None:
        raise ValueError(f"{name}: global_tokens={global_tokens!r} needs a window (without one every key is seen)")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise ValueError(f"{name}: window must be a positive integer (keys each query sees), got {window!r}")
    if not isinstance(global_tokens, int) or isinstance(global_tokens, bool) or global_tokens < 0:
        raise ValueError(f"{name}: global_tokens must be an integer >= 0, got {global_tokens!r}")
    if attn_mask is not None or not is_causal:
        raise ValueError(f"{name}: window={window} is a causal band (p - window < j <= p): it needs is_causal=True "
                         "and no attn_mask; for another mask, combine it with sliding_window_mask(...) and pass "
                         "that as attn_mask (every tile is then computed)")
