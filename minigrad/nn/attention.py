"""MultiheadAttention as torch.nn.MultiheadAttention: the same arguments, masks and state dict.

Shapes: this file keeps PyTorch's letters, since its API is PyTorch's sequence-first layout. In the
project's legend (docs/glossary.md): L = Tq target (query) length, S = Tk source (key) length,
N = B batch, E = C embed_dim, H num_heads, hd = D head size (E / H). Inputs are (L, N, E) by
default, that is (Tq, B, C); (N, L, E) = (B, Tq, C) with batch_first=True; (L, E) unbatched.

    q, k, v = query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v    W_q, W_k, W_v: in_proj_weight's thirds
    each split into H heads of hd channels                             (N, H, L or S, hd)
    o = scaled_dot_product_attention(q, k, v, mask)                    (N, H, L, hd)
    out = concat(heads of o) out_proj.weight^T + out_proj.bias         (L, N, E)

Masks follow PyTorch's nn convention, the opposite of F.scaled_dot_product_attention's:
a boolean mask is True where attention is NOT allowed; a float mask is added to the scores.
attn_mask is (L, S) or (N * H, L, S); key_padding_mask (N, S) hides padding keys per batch
row. Both become one additive mask (N, H or 1, L, S) for the one attention op.
A query that may see no key gets output 0. So does PyTorch's when it skips the weights
(need_weights=False: F.scaled_dot_product_attention gives 0 there, torch 2.13), while with
need_weights=True, its default, PyTorch's output is NaN there.

Leaves out: kdim/vdim != embed_dim (separate q/k/v_proj_weight), add_bias_kv, add_zero_attn.

Read next: transformer.py.
"""
from __future__ import annotations

import math
from typing import Any

from minigrad import functional as F
from minigrad.backend import generator, get_array_module, get_backend, get_default_device, get_default_dtype
from minigrad.nn.layers import Linear
from minigrad.nn.module import Module, Parameter
from minigrad.ops.attention import attention_weights_simple
from minigrad.tensor import Tensor


def xavier_uniform(*shape: int) -> Parameter:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): torch.nn.init.xavier_uniform_ for a (fan_out, fan_in) matrix."""
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    u = generator(get_default_device()).random(shape, dtype=get_default_dtype())
    return Parameter((2 * u - 1) * bound)


def additive_mask(mask: Any, dtype: Any, op: str, name: str) -> Tensor | None:
    """PyTorch's nn masks as one additive float mask: bool True (not allowed) -> -inf, False -> 0; floats as given."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(mask).__name__}")
    if mask.dtype == bool:
        xp = get_array_module(mask.data)
        minus_inf, zero = xp.full((), -xp.inf, dtype=dtype), xp.zeros((), dtype=dtype)
        return Tensor._make(xp.where(mask.data, minus_inf, zero), False)
    if mask.dtype != dtype:
        raise TypeError(f"{op}: {name} must be bool or {dtype} (the inputs' dtype), got {mask.dtype}")
    return mask


