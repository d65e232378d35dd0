"""Parity with PyTorch: a nanoGPT written here in torch, given minigrad's weights by name, computes the
same loss, the same gradient for every parameter and the same AdamW steps (float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gpt.model import GPT, GPTConfig, sinusoidal_positions

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: torch's threads only add overhead (seconds, when other processes share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- nanoGPT in PyTorch ---------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # written out, not F.scaled_dot_product_attention
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)  # eps 1e-5, as minigrad's
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias),
                                      c_proj=nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        parts = dict(wte=nn.Embedding(c.vocab_size, c.n_embd),
                     h=nn.ModuleList(Block(c) for _ in range(c.n_layer)),
                     ln_f=nn.LayerNorm(c.n_embd, bias=c.bias))
        if c.pos_encoding == "learned":
            parts["wpe"] = nn.Embedding(c.block_size, c.n_embd)
        else:
            table = torch.tensor(sinusoidal_positions(c.block_size, c.n_embd))
            self.register_buffer("pos_table", table, persistent=False)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT

    def forward(self, idx, targets):
        T = idx.shape[1]
        pos = self.transformer.wpe(torch.arange(T)) if "wpe" in self.transformer else self.pos_table[:T]
        x = self.transformer.wte(idx) + pos
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)


# ---- the comparison ---------------------------------------------------------------------------


def twin_models(**kw) -> tuple[GPT, TorchGPT]:
    """A float64 minigrad GPT with every weight random (so no gradient is trivially 0) and its torch twin."""
    cfg = GPTConfig(**{"vocab_size": 19, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})
    model = GPT(cfg)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.2, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    twin = TorchGPT(cfg).double()
    sd = {name: torch.tensor(t.numpy()) for name, t in model.state_dict().items()}
    assert set(sd) == set(twin.state_dict())  # the same names, lm_head.weight included
    twin.load_state_dict(sd)
    return model, twin


def batch(cfg: GPTConfig, seed: int = 1):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg.vocab_size, (3, cfg.block_size))
    targets = rng.integers(0, cfg.vocab_size, (3, cfg.block_size))
    targets[0, :2] = -1  # ignored positions, too
    return idx, targets


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"pos_encoding": "sinusoidal"}, {"n_layer": 1, "n_head": 4}],
                         ids=["gpt2", "no-bias", "sinusoidal", "four-heads"])
def test_loss_and_every_gradient_match_torch(float64, kw):
    model, twin = twin_models(**kw)
    idx, targets = batch(model.config)
    logits, loss = model(idx, targets)
    loss.backward()
    t_logits, t_loss = twin(torch.tensor(idx), torch.tensor(targets))
    t_loss.backward()

    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    t_params = dict(twin.named_parameters())  # torch, too, lists the tied matrix once
    assert set(t_params) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-8, atol=1e-14, err_msg=name)


def test_adamw_steps_match_torch(float64):
    """configure_optimizer's groups (decay on >= 2-D weights only) and AdamW's update, three steps."""
    model, twin = twin_models()
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.95))
    decay = [p for p in twin.parameters() if p.dim() >= 2]
    no_decay = [p for p in twin.parameters() if p.dim() < 2]
    t_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    assert [len(g.params) for g in opt.param_groups] == [len(decay), len(no_decay)]
    for step in range(3):
        idx, targets = batch(model.config, seed=step)
        model(idx, targets)[1].backward()
        opt.step()
        opt.zero_grad()
        twin(torch.tensor(idx), torch.tensor(targets))[1].backward()
        t_opt.step()
        t_opt.zero_grad()
    t_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.numpy(), t_params[name].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
