"""Grouped-query and multi-query attention (GPTConfig.n_kv_head): shapes, the KV cache, gradients,
equivalence with multi-head attention whose key/value heads are copied per group, and errors.
PyTorch parity is in test_gpt_torch_parity.py."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from gpt.model import GPT, GPTConfig, repeat_kv
from gpt.sample import generate


def config(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 13, "block_size": 12, "n_layer": 2, "n_head": 4, "n_embd": 16, **kw})


def randomize(model: GPT, seed: int = 0) -> GPT:
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return model


@pytest.mark.parametrize("n_kv_head, rows", [(None, 48), (4, 48), (2, 32), (1, 24)])
def test_c_attn_holds_c_plus_two_kv_heads(n_kv_head, rows):
    """C = 16, hs = 4: c_attn's outputs are q (16) and k, v (n_kv_head * 4 each)."""
    model = GPT(config(n_kv_head=n_kv_head))
    assert model.transformer.h[0].attn.c_attn.weight.shape == (rows, 16)
    assert model.transformer.h[0].attn.c_attn.bias.shape == (rows,)


def test_default_is_multi_head():
    a, b = GPT(config()), GPT(config(n_kv_head=4))
    b.load_state_dict(a.state_dict())
    idx = [[1, 2, 3, 4]]
    np.testing.assert_array_equal(a(idx, idx)[0].numpy(), b(idx, idx)[0].numpy())


def per_group(a: np.ndarray, n_kv_head: int, G: int) -> np.ndarray:
    """Rows of n_kv_head heads of size hs -> each head's rows repeated G times, in place."""
    heads = a.reshape((n_kv_head, -1) + a.shape[1:])
    return np.repeat(heads, G, axis=0).reshape((-1,) + a.shape[1:])


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_equals_multi_head_with_copied_kv_heads(float64, n_kv_head):
    """Grouped-query attention is multi-head attention in which query head h reads key/value head
    h // G: copy each k, v head's rows of c_attn G times into an n_head model, and the logits agree."""
    gqa = randomize(GPT(config(n_kv_head=n_kv_head)))
    mha = GPT(config())
    C, hs, G = 16, 4, 4 // n_kv_head
    sd = gqa.state_dict()
    for name, t in list(sd.items()):
        if "c_attn" in name:
            w = t.numpy()
            k, v = w[C : C + n_kv_head * hs], w[C + n_kv_head * hs :]
            sd[name] = minigrad.tensor(np.concatenate([w[:C], per_group(k, n_kv_head, G), per_group(v, n_kv_head, G)]))
    mha.load_state_dict(sd)
    idx = np.random.default_rng(0).integers(0, 13, (2, 9))
    np.testing.assert_allclose(gqa(idx, idx)[0].numpy(), mha(idx, idx)[0].numpy(), rtol=1e-12, atol=1e-12)


def test_repeat_kv_gradient_sums_over_the_group(device, float64):
    x = minigrad.tensor(np.random.default_rng(0).normal(size=(2, 3, 5, 4)), device=device, requires_grad=True)
    assert minigrad.gradcheck(lambda x: repeat_kv(x, 2), [x])
    dout = np.random.default_rng(1).normal(size=(2, 6, 5, 4))
    x.grad = None
    y = repeat_kv(x, 2)
    np.testing.assert_array_equal(y.numpy()[:, 1::2], y.numpy()[:, 0::2])  # heads 2j and 2j+1 share j
    (y * minigrad.tensor(dout, device=device)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), dout[:, 0::2] + dout[:, 1::2], rtol=1e-12)


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_gradcheck_whole_model(device, float64, n_kv_head):
    model = randomize(GPT(config(n_layer=1, n_kv_head=n_kv_head))).to(device)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 13, (2, 5)), rng.integers(0, 13, (2, 5))
    params = list(model.parameters())
    assert minigrad.gradcheck(lambda *_: model(idx, targets)[1], params, fast_mode=True)


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_kv_cache_holds_n_kv_head_heads_and_gives_the_uncached_tokens(device, float64, n_kv_head):
    model = randomize(GPT(config(n_kv_head=n_kv_head))).to(device)
    tokens = [2, 7, 1, 8, 2, 8]
    cache = [{} for _ in range(2)]
    for i, t in enumerate(tokens):
        step, _ = model([[t]], cache=cache)
        full, _ = model([tokens[: i + 1]])
        np.testing.assert_allclose(step.numpy(), full.numpy(), rtol=1e-10, atol=1e-12)
    assert cache[0]["k"].shape == cache[0]["v"].shape == (1, n_kv_head, len(tokens), 4)  # (B, Hkv, T, hs)
    for seed in (0, 1):
        kw = dict(temperature=1.0, seed=seed)
        assert generate(model, [3, 1], 10, use_cache=True, **kw) == generate(model, [3, 1], 10, use_cache=False, **kw)


@pytest.mark.parametrize("n_kv_head", [3, 0, -1, 8, 2.0])
def test_n_kv_head_must_divide_n_head(n_kv_head):
    with pytest.raises(ValueError, match=rf"n_kv_head \({n_kv_head!r}\) must be a positive divisor of n_head \(4\)"):
        config(n_kv_head=n_kv_head)
