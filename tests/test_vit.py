"""The ViT on digits (examples/vit_digits.py): gradients, patches, the [CLS] attention, bad input, and
(slow) a reduced target at a reduced budget. BERT: test_bert.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import vit_digits  # noqa: E402
from vit_digits import ViT, patchify  # noqa: E402


def randomize(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return model


def run_example(name: str, *args: str, timeout: int) -> dict:
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the ViT ------------------------------------------------------------------------------------


def test_patches_are_taken_in_reading_order():
    img = np.arange(16.0).reshape(1, 4, 4)
    p = patchify(img, 2)
    assert p.shape == (1, 4, 4)
    np.testing.assert_array_equal(p[0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(p[0, 1], [2, 3, 6, 7])
    np.testing.assert_array_equal(p[0, 3], [10, 11, 14, 15])


def test_vit_gradcheck(device, float64):
    model = randomize(ViT(image_size=4, patch_size=2, n_classes=3, d_model=8, n_head=2, n_layer=1)).to(device)
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(3, 4, 4)), np.array([0, 2, 1])
    assert minigrad.gradcheck(lambda *_: model(images, labels)[1], list(model.parameters()), fast_mode=True)


def test_vit_cls_attention_is_a_distribution_over_patches():
    model = ViT(image_size=8, patch_size=2, d_model=16, n_head=2, n_layer=1)
    attn = model.cls_attention(np.random.default_rng(0).random((2, 8, 8)).astype(np.float32))
    assert attn.shape == (2, 4, 4) and np.all(attn.sum(axis=(1, 2)) < 1.0) and np.all(attn > 0)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((2, 8, 8)), [0, 10], r"labels must be 2 class ids in \[0, 10\), got shape \(2,\), range \[0, 10\]"),
    (np.zeros((2, 8, 8)), [-1, 3], r"range \[-1, 3\]"),
    (np.zeros((2, 9, 9)), None, "images must be 8x8 .*got 9x9"),
    (np.zeros((2, 8)), None, r"images must be \(B, S, S\)"),
])
def test_vit_bad_input(images, labels, match):
    model = ViT(image_size=8, patch_size=2, d_model=8, n_head=2, n_layer=1)
    with pytest.raises(ValueError, match=match):
        model(images.astype(np.float32), None if labels is None else np.array(labels))


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="image size 8 is not divisible by patch size 3"):
        ViT(image_size=8, patch_size=3)
    with pytest.raises(ValueError, match="image size 9x9 is not divisible by patch size 2"):
        patchify(np.zeros((1, 9, 9)), 2)


def test_vit_digits_runs_a_few_steps():
    pytest.importorskip("sklearn")
    r = vit_digits.main(["--minutes", "1", "--max_steps", "3", "--n_layer", "1", "--no-baselines"])
    assert r["steps"] == 3 and 0 <= r["test_accuracy"] <= 1


@pytest.mark.slow
def test_vit_digits_learns_the_digits():
    """A reduced target at a reduced budget: >= 0.92 test accuracy after 900 steps. Measured on an
    idle 2-core machine: 0.9778 in 69 s (seed 1, another split: 0.9639; 600 steps: 0.9361; mid-run
    accuracy swings by about 2 points). The README's target, >= 0.97 after 1,800 steps, is the
    reproduce command's. A budget in steps, not minutes: the same run however loaded the machine is."""
    pytest.importorskip("sklearn")
    r = run_example("vit_digits.py", "--steps", "900", "--no-baselines", timeout=900)
    assert r["steps"] == 900 and r["test_accuracy"] >= 0.92, r
