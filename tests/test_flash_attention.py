"""Flash attention: equal to attention.py's op (its simple twin) in value and gradient for every mask
kind and tile size, the sliding window equal to the simple path with sliding_window_mask, finite
differences, the tiles it skips, and its errors.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad.ops.attention import scaled_dot_product_attention_simple
from minigrad.ops.flash_attention import flash_attention, sliding_window_mask, tile_plan
from helpers import check_op, make_array, seeds
from test_attention import MASK_KINDS, additive, attention_ref, draw_qkv, mask_case, qkv_shapes

pytestmark = pytest.mark.usefixtures("float64")


def run(fn, arrays, device, grad_of):
    """fn's output and the gradients of the inputs marked in grad_of, for a random cotangent."""
    xs = [minigrad.tensor(a, device=device, requires_grad=g) for a, g in zip(arrays, grad_of)]
    out = fn(*xs)
    out.backward(minigrad.tensor(np.random.default_rng(0).standard_normal(out.shape), device=device))
    return [out.numpy()] + [x.grad.numpy() for x, g in zip(xs, grad_of) if g]


def assert_equal_to_1e12(a_list, b_list):
    for a, b in zip(a_list, b_list, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", MASK_KINDS + ["causal", "none"])
@given(case=st.data(), block_q=st.integers(1, 4), block_k=st.integers(1, 4))
def test_flash_equals_attention_in_value_and_gradient(kind, device, case, block_q, block_k):
    """Every mask kind (boolean, float with a gradient, float with -inf, causal with Tq <= Tk, none),
    queries that see no key included, several tiles each way."""
    if kind in MASK_KINDS:
        shapes, mask = case.draw(mask_case(kind))
    else:
        shapes, mask = case.draw(qkv_shapes(causal=kind == "causal")), None
    arrays = draw_qkv(case, shapes) + ([mask] if mask is not None else [])
    grad_of = [True, True, True] + ([mask.dtype != bool] if mask is not None else [])
    causal = kind == "causal"

    def flash(q, k, v, *m):
        return flash_attention(q, k, v, attn_mask=m[0] if m else None, is_causal=causal, block_q=block_q,
                               block_k=block_k)

    def today(q, k, v, *m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m[0] if m else None, is_causal=causal)

    assert_equal_to_1e12(run(flash, arrays, device, grad_of), run(today, arrays, device, grad_of))


@given(case=st.data(), window=st.integers(1, 5), global_tokens=st.integers(0, 3), block_q=st.integers(1, 4),
       block_k=st.integers(1, 4))
def test_the_window_equals_the_simple_path_with_its_mask(device, case, window, global_tokens, block_q, block_k):
    tq, tk = sorted(case.draw(st.tuples(st.integers(1, 9), st.integers(1, 9))))
    arrays = draw_qkv(case, [(2, 2, tq, 3), (2, 2, tk, 3), (2, 2, tk, 2)])
    band = sliding_window_mask(tq, tk, window, global_tokens, device)

    def flash(q, k, v):
        return flash_attention(q, k, v, is_causal=True, window=window, global_tokens=global_tokens,
                               block_q=block_q, block_k=block_k)

    def simple(q, k, v):
        return scaled_dot_product_attention_simple(q, k, v, attn_mask=band)

    assert_equal_to_1e12(run(flash, arrays, device, [True] * 3), run(simple, arrays, device, [True] * 3))


def test_sliding_window_mask_is_the_band_with_global_keys():
    got = sliding_window_mask(4, 6, window=2, global_tokens=1).numpy()  # query i at position i + 2
    expected = np.array([[1, 1, 1, 0, 0, 0],  # position 2 sees keys 1, 2 and the global key 0
                         [1, 0, 1, 1, 0, 0],
                         [1, 0, 0, 1, 1, 0],
                         [1, 0, 0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", ["float mask", "window"])
def test_flash_passes_finite_differences(case, device):
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((1, 2, 5, 3)), rng.standard_normal((1, 2, 7, 3)), rng.standard_normal((1, 2, 7, 2))
    if case == "float mask":
        m = rng.standard_normal((2, 5, 7))
        m[1, 2] = -np.inf  # one query sees nothing
        m[0, :, 3] = -np.inf
        check_op(lambda q, k, v, m: flash_attention(q, k, v, attn_mask=m, block_q=2, block_k=3),
                 lambda q, k, v, m: attention_ref(q, k, v, m), [q, k, v, m], device)
    else:
        band = additive(sliding_window_mask(5, 7, 3, 1).numpy())
        check_op(lambda q, k, v: flash_attention(q, k, v, is_causal=True, window=3, global_tokens=1, block_q=2,
                                                 block_k=2),
                 lambda q, k, v: attention_ref(q, k, v, band), [q, k, v], device)


def test_a_query_that_sees_no_key_gives_output_0_and_gradient_0(device):
    rng = np.random.default_rng(1)
    q, k, v = (minigrad.tensor(rng.standard_normal(s), device=device, requires_grad=True)
               for s in [(1, 2, 5, 4), (1, 2, 6, 4), (1, 2, 6, 4)])
    allowed = np.ones((5, 6), dtype=bool)
    allowed[3] = False
    out = flash_attention(q, k, v, attn_mask=minigrad.tensor(allowed, device=device), block_q=2, block_k=2)
    (out * minigrad.tensor(rng.standard_normal(out.shape), device=device)).sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(q.grad.numpy()).all()
    np.testing.assert_array_equal(out.numpy()[:, :, 3], 0.0)
    np.testing.assert_array_equal(q.grad.numpy()[:, :, 3], 0.0)
    assert np.abs(q.grad.numpy()[:, :, [0, 1, 2, 4]]).min() > 0


def test_plain_mode_takes_the_simple_twin_with_the_same_numbers(device):
    arrays = [make_array(s, shape) for s, shape in enumerate([(1, 2, 6, 3), (1, 2, 6, 3), (1, 2, 6, 3)])]

    def fn(q, k, v):
        return flash_attention(q, k, v, is_causal=True, window=2, global_tokens=1, block_q=2, block_k=2)

    tiled = run(fn, arrays, device, [True] * 3)
    with minigrad.plain():
        plain = run(fn, arrays, device, [True] * 3)
    assert_equal_to_1e12(tiled, plain)


# ---- the tiles visited --------------------------------------------------------------------------


def tiles_visited(out):
    return sum(len(tiles) for _, _, tiles in out._ctx.plan)


@pytest.mark.parametrize("tq, tk", [(16, 16), (11, 16), (16, 5)])
@pytest.mark.parametrize("pattern", [dict(causal=True), dict(causal=True, window=3), dict(causal=True, window=5, global_tokens=6),
                                     dict(causal=False)])
def test_the_plan_skips_exactly_the_tiles_nobody_sees(tq, tk, pattern):
    """Each tile skipped is masked everywhere (and each visited one has a visible pair), each tile
    marked unmasked is visible everywhere."""
    causal = pattern["causal"]
    if causal and tq > tk:
        return
    if "window" in pattern:
        allowed = sliding_window_mask(tq, tk, pattern["window"], pattern.get("global_tokens", 0)).numpy()
    elif causal:
        allowed = np.tri(tq, tk, k=tk - tq, dtype=bool)
    else:
        allowed = np.ones((tq, tk), dtype=bool)
    seen = np.zeros((tq, tk), dtype=bool)
    for r0, r1, tiles in tile_plan(tq, tk, 3, 4, **pattern):
        for c0, c1, masked in tiles:
            tile = allowed[r0:r1, c0:c1]
            assert tile.any() and (masked or tile.all()), (r0, c0, masked)
            seen[r0:r1, c0:c1] = True
    assert not (allowed & ~seen).any(), "a tile with visible pairs was skipped"


def test_with_a_window_the_tiles_visited_grow_linearly_with_t():
    rng = np.random.default_rng(0)
    counts = {}
    for t in (64, 128, 256):
        q = minigrad.tensor(rng.standard_normal((1, 1, t, 2)), requires_grad=True)  # so the op is kept
        for name, window in (("window", 8), ("causal", None)):
            out = flash_attention(q, q, q, is_causal=True, window=window, block_q=8, block_k=8)
            counts[name, t] = tiles_visited(out)
    assert [counts["window", t] for t in (64, 128, 256)] == [15, 31, 63]  # 2 per row of tiles but the first
    assert [counts["causal", t] for t in (64, 128, 256)] == [36, 136, 528]  # n (n + 1) / 2 for n rows of tiles


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_tiles_windows_and_dropout_name_what_was_wrong(device):
    q = minigrad.zeros(1, 2, 4, 3, device=device)
    mask = minigrad.ones(4, 4, device=device).astype(bool)
    with pytest.raises(ValueError, match=r"flash_attention: block_q must be a positive integer \(a tile's size\), got 0"):
        flash_attention(q, q, q, block_q=0)
    with pytest.raises(ValueError, match=r"flash_attention: block_k must be a positive integer .* got -2"):
        flash_attention(q, q, q, block_k=-2)
    with pytest.raises(ValueError, match=r"flash_attention: window must be a positive integer .* got 0"):
        flash_attention(q, q, q, is_causal=True, window=0)
    with pytest.raises(ValueError, match=r"window must be a positive integer .* got 2.5"):
        sliding_window_mask(4, 4, 2.5)
    with pytest.raises(ValueError, match=r"flash_attention: window=2 is a causal band .* needs is_causal=True"):
        flash_attention(q, q, q, window=2)
    with pytest.raises(ValueError, match=r"window=2 is a causal band .* and no attn_mask; for another mask, combine"):
        flash_attention(q, q, q, attn_mask=mask, window=2)
    with pytest.raises(ValueError, match=r"flash_attention: global_tokens=1 needs a window"):
        flash_attention(q, q, q, is_causal=True, global_tokens=1)
    with pytest.raises(ValueError, match=r"flash_attention: global_tokens must be an integer >= 0, got -1"):
        flash_attention(q, q, q, is_causal=True, window=2, global_tokens=-1)
    with pytest.raises(ValueError, match=r"flash_attention: dropout_p=0.1: no exact dropout here"):
        flash_attention(q, q, q, dropout_p=0.1)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: pass attn_mask or is_causal=True, not both"):
        flash_attention(q, q, q, attn_mask=mask, is_causal=True)


@given(seed=seeds)
def test_flash_leaves_its_inputs_unchanged(seed):
    arrays = [make_array(seed + i, (1, 1, 5, 2)) for i in range(3)]
    xs = [minigrad.tensor(a, requires_grad=True) for a in arrays]
    flash_attention(*xs, is_causal=True, window=2, block_q=2, block_k=2).sum().backward()
    for x, a in zip(xs, arrays):
        np.testing.assert_array_equal(x.numpy(), a)


# ---- the GPT's attn_window -----------------------------------------------------------------------


def tiny_gpt(window, dropout=0.0):
    from gpt.model import GPT, GPTConfig

    minigrad.manual_seed(0)  # the same weights whatever the window
    return GPT(GPTConfig(vocab_size=10, block_size=12, n_layer=1, n_head=2, n_embd=8, attn_window=window,
                         dropout=dropout))


def last_logits(model, ids):
    logits, _ = model([ids])
    return logits.numpy()[0, -1]


def test_a_gpt_with_a_window_forgets_what_lies_outside_it():
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    windowed, full, wide = tiny_gpt(3), tiny_gpt(None), tiny_gpt(12)
    np.testing.assert_allclose(last_logits(wide, ids), last_logits(full, ids), rtol=1e-5, atol=1e-6)
    assert np.abs(last_logits(windowed, ids) - last_logits(full, ids)).max() > 1e-4
    # with one layer, the last position sees only the window's 3 tokens: changing an earlier one does nothing
    np.testing.assert_array_equal(last_logits(windowed, [9] + ids[1:]), last_logits(windowed, ids))
    assert np.abs(last_logits(full, [9] + ids[1:]) - last_logits(full, ids)).max() > 0


def test_a_gpt_with_a_window_gives_the_same_logits_through_its_kv_cache():
    model = tiny_gpt(3)
    model.eval()
    ids = [3, 1, 4, 1, 5, 9, 2, 6, 5]
    cache = [{}]
    cached = [model([ids[:4]], cache=cache)[0].numpy()[0, -1]]
    cached += [model([[t]], cache=cache)[0].numpy()[0, -1] for t in ids[4:]]  # one new position at a time
    uncached = [last_logits(model, ids[:n]) for n in range(4, len(ids) + 1)]
    np.testing.assert_allclose(np.array(cached), np.array(uncached), rtol=1e-5, atol=1e-6)


def test_a_gpt_with_a_window_and_dropout_trains_through_the_masked_path():
    model = tiny_gpt(3, dropout=0.2)
    ids = np.arange(16).reshape(2, 8) % 10
    _, loss = model(ids, targets=ids)
    loss.backward()
    assert np.isfinite(loss.item()) and all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_a_bad_attn_window_is_named(window):
    from gpt.model import GPTConfig

    with pytest.raises(ValueError, match=r"GPTConfig: attn_window must be a positive integer .* or None, got"):
        GPTConfig(attn_window=window)


def test_the_bench_tool_measures_each_op(capsys):
    """tools/attention_bench.py at a small T: a markdown row per T, seconds and tracemalloc's peak per op."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "attention_bench.py"
    spec = importlib.util.spec_from_file_location("attention_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.table(1, 1, (128,), ["today", "flash"])
    assert set(rows["128"]) == {"today", "flash"}
    assert all(r["seconds"] > 0 and r["peak_mb"] > 0 for r in rows["128"].values())
    assert "| 128 | " in capsys.readouterr().out
