"""Sampling: generate tokens one at a time from a trained GPT, with a KV cache.

Each step turns the logits of the last position into probabilities
(temperature, then top-k and/or top-p filtering) and draws the next token
from a seeded generator.

Without a cache every step runs the model over the whole context (up to
block_size tokens). With the cache, each layer keeps the keys and values of
the positions it has seen, so a step runs the model over one new position.
Contexts are cropped to block_size: uncached, to the last block_size tokens
(nanoGPT's sliding window); cached, by keeping the last block_size // 2 tokens
and re-encoding them once the cache is full (positions are absolute, so a
cache cannot slide), which keeps the cost per token low. Both give the same
tokens as long as prompt + generated tokens fit in block_size.

`stream` yields each token as it is drawn (the CLI prints text as it comes);
`generate` collects them; `generate_batch` samples many equal-length prompts at once.

Read next: hf.py (GPT-2's own weights), then minigrad/nn/lora.py (fine-tuning them).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

import minigrad
from gpt.model import GPT


def next_token_probs(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None) -> np.ndarray:
    """(V,) logits -> (V,) probabilities after temperature, top-k and top-p (nucleus) filtering."""
    logits = logits.astype(np.float64)
    if temperature <= 0:  # greedy
        p = np.zeros_like(logits)
        p[int(np.argmax(logits))] = 1.0
        return p
    logits = logits / temperature
    if top_k is not None and top_k < len(logits):
        kth = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p)) + 1]  # the smallest set with mass >= top_p
        mask = np.zeros_like(p, dtype=bool)
        mask[keep] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return p


def generate(
    model: GPT,
    prompt: Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> list[int]:
    """prompt ids -> prompt + max_new_tokens sampled ids."""
    new = stream(model, prompt, max_new_tokens, temperature, top_k, top_p, seed, use_cache)
    return [int(t) for t in prompt] + list(new)


def stream(
    model: GPT,
    prompt: Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield max_new_tokens sampled ids, one at a time, after the prompt's. Arguments are checked
    at the call, before the first token."""
    check_sampling(model, prompt, max_new_tokens, temperature, top_k, top_p, seed)
    return _stream(model, [int(t) for t in prompt], max_new_tokens, temperature, top_k, top_p, seed, use_cache)


def check_sampling(model: GPT, prompt: Sequence[int], max_new_tokens: int, temperature: float,
                   top_k: int | None, top_p: float | None, seed: int | None) -> None:
    """One clear error for each bad sampling argument (generate, stream and generate_batch share it)."""
    cfg = model.config
    if not len(prompt):
        raise ValueError("generate: the prompt must hold at least one token")
    bad = [t for t in prompt if not 0 <= int(t) < cfg.vocab_size]
    if bad:
        raise ValueError(f"generate: prompt token id {bad[0]} is out of range for vocab_size {cfg.vocab_size}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"generate: temperature must be >= 0 (0: always the likeliest token), got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"generate: top_k must be positive, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p}")
    if seed is not None and seed < 0:
        raise ValueError(f"generate: seed must be a non-negative integer, got {seed}")


def _stream(model: GPT, tokens: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
            top_p: float | None, seed: int | None, use_cache: bool) -> Iterator[int]:
    cfg = model.config
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    cache: list[dict[str, Any]] | None = None
    try:
        with minigrad.no_grad():
            for _ in range(max_new_tokens):
                if not use_cache:
                    logits, _ = model([tokens[-cfg.block_size :]])
                elif cache is None or cache[0]["k"].shape[2] >= cfg.block_size:
                    keep = tokens[-cfg.block_size :] if cache is None else tokens[-max(1, cfg.block_size // 2) :]
                    cache = [{} for _ in range(cfg.n_layer)]
                    logits, _ = model([keep], cache=cache)  # (re-)encode the context
                else:
                    logits, _ = model([tokens[-1:]], cache=cache)  # one new position
                p = next_token_probs(logits.numpy()[0, -1], temperature, top_k, top_p)
                tokens.append(int(rng.choice(len(p), p=p)))
                yield tokens[-1]
    finally:
        model.train(was_training)


def generate_batch(
    model: GPT,
    prompts: Any,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Equal-length prompts (B, T0) ids -> (B, T0 + max_new_tokens) ids, sampled together with the
    KV cache: one forward pass per new token for the whole batch (PPO's rollouts, gpt/ppo.py).
    Each step draws row 0, 1, ... in turn from one generator (`seed`, or a Generator to continue),
    so a batch of one gives generate's tokens. The whole sequence must fit in block_size: no cropping."""
    ids = np.asarray(prompts)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"generate_batch: prompts must be (B, T0) integer token ids, B >= 1, got "
                         f"{ids.dtype} array of shape {ids.shape}")
    for row in ids:
        check_sampling(model, row, max_new_tokens, temperature, top_k, top_p, seed if isinstance(seed, int) else None)
    if ids.shape[1] + max_new_tokens > model.config.block_size:
        raise ValueError(f"generate_batch: prompt ({ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds block_size {model.config.block_size}")
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    out = [ids.astype(np.int64)]  # (B, T0), then one (B, 1) column per new token
    was_training = model.training
    model.eval()
    try:
        with minigrad.no_grad():
            cache: list[dict[str, Any]] = [{} for _ in range(model.config.n_layer)]
            logits, _ = model(out[0], cache=cache)  # (B, 1, V): the prompts encoded once
            for step in range(max_new_tokens):
                last = logits.numpy()[:, -1]  # (B, V)
                new = [rng.choice(last.shape[1], p=next_token_probs(row, temperature, top_k, top_p)) for row in last]
                out.append(np.asarray(new, dtype=np.int64)[:, None])  # (B, 1)
                if step + 1 < max_new_tokens:
                    logits, _ = model(out[-1], cache=cache)  # one new position per row
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=1)  # (B, T0 + max_new_tokens)


def default_prompt(tok: Any) -> list[int]:
    """A newline, the usual start of a sample; a text with no newline has none, so its first token."""
    try:
        return tok.encode("\n")
    except ValueError:
        return [0]


def print_stream(tok: Any, ids: Iterator[int], file: Any) -> None:
    """Print the text of ids as they come. A byte-level token may end inside a character: such
    tokens wait for the ones that complete it."""
    pending: list[int] = []
    for i in ids:
        pending.append(i)
        text = tok.decode(pending)
        if not text.endswith("\ufffd") or len(pending) > 8:  # a UTF-8 character has at most 4 bytes
            file.write(text)
            file.flush()
            pending = []
    if pending:
        file.write(tok.decode(pending))
