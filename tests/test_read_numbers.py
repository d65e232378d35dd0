"""examples/read_numbers.py: the German words, the images of numbers and their split, the patches
and their padding, bad input, the model's shapes and gradients, the cross-attention picture's
weights, a short run, and (slow) a reduced target at a reduced budget."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import need

import minigrad

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "read_numbers.py"


def _load():
    spec = importlib.util.spec_from_file_location("read_numbers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rn = _load()


def tiny_model(**kw) -> rn.NumberReader:
    size = {"patch_size": 4, "d_model": 8, "nhead": 2, "encoder_layers": 1, "decoder_layers": 1, "dim_feedforward": 16}
    return rn.NumberReader(**{**size, **kw})


def fake_digits(seed: int = 0, per_class: int = 3) -> rn.Digits:
    """Random 'digit images', 3 per class, each marked by its class in pixel (0, 0)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    images = rng.random((len(labels), 8, 8)).astype(np.float32)
    images[:, 0, 0] = labels / 10
    return rn.Digits(images, labels)


# ---- the words ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, words", [
    (1, "eins"), (7, "sieben"), (11, "elf"), (12, "zwölf"), (16, "sechzehn"), (17, "siebzehn"), (20, "zwanzig"),
    (21, "einundzwanzig"), (30, "dreißig"), (35, "fünfunddreißig"), (99, "neunundneunzig"), (100, "hundert"),
    (101, "hunderteins"), (111, "hundertelf"), (324, "dreihundertvierundzwanzig"), (1000, "tausend"),
    (1001, "tausendeins"), (1100, "tausendhundert"), (2021, "zweitausendeinundzwanzig"),
    (7777, "siebentausendsiebenhundertsiebenundsiebzig"), (9999, "neuntausendneunhundertneunundneunzig"),
])  # fmt: skip
def test_german_words(n, words):
    assert rn.german(n) == words


@pytest.mark.parametrize("n", [0, 10000, -3, 3.0, True, "12"])
def test_a_number_outside_the_trained_range_is_refused(n):
    with pytest.raises(ValueError, match=r"must be an integer in 1\.\.9999 \(the trained range\), got"):
        rn.german(n)
    with pytest.raises(ValueError, match="the trained range"):
        fake_digits().image_of(n, np.random.default_rng(0))


def test_the_text_arrays_for_teacher_forcing():
    tgt_in, tgt_out = rn.text_batch([1, 21])  # "eins" (4), "einundzwanzig" (13)
    assert tgt_in.shape == tgt_out.shape == (2, 14)
    assert tgt_in[0, 0] == rn.BOS and rn.decode(tgt_in[1, 1:].tolist()) == "einundzwanzig"
    assert tgt_out[0, 4] == rn.EOS and (tgt_out[0, 5:] == rn.IGNORE).all() and (tgt_in[0, 5:] == rn.PAD).all()


# ---- images and patches ---------------------------------------------------------------------------


def test_image_of_a_number_is_its_digits_side_by_side():
    digits, rng = fake_digits(), np.random.default_rng(1)
    for n, k in [(7, 1), (42, 2), (324, 3), (9051, 4)]:
        img = digits.image_of(n, rng)
        assert img.shape == (8, 8 * k) and img.dtype == np.float32
        cells = img.reshape(8, k, 8).transpose(1, 0, 2)  # (k, 8, 8)
        assert [round(c[0, 0] * 10) for c in cells] == [int(c) for c in str(n)]  # each cell shows its digit
    assert digits.image_of(42, rng, shift=True).shape == (8, 16)


def test_test_images_come_only_from_the_test_split():
    need("sklearn")
    train, test = rn.load_digits_split(0)
    assert sum(len(a) for a in train.images) + sum(len(a) for a in test.images) == 1797
    rng = np.random.default_rng(0)
    for n in [5, 68, 907, 4321]:
        cells = test.image_of(n, rng).reshape(8, len(str(n)), 8).transpose(1, 0, 2)  # (k, 8, 8)
        for d, cell in zip(str(n), cells):
            assert (test.images[int(d)] == cell).all(axis=(1, 2)).any()  # one of the test split's images
            assert not (train.images[int(d)] == cell).all(axis=(1, 2)).any()  # none of the training split's


def test_held_out_numbers_are_never_training_numbers():
    held, train = rn.split_numbers(0)
    assert len(held) == 1000 and len(train) == 8999 and not np.isin(held, train).any()
    rng = np.random.default_rng(0)
    sample = rn.sample_numbers(rng, rn.by_length(train), 2000)
    assert not np.isin(sample, held).any()
    assert {len(str(n)) for n in sample} == {1, 2, 3, 4}


def test_patches_are_right_aligned_with_a_padding_mask():
    img = np.arange(128, dtype=np.float32).reshape(8, 16) / 128  # two digits
    patches, pad = rn.patchify([img, np.zeros((8, 32), np.float32)], 4)
    assert patches.shape == (2, 16, 16) and pad.shape == (2, 16)
    assert pad[0].tolist() == [True] * 8 + [False] * 8 and not pad[1].any()
    assert (patches[0, :8] == 0).all()
    np.testing.assert_array_equal(patches[0, 8], img[:4, :4].ravel())  # first digit's top-left patch
    np.testing.assert_array_equal(patches[0, 9], img[:4, 4:8].ravel())  # then its top-right one
    np.testing.assert_array_equal(patches[0, 12], img[:4, 8:12].ravel())  # then the second digit's


