"""Parity with PyTorch: the same GPT in torch (gpt/torch_gpt.py), given minigrad's weights by name, computes
the same loss, the same gradient for every parameter and the same AdamW steps (float64)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import need

from gpt.model import GPT, GPTConfig

torch = need("torch")
from gpt.torch_gpt import TorchGPT  # noqa: E402  (needs torch)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: torch's threads only add overhead (seconds, when other processes share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.mark.parametrize(
    "kw",
    [{}, {"bias": False}, {"pos_encoding": "sinusoidal"}, {"n_layer": 1, "n_head": 4}, {"gelu": "none"},
     {"n_head": 4, "n_kv_head": 2}, {"n_head": 4, "n_kv_head": 1}],
    ids=["gpt2", "no-bias", "sinusoidal", "four-heads", "exact-gelu", "grouped-query", "multi-query"],
)
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
    assert [len(g["params"]) for g in opt.param_groups] == [len(decay), len(no_decay)]
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


def test_nanogpt_weights_need_nanogpts_gelu(float64):
    """nanoGPT's MLP uses the exact GELU (nn.GELU()): its weights give its logits only with
    GPTConfig(gelu="none"); GPT-2's tanh form moves them by about 1e-6."""
    exact, twin = twin_models(gelu="none")  # twin: nanoGPT's model, exact GELU
    tanh = GPT(GPTConfig(**{**vars(exact.config), "gelu": "tanh"}))
    tanh.load_state_dict(exact.state_dict())
    idx, targets = batch(exact.config)
    t_logits = twin(torch.tensor(idx), torch.tensor(targets))[0].detach().numpy()
    np.testing.assert_allclose(exact(idx, targets)[0].numpy(), t_logits, rtol=1e-10, atol=1e-12)
    assert np.abs(tanh(idx, targets)[0].numpy() - t_logits).max() > 1e-7