class MultiheadAttention(Module):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        for name, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, int) or n <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive integer, got {n!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if kdim not in (None, embed_dim) or vdim not in (None, embed_dim) or add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: kdim/vdim other than embed_dim, add_bias_kv and add_zero_attn")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = xavier_uniform(3 * embed_dim, embed_dim)  # (3E, E): W_q, W_k, W_v stacked
        zeros = get_backend(get_default_device()).xp.zeros
        self.in_proj_bias = Parameter(zeros(3 * embed_dim, dtype=get_default_dtype())) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0.0

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(attn_output shaped like query, attn_weights (N, L, S), or (N, H, L, S) with
        average_attn_weights=False, or None with need_weights=False)."""
        E, H, hd = self.embed_dim, self.num_heads, self.head_dim
        self_attention, key_is_value = query is key and key is value, key is value
        unbatched = self._check_inputs(query, key, value)
        if unbatched:  # (L, E) -> (1, L, E)
            query, key, value = query[None], key[None], value[None]
            key_padding_mask = key_padding_mask[None] if key_padding_mask is not None else None
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        mask = self._merge_masks(attn_mask, key_padding_mask, query.dtype, N, L, S, unbatched)
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "MultiheadAttention: is_causal=True is a hint that attn_mask is the causal mask, and needs attn_mask "
                "(as PyTorch); make it with Transformer.generate_square_subsequent_mask(L)"
            )
        # PyTorch trusts the hint where it can: no padding mask and no weights to return. Then the
        # causal mask is the only mask: is_causal, not the mask, goes to scaled_dot_product_attention,
        # whose blocks of queries then skip the keys they may not see (ops/attention.py).
        causal_only = is_causal and key_padding_mask is None and not need_weights and L == S

        # in-projection: one product for self-attention, else W_q, W_k, W_v on their own inputs
        W, b = self.in_proj_weight, self.in_proj_bias
        if self_attention:
            qkv = F.linear(query, W, b).reshape(N, L, 3, H, hd).permute(2, 0, 3, 1, 4)  # (3, N, H, L, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            bq, bkv = (b[:E], b[E:]) if b is not None else (None, None)
            q = F.linear(query, W[:E], bq).reshape(N, L, H, hd).transpose(1, 2)  # (N, H, L, hd)
            if key_is_value:
                kv = F.linear(key, W[E:], bkv).reshape(N, S, 2, H, hd).permute(2, 0, 3, 1, 4)  # (2, N, H, S, hd)
                k, v = kv[0], kv[1]
            else:
                bk, bv = (b[E : 2 * E], b[2 * E :]) if b is not None else (None, None)
                k = F.linear(key, W[E : 2 * E], bk).reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)
                v = F.linear(value, W[2 * E :], bv).reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)

        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the weights as a tensor of their own (PyTorch takes this path too)
            weights = F.dropout(attention_weights_simple(q, k, mask), p)  # (N, H, L, S)
            o = weights @ v  # (N, H, L, hd)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=None if causal_only else mask, dropout_p=p,
                                               is_causal=causal_only)  # (N, H, L, hd)
        out = self.out_proj(o.transpose(1, 2).reshape(N, L, E))  # (N, L, E)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)  # (N, L, S)
        if unbatched:
            return out[0], weights[0] if weights is not None else None
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Shapes PyTorch accepts; True if unbatched (L, E)."""
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for name, x in (("query", query), ("key", key), ("value", value)):
            if not isinstance(x, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got {type(x).__name__}")
            if x.ndim not in (2, 3) or x.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"MultiheadAttention: {name} has shape {x.shape}, expected {layout} or unbatched (L, E) "
                    f"with E = embed_dim = {self.embed_dim}"
                )
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query {query.shape}, key {key.shape}, value {value.shape} "
                             "must all be batched or all unbatched")
        if key.shape != value.shape:
            raise ValueError(f"MultiheadAttention: key {key.shape} and value {value.shape} must have the same shape")
        n = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[n] != key.shape[n]:
            raise ValueError(
                f"MultiheadAttention: query {query.shape} and key {key.shape} differ in the batch axis ({n}) of "
                f"{layout} (batch_first={self.batch_first}); are the inputs laid out {layout}?"
            )
        return query.ndim == 2

    def _merge_masks(self, attn_mask: Any, key_padding_mask: Any, dtype: Any, N: int, L: int, S: int,
                     unbatched: bool) -> Tensor | None:
        """attn_mask (L, S) or (N * H, L, S) and key_padding_mask (N, S) as one additive mask (N, H or 1, L, S)."""
        op, H = "MultiheadAttention", self.num_heads
        am = additive_mask(attn_mask, dtype, op, "attn_mask")
        kpm = additive_mask(key_padding_mask, dtype, op, "key_padding_mask")
        if am is not None:
            if am.shape == (L, S):
                am = am.reshape(1, 1, L, S)
            elif am.shape == (N * H, L, S):
                am = am.reshape(N, H, L, S)
            else:
                raise ValueError(
                    f"MultiheadAttention: attn_mask has shape {attn_mask.shape}, expected (L, S) = {(L, S)} "
                    f"or (N * num_heads, L, S) = {(N * H, L, S)}"
                )
        if kpm is not None:
            expected = (S,) if unbatched else (N, S)
            if key_padding_mask.shape != (N, S):
                hint = ""
                if not unbatched and key_padding_mask.shape == (S, N):
                    layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
                    hint = f"; with batch_first={self.batch_first} the inputs are {layout}: is the batch on the other axis?"
                shape = key_padding_mask.shape[1:] if unbatched else key_padding_mask.shape
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask has shape {shape}, expected (N, S) = {expected} "
                    f"(batch, key length){hint}"
                )
            kpm = kpm.reshape(N, 1, 1, S)
        if am is None or kpm is None:
            return am if kpm is None else kpm
        return am + kpm  # (N, H or 1, L, S)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, batch_first={self.batch_first}"
