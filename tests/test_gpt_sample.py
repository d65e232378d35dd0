"""Sampling: the KV cache gives the same tokens as full recomputation; temperature, top-k, top-p; errors."""
from __future__ import annotations

import numpy as np
import pytest

from gpt.model import GPT, GPTConfig
from gpt.sample import generate, next_token_probs

V = 23


@pytest.fixture
def model(device, float64):
    """A float64 model with weights large enough that its next-token distributions are far from uniform."""
    m = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16))
    rng = np.random.default_rng(0)
    for p in m.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return m.to(device)


# ---- the KV cache --------------------------------------------------------------------------


@pytest.mark.parametrize("temperature, top_k, top_p, seed", [
    (0.0, None, None, None),  # greedy
    (1.0, None, None, 0),
    (0.7, 5, None, 1),
    (1.3, None, 0.9, 2),
])
@pytest.mark.parametrize("prompt", [[3], [1, 4, 1, 5, 9]])
def test_cache_and_no_cache_give_the_same_tokens(model, prompt, temperature, top_k, top_p, seed):
    n_new = model.config.block_size - len(prompt)  # prompt + new tokens fill the context exactly
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    cached = generate(model, prompt, n_new, use_cache=True, **kw)
    uncached = generate(model, prompt, n_new, use_cache=False, **kw)
    assert cached == uncached
    assert len(cached) == model.config.block_size and cached[: len(prompt)] == prompt


def test_cached_logits_equal_full_logits(model):
    """The cache's invariant, one position at a time: feeding tokens one by one gives the logits
    of running the whole prefix."""
    tokens = [2, 7, 1, 8, 2, 8]
    cache = [{} for _ in range(model.config.n_layer)]
    for i, t in enumerate(tokens):
        step, _ = model([[t]], cache=cache)
        full, _ = model([tokens[: i + 1]])
        np.testing.assert_allclose(step.numpy(), full.numpy(), rtol=1e-10, atol=1e-12)
    assert cache[0]["k"].shape == (1, 2, len(tokens), 8)  # (B, H, T, hs)


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    a = generate(model, [0], 15, seed=5)
    assert generate(model, [0], 15, seed=5) == a
    assert generate(model, [0], 15, seed=6) != a


def test_top_k_1_is_greedy(model):
    assert generate(model, [4, 2], 14, temperature=1.0, top_k=1, seed=3) == generate(model, [4, 2], 14, temperature=0.0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_beyond_block_size(model, use_cache):
    out = generate(model, [1, 2, 3], 40, seed=0, use_cache=use_cache)  # 43 tokens, block_size 16
    assert len(out) == 43 and out[:3] == [1, 2, 3] and all(0 <= t < V for t in out)


def test_generate_restores_training_mode(model):
    model.train()
    generate(model, [1], 3, seed=0)
    assert model.training
    model.eval()
    generate(model, [1], 3, seed=0)
    assert not model.training


# ---- next_token_probs -------------------------------------------------------------------------


P = np.array([0.15, 0.5, 0.05, 0.3])  # by probability: index 1, 3, 0, 2
LOGITS = np.log(P) + 2.0  # logits are only defined up to a constant


def test_plain_softmax():
    np.testing.assert_allclose(next_token_probs(LOGITS, 1.0, None, None), P)


def test_temperature():
    np.testing.assert_allclose(next_token_probs(LOGITS, 0.5, None, None), P**2 / (P**2).sum())
    greedy = next_token_probs(LOGITS, 0.0, None, None)
    np.testing.assert_array_equal(greedy, [0, 1, 0, 0])


@pytest.mark.parametrize("top_k, keep", [(1, [1]), (2, [1, 3]), (3, [0, 1, 3]), (4, [0, 1, 2, 3]), (10, [0, 1, 2, 3])])
def test_top_k_keeps_the_k_most_likely(top_k, keep):
    expected = np.zeros(4)
    expected[keep] = P[keep] / P[keep].sum()
    np.testing.assert_allclose(next_token_probs(LOGITS, 1.0, top_k, None), expected)


@pytest.mark.parametrize("top_p, keep", [
    (0.3, [1]),  # 0.5 >= 0.3 already
    (0.5 - 1e-9, [1]),
    (0.79, [1, 3]),  # 0.5 < 0.79 <= 0.5 + 0.3
    (0.81, [0, 1, 3]),  # needs 0.15 more
    (0.96, [0, 1, 2, 3]),
    (1.0, [0, 1, 2, 3]),
])
def test_top_p_keeps_the_smallest_set_with_enough_mass(top_p, keep):
    expected = np.zeros(4)
    expected[keep] = P[keep] / P[keep].sum()
    np.testing.assert_allclose(next_token_probs(LOGITS, 1.0, None, top_p), expected)


def test_top_p_at_an_exact_boundary_keeps_the_set_that_reaches_it():
    """Four equal tokens and top_p 0.5: the first two have mass exactly 0.5, so two are kept
    (searchsorted with side="right" would keep three)."""
    np.testing.assert_array_equal(next_token_probs(np.zeros(4), 1.0, None, 0.5), [0.5, 0.5, 0.0, 0.0])


def test_top_k_then_top_p():
    """top-k first (keeps 1, 3, 0), then top-p on the renormalized rest: 0.5/0.95 < 0.6 <= 0.8/0.95."""
    expected = np.zeros(4)
    expected[[1, 3]] = P[[1, 3]] / P[[1, 3]].sum()
    np.testing.assert_allclose(next_token_probs(LOGITS, 1.0, 3, 0.6), expected)


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt, kw, match", [
    ([], {}, "at least one token"),
    ([1, V], {}, f"prompt token id {V} is out of range for vocab_size {V}"),
    ([-1], {}, "prompt token id -1 is out of range"),
    ([1], {"top_k": 0}, "top_k must be positive"),
    ([1], {"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ([1], {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
])
def test_generate_errors(prompt, kw, match):
    model = GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match=match):
        generate(model, prompt, 5, **kw)
