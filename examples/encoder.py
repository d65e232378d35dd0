"""A transformer encoder (bidirectional self-attention, pre-LayerNorm) for the ViT and BERT examples.

Shape legend: B batch, T positions (patches or tokens), C channels (d_model), H heads, hs = C / H.

The GPT's block (gpt/model.py) with two differences: no causal mask (every position sees every
other), and an optional key padding mask (BERT's [PAD] positions are never looked at). Names follow
torch.nn.TransformerEncoderLayer(norm_first=True, batch_first=True): self_attn.in_proj,
self_attn.out_proj, linear1, linear2, norm1, norm2. Leaves out: cross-attention and the decoder
(the encoder-decoder example has them).

Read next: vit_digits.py, bert_shakespeare.py.
"""
from __future__ import annotations

import numpy as np

import minigrad
import minigrad.functional as F
from minigrad import nn
from minigrad.tensor import Tensor


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"SelfAttention: d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.n_head, self.dropout = n_head, dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model)  # q, k, v for all heads
        self.out_proj = nn.Linear(d_model, d_model)
        self.record_attention = False  # when True, keep the attention weights (B, H, T, T) for pictures
        self.attention: np.ndarray | None = None

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """key_padding_mask (B, T) bool, True where a position is padding (PyTorch's convention)."""
        B, T, C = x.shape
        H = self.n_head
        qkv = self.in_proj(x).reshape(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # (3, B, H, T, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, T, hs)
        mask = None
        if key_padding_mask is not None:  # attn_mask's convention is the other way: True = may attend
            mask = Tensor(~key_padding_mask.data.reshape(B, 1, 1, T), device=x.device)  # (B, 1, 1, T)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, hs)
        if self.record_attention:  # the fused op's weights, recomputed for pictures only
            with minigrad.no_grad():
                scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(C // H))  # (B, H, T, T)
                if mask is not None:
                    scores = F.masked_fill(scores, ~mask.data, -np.inf)
                self.attention = F.softmax(scores).numpy()
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class EncoderLayer(nn.Module):
    """x + attn(norm1(x)), then x + mlp(norm2(x)), as the GPT's Block but without the causal mask."""

    def __init__(self, d_model: int, n_head: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_head, dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = nn.GELU(approximate="tanh")
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x), key_padding_mask))  # (B, T, C)
        h = self.dropout(self.activation(self.linear1(self.norm2(x))))  # (B, T, 4C)
        return x + self.dropout2(self.linear2(h))  # (B, T, C)


class Encoder(nn.Module):
    """n_layer EncoderLayers and a final LayerNorm (pre-LN stacks need one at the end)."""

    def __init__(self, n_layer: int, d_model: int, n_head: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_head, dim_feedforward, dropout) for _ in range(n_layer))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)  # (B, T, C)