@pytest.mark.parametrize("image, error, match", [
    (np.zeros((8, 16), np.uint8), TypeError, "must be float32 or float64 .* got dtype uint8"),
    (np.zeros((8, 16), np.int64), TypeError, "got dtype int64"),
    ([[0.0] * 8] * 8, TypeError, "must be a NumPy array, got list"),
    (np.zeros((8, 12), np.float32), ValueError, r"8 x 8k pixels, k = 1..4 .* got shape \(8, 12\)"),
    (np.zeros((9, 16), np.float32), ValueError, r"got shape \(9, 16\)"),
    (np.zeros((8, 40), np.float32), ValueError, r"got shape \(8, 40\)"),
    (np.zeros((1, 8, 8), np.float32), ValueError, r"got shape \(1, 8, 8\)"),
    (np.full((8, 8), 16.0, np.float32), ValueError, r"pixels must be in \[0, 1\], got \[16.0, 16.0\]"),
])  # fmt: skip
def test_read_refuses_a_bad_image(image, error, match):
    with pytest.raises(error, match=match):
        rn.read(tiny_model(), image)


def test_patch_size_must_divide_the_digit():
    with pytest.raises(ValueError, match="patch_size must divide the 8x8 digit"):
        tiny_model(patch_size=3)


# ---- the model --------------------------------------------------------------------------------------


def test_shapes_forward_and_backward():
    model = tiny_model()
    rng = np.random.default_rng(0)
    numbers = [7, 324, 9051]
    images = [fake_digits().image_of(n, rng) for n in numbers]
    memory, pad = model.encode(images)
    assert memory.shape == (3, 16, 8) and pad.shape == (3, 16)
    tgt_in, _ = rn.text_batch(numbers)  # (3, 26): "neuntausendeinundfünfzig" + EOS
    assert model(images, tgt_in).shape == (3, tgt_in.shape[1], rn.VOCAB_SIZE)
    assert model.digit_logits(memory).shape == (3, 4, 10)  # one class score per digit slot
    words_only = model.loss(images, numbers)
    assert abs(words_only.item() - np.log(rn.VOCAB_SIZE)) < 0.5  # untrained: about uniform over the characters
    both = model.loss(images, numbers, digit_loss=0.5)
    assert abs(both.item() - words_only.item() - 0.5 * np.log(10)) < 0.5  # plus about uniform over 10 digits
    both.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_the_digit_loss_reads_the_right_slots():
    """Its labels are right-aligned as the slots: a 2-digit number's classes sit in slots 2 and 3, and
    the empty slots 0 and 1 do not count."""
    model, rng = tiny_model(patch_size=8), np.random.default_rng(0)
    images = [fake_digits().image_of(n, rng) for n in (42, 7)]
    memory, _ = model.encode(images)
    logp = minigrad.functional.log_softmax(model.digit_logits(memory), axis=-1).numpy()  # (2, 4, 10)
    expected = -(logp[0, 2, 4] + logp[0, 3, 2] + logp[1, 3, 7]) / 3
    words = model.loss(images, [42, 7]).item()
    assert abs(model.loss(images, [42, 7], digit_loss=1.0).item() - words - expected) < 1e-5


def test_gradcheck(device, float64):
    """The whole model's gradient by central differences (float64, random directions), on each backend."""
    model = tiny_model(patch_size=8).to(device)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = minigrad.tensor(rng.normal(0.0, 0.3, p.shape), device=device).data + (1.0 if p.ndim == 1 else 0.0)
    numbers = [3, 21]
    images = [fake_digits().image_of(n, rng).astype(np.float64) for n in numbers]
    assert minigrad.gradcheck(lambda *_: model.loss(images, numbers, digit_loss=0.7), list(model.parameters()),
                              fast_mode=True)


def test_reading_and_the_cross_attention_picture():
    model, image = tiny_model(), fake_digits().image_of(324, np.random.default_rng(0))
    words = rn.read(model, image)
    assert isinstance(words, str) and len(words) <= rn.MAX_CHARS
    chars, weights = rn.cross_attention(model, image)
    assert "".join(chars).startswith(words) and len(chars) in (len(words) + 1, rn.MAX_CHARS)  # EOS, or the limit
    assert weights.shape == (len(chars), 12)  # characters x the 3 digits' 4 patches each
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # the padding slots get nothing


def test_teacher_forced_exact_is_greedy_exact():
    model, rng = tiny_model(), np.random.default_rng(0)
    numbers = [5, 12, 430]
    images = [fake_digits().image_of(n, rng) for n in numbers]
    greedy_right = np.mean([g == rn.german(n) for g, n in zip(rn.greedy(model, images), numbers)])
    assert rn.teacher_forced_exact(model, images, numbers) == greedy_right


def test_a_short_run_ends_with_its_metrics():
    need("sklearn")
    r = rn.main(["--max_steps", "2", "--held_out", "5", "--d_model", "16", "--encoder_layers", "1",
                 "--decoder_layers", "1"])
    assert r["steps"] == 2 and r["held_out"] == 5 and 0 <= r["exact_match"] <= 1


@pytest.mark.slow
def test_read_numbers_reaches_a_reduced_target():
    """A reduced budget and target: >= 0.30 exact match on 200 held-out numbers after 800 steps. Measured
    on the shared 2-core machine (load average 11-12): 0.475 (95 of 200) after 800 steps, 38 s of CPU
    time, 3 minutes of wall time there; this test took 53 s at load 2. The full run's target, >= 0.95 on
    1,000, is the reproduce command's. A budget in steps, not minutes: the same run however loaded the machine is."""
    need("sklearn")
    out = subprocess.run([sys.executable, str(SCRIPT), "--steps", "800", "--held_out", "200"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["steps"] == 800 and r["held_out"] == 200 and r["exact_match"] >= 0.30, r
