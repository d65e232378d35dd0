"""The GPT-2 model on minigrad: embeddings, pre-LayerNorm transformer blocks, a tied LM head.

Shapes, in the project's legend (docs/glossary.md): B batch, T time (sequence length), C channels
(n_embd), H heads (n_head), Hkv key/value heads (n_kv_head, H by default), G = H / Hkv query heads
per key/value head, D head size (C = H D; nanoGPT's hs), V vocabulary size; with a KV cache the keys
number T_past + T.

Parameter names and layouts are nanoGPT's (`transformer.h.0.attn.c_attn.weight`
is (3C, C)), so a nanoGPT state dict maps one to one. GPT-2's own checkpoints
(Hugging Face layout, Conv1D weights transposed) load with gpt.hf.load_pretrained
(hf.py imports this file, never the other way round).

Read next: moe.py (the MLP as a mixture of experts), then tokenizer.py, data.py and train.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.moe import MoE, aux_loss
from minigrad import nn
from minigrad.ops.embedding import check_ids
from minigrad.tensor import Tensor


def setting(default: Any, help: str) -> Any:
    """A config field and what it means; `python -m gpt train --help` shows the meaning (gpt/cli.py)."""
    return field(default=default, metadata={"help": help})


@dataclass
class GPTConfig:
    vocab_size: int = setting(65, "number of distinct tokens (65 characters for tiny Shakespeare)")
    block_size: int = setting(64, "longest context the model sees: T <= block_size")
    n_layer: int = setting(4, "transformer blocks")
    n_head: int = setting(4, "attention heads per block; must divide n_embd")
    n_kv_head: int | None = setting(None, "key/value heads (None: n_head); 1 is multi-query, "
                                          "a divisor of n_head grouped-query")
    n_embd: int = setting(128, "C, the width of the residual stream")
    dropout: float = setting(0.0, "dropout on embeddings, attention weights and residual branches")
    bias: bool = setting(True, "biases in Linear and LayerNorm layers (GPT-2: True)")
    pos_encoding: str = setting("learned", '"learned" (GPT-2) or "sinusoidal" (the original transformer)')
    gelu: str = setting("tanh", "GELU's form: \"tanh\" (GPT-2's, faster here) or \"none\" (exact, nanoGPT's nn.GELU())")
    layer_norm_epsilon: float = setting(1e-5, "eps in every LayerNorm (GPT-2's config.json calls it so)")
    attn_window: int | None = setting(None, "sliding-window attention: each position sees only the attn_window "
                                            "latest positions, its own included (flash attention, tiles outside "
                                            "the band skipped); None: full causal attention")
    # a mixture of experts in place of each block's MLP (gpt/moe.py); n_expert 0 keeps the dense MLP
    n_expert: int = setting(0, "experts per MoE layer (0: the dense MLP, GPT-2's)")
    expert_top_k: int = setting(1, "experts per token: 1 (Switch) or 2 (GShard, Mixtral), at most n_expert")
    expert_hidden: int | None = setting(None, "each expert's hidden width (None: 4 n_embd, the dense MLP's)")
    capacity_factor: float = setting(1.25, "each expert takes at most ceil(capacity_factor * tokens * "
                                           "expert_top_k / n_expert) tokens per batch while training; more are dropped")
    router_aux_loss_coef: float = setting(0.01, "weight of the Switch load-balancing loss in the training loss")
    router_z_loss_coef: float = setting(0.0, "weight of the router z-loss, mean(logsumexp(logits)^2) (ST-MoE: 0.001)")

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {v!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_kv_head is not None and (not isinstance(self.n_kv_head, int) or self.n_kv_head <= 0
                                           or self.n_head % self.n_kv_head):
            raise ValueError(f"GPTConfig: n_kv_head ({self.n_kv_head!r}) must be a positive divisor of n_head "
                             f"({self.n_head}): each key/value head serves n_head / n_kv_head query heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.pos_encoding not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig: pos_encoding must be 'learned' or 'sinusoidal', got {self.pos_encoding!r}")
        if self.gelu not in ("tanh", "none"):
            raise ValueError(f"GPTConfig: gelu must be 'tanh' or 'none' (exact), got {self.gelu!r}")
        if self.attn_window is not None and (not isinstance(self.attn_window, int) or isinstance(self.attn_window, bool)
                                             or self.attn_window <= 0):
            raise ValueError(f"GPTConfig: attn_window must be a positive integer (positions each one sees) or None, "
                             f"got {self.attn_window!r}")
        self.check_experts()

    def check_experts(self) -> None:
        if not isinstance(self.n_expert, int) or self.n_expert < 0:
            raise ValueError(f"GPTConfig: n_expert must be a non-negative integer (0: dense MLP), got {self.n_expert!r}")
        if not self.n_expert:
            return
        if not isinstance(self.expert_top_k, int) or not 1 <= self.expert_top_k <= self.n_expert:
            raise ValueError(f"GPTConfig: expert_top_k ({self.expert_top_k!r}) must be between 1 and n_expert "
                             f"({self.n_expert})")
        if self.expert_hidden is not None and (not isinstance(self.expert_hidden, int) or self.expert_hidden <= 0):
            raise ValueError(f"GPTConfig: expert_hidden must be a positive integer or None, got {self.expert_hidden!r}")
        if not (self.capacity_factor > 0 and math.isfinite(self.capacity_factor)):
            raise ValueError(f"GPTConfig: capacity_factor must be a positive number, got {self.capacity_factor!r}")
        for name in ("router_aux_loss_coef", "router_z_loss_coef"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"GPTConfig: {name} must be >= 0, got {getattr(self, name)!r}")


def repeat_kv(x: Tensor, groups: int) -> Tensor:
    """(B, Hkv, T, D) -> (B, Hkv * groups, T, D): each key/value head repeated for the `groups`
    query heads that share it (query head h reads key/value head h // groups, as Llama's repeat_kv
    and torch's repeat_interleave). Broadcasting's backward sums over the copies, so a shared
    head's gradient is the sum of what its group's query heads send back."""
    if groups == 1:
        return x
    B, Hkv, T, D = x.shape
    x = F.broadcast_to(x.reshape(B, Hkv, 1, T, D), (B, Hkv, groups, T, D))  # a view, no copy yet
    return x.reshape(B, Hkv * groups, T, D)  # (B, H, T, D)


class CausalSelfAttention(nn.Module):
    """Causal self-attention with H query heads and Hkv key/value heads. Hkv = H is GPT-2's
    multi-head attention; Hkv < H (grouped-query, Hkv = 1 multi-query) keeps fewer keys and values,
    so c_attn has C + 2 Hkv D outputs and the KV cache shrinks by H / Hkv."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.window = config.attn_window
        self.n_kv_head = config.n_kv_head or config.n_head
        kv_size = self.n_kv_head * (config.n_embd // config.n_head)
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * kv_size, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: dict[str, Tensor] | None = None) -> Tensor:
        B, T, C = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, C // self.n_head
        # As nanoGPT writes it: split, then a view and a transpose per tensor. All of them are views
        # (no data moves), so one reshape and permute of c_attn's whole output would only save a few
        # cheap ops per layer (docs/results.md, speed), at the cost of a line a reader must unpick.
        q, k, v = self.c_attn(x).split([C, Hkv * D, Hkv * D], axis=2)  # (B, T, C), (B, T, Hkv D) x 2
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        if cache is not None:  # sampling: prepend the keys and values of earlier positions
            if "k" in cache:
                k = F.cat([cache["k"], k], axis=2)  # (B, Hkv, T_past + T, D)
                v = F.cat([cache["v"], v], axis=2)
            cache["k"], cache["v"] = k, v  # only Hkv heads: the cache is H / Hkv times smaller
        k, v = repeat_kv(k, H // Hkv), repeat_kv(v, H // Hkv)  # (B, H, T_past + T, D)
        p = self.dropout if self.training else 0.0
        if self.window is None:  # GPT-2's full causal attention
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, T, D)
        elif p == 0.0:  # the band in tiles, those outside it skipped (with a cache: the T new queries' rows)
            y = F.flash_attention(q, k, v, is_causal=True, window=self.window)  # (B, H, T, D)
        else:  # flash attention has no exact dropout: the band as a (T, T_past + T) mask
            band = F.sliding_window_mask(T, k.shape[2], self.window, device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=band, dropout_p=p)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, H, D) -> (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x)): pre-LayerNorm residual blocks, as GPT-2."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MoE(config) if config.n_expert else MLP(config)

    def forward(self, x: Tensor, cache: dict[str, Tensor] | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


def sinusoidal_positions(block_size: int, n_embd: int) -> np.ndarray:
    """The original transformer's fixed encoding: sin on even channels, cos on odd, wavelengths 2pi..10000*2pi."""
    pos = np.arange(block_size)[:, None]  # (T, 1)
    freq = np.exp(-math.log(10000.0) * np.arange(0, n_embd, 2) / n_embd)  # (C/2,)
    table = np.zeros((block_size, n_embd))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: n_embd // 2])
    return table


def _normal_(p: nn.Parameter, std: float) -> None:
    p.data[...] = minigrad.randn(*p.shape, device=p.device, dtype=p.dtype).data * std


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        parts: dict[str, nn.Module] = {"wte": nn.Embedding(config.vocab_size, config.n_embd)}
        if config.pos_encoding == "learned":
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        parts.update(
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
        )
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one (V, C) matrix in and out
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # each block adds two residual branches: keep their sum's scale
            if name.endswith("c_proj.weight"):
                _normal_(p, 0.02 / math.sqrt(2 * config.n_layer))
        if config.pos_encoding == "sinusoidal":
            table = sinusoidal_positions(config.block_size, config.n_embd)
            # fixed, not learned: a buffer, which .to() moves; left out of the state dict, as it is recomputed
            wte = self.transformer.wte.weight
            self.register_buffer("pos_table", Tensor(table, dtype=wte.dtype, device=wte.device), persistent=False)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation, as nanoGPT: Linear and Embedding weights N(0, 0.02), Linear
        biases 0 (LayerNorm keeps its own: weight 1, bias 0)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            _normal_(module.weight, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data[...] = 0.0

    def forward(
        self, idx: Any, targets: Any = None, cache: list[dict[str, Tensor]] | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits, loss). With targets (B, T): logits (B, T, V) and the mean
        cross-entropy (in training mode with experts, plus their router losses: gpt/moe.py). Without:
        logits for the last position only, (B, 1, V), and loss None.
        `cache` (one dict per layer) holds keys and values of earlier positions while sampling."""
        x = self.hidden_states(idx, cache)  # (B, T, C)
        B, T = x.shape[:2]
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, V): only the next token is needed
        t = targets if isinstance(targets, Tensor) else Tensor(targets, device=x.device)
        if t.shape != (B, T):
            raise ValueError(f"GPT: targets must have the shape of idx {(B, T)}, got {t.shape}")
        logits = self.lm_head(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(B * T, -1), t.reshape(B * T), ignore_index=-1)
        if self.config.n_expert and self.training:  # the routers' balance (and z) losses, weighted: gpt/moe.py
            loss = loss + aux_loss(self.transformer.h)
        return logits, loss

    def hidden_states(self, idx: Any, cache: list[dict[str, Tensor]] | None = None) -> Tensor:
        """idx (B, T) token ids -> the final LayerNorm's output (B, T, C): the transformer without its
        LM head. forward puts the head on top; a reward model or a value head (gpt/reward.py,
        gpt/ppo.py) puts its own."""
        if not isinstance(idx, Tensor):  # ids from the host: checked here, where that costs no wait for a GPU
            idx = Tensor(check_ids(np.asarray(idx), self.config.vocab_size, "GPT"), device=self.lm_head.weight.device)
        if idx.ndim != 2:
            raise ValueError(f"GPT: idx must be (B, T) token ids, got shape {idx.shape}")
        B, T = idx.shape
        past = cache[0]["k"].shape[2] if cache and "k" in cache[0] else 0
        if past + T > self.config.block_size:
            raise ValueError(f"GPT: sequence of {past + T} tokens is longer than block_size {self.config.block_size}")
        pos = minigrad.arange(past, past + T, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos) if "wpe" in self.transformer else self.pos_table[past : past + T]
        x = self.transformer.drop(tok_emb + pos_emb)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache[i] if cache is not None else None)
        return self.transformer.ln_f(x)  # (B, T, C)

    def configure_optimizer(
        self, weight_decay: float, learning_rate: float, betas: tuple[float, float]
    ) -> minigrad.optim.AdamW:
        """AdamW with weight decay on matrices (>= 2-D: embeddings, Linear weights) only, not on
        biases and LayerNorm gains, as nanoGPT does. Frozen parameters (requires_grad=False) are
        left out."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("configure_optimizer: no parameter requires grad (all are frozen)")
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return minigrad.optim.AdamW(groups, lr=learning_rate, betas=betas)
