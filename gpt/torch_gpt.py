"""The same GPT in PyTorch, for parity tests and side-by-side benchmarks only (torch is an optional extra).

Architecture, parameter names, initialisation and optimizer groups match
gpt/model.py one to one, so `load_minigrad_weights` copies a minigrad model in
by name and both compute the same loss and gradients. Leaves out: sampling
and the KV cache, which only minigrad's model needs.

Read next: plot.py.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as TF

from gpt.model import GPT, GPTConfig, sinusoidal_positions


class TorchAttention(tnn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.dropout = c.n_head, c.n_kv_head or c.n_head, c.dropout
        kv_size = self.n_kv_head * (c.n_embd // c.n_head)
        self.c_attn = tnn.Linear(c.n_embd, c.n_embd + 2 * kv_size, bias=c.bias)
        self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.resid_dropout = tnn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, C // self.n_head
        q, k, v = self.c_attn(x).split([C, Hkv * D, Hkv * D], dim=2)
        q = q.reshape(B, T, H, D).transpose(1, 2)
        k, v = (t.reshape(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, dim=1) for t in (k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class TorchBlock(tnn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = TorchAttention(c)
        self.ln_2 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = tnn.ModuleDict(dict(c_fc=tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias),
                                       c_proj=tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)))
        self.mlp_dropout = tnn.Dropout(c.dropout)
        self.gelu = c.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        h = TF.gelu(self.mlp.c_fc(self.ln_2(x)), approximate=self.gelu)  # "tanh" or "none"
        return x + self.mlp_dropout(self.mlp.c_proj(h))


class TorchGPT(tnn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        if c.n_expert or c.attn_window is not None:  # a twin without them would compute another model, silently
            raise ValueError(f"TorchGPT: the PyTorch twin has no mixture of experts or sliding window "
                             f"(n_expert={c.n_expert}, attn_window={c.attn_window})")
        self.config = c
        parts = dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd),
            drop=tnn.Dropout(c.dropout),
            h=tnn.ModuleList(TorchBlock(c) for _ in range(c.n_layer)),
            ln_f=tnn.LayerNorm(c.n_embd, bias=c.bias),
        )
        if c.pos_encoding == "learned":
            parts["wpe"] = tnn.Embedding(c.block_size, c.n_embd)
        else:
            self.register_buffer("pos_table", torch.tensor(sinusoidal_positions(c.block_size, c.n_embd)), persistent=False)
        self.transformer = tnn.ModuleDict(parts)
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                tnn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))
            elif name.endswith(".bias"):
                tnn.init.zeros_(p)
            elif p.dim() >= 2:
                tnn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = idx.shape[1]
        if "wpe" in self.transformer:
            pos = self.transformer.wpe(torch.arange(T))
        else:  # the float64 table, in the model's dtype
            pos = self.pos_table[:T].to(self.lm_head.weight.dtype)
        x = self.transformer.drop(self.transformer.wte(idx) + pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, TF.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    def configure_optimizer(self, weight_decay: float, lr: float, betas: tuple[float, float]) -> torch.optim.AdamW:
        params = [p for p in self.parameters()]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)


def load_minigrad_weights(tmodel: TorchGPT, model: GPT) -> None:
    """Copy every parameter of a minigrad GPT into the torch model, by nanoGPT name."""
    own = dict(tmodel.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for name, t in model.state_dict().items():
            own[name].copy_(torch.from_numpy(np.ascontiguousarray(t.numpy())))

