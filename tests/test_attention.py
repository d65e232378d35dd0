"""Masked attention: the fused op against NumPy and finite differences, against its simple twin, and against PyTorch.

Masks are drawn at random: boolean (True = may attend) or float (added to the scores, some
entries -inf), of any shape that broadcasts to (B, H, Tq, Tk), with Tq != Tk, often with
queries that see no key at all (output 0, gradient 0).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad.ops import attention
from minigrad.ops.attention import scaled_dot_product_attention_simple
from helpers import check_op, make_array, need, seeds

pytestmark = pytest.mark.usefixtures("float64")


def attention_ref(q, k, v, mask=None, causal=False, keep=1.0):
    """NumPy: softmax(q k^T / sqrt(D) + mask) v; mask additive; queries that see no key give 0."""
    s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    tq, tk = s.shape[-2:]
    if causal:
        s = np.where(np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq), s, -np.inf)
    if mask is not None:
        s = s + mask
    dead = np.isneginf(s).all(-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = np.where(dead, 0.0, p / p.sum(-1, keepdims=True))
    return (p * keep) @ v


def additive(mask):
    return np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask


@st.composite
def mask_case(draw, kind):
    """(q, k, v shapes, mask array): a mask of `kind` whose shape broadcasts to (B, H, Tq, Tk)."""
    b, h, tq, tk, d, dv = (draw(st.integers(1, n)) for n in (2, 2, 6, 6, 3, 3))
    full = (b, h, tq, tk)
    shape = tuple(n if draw(st.booleans()) else 1 for n in full)[draw(st.integers(0, 2)) :]  # fewer dims, size-1 dims
    rng = np.random.default_rng(draw(seeds))
    allowed = rng.random(shape) < draw(st.sampled_from([0.3, 0.7, 1.0]))  # 0.3: many queries see nothing
    if kind == "bool":
        mask = allowed
    else:
        mask = np.where(allowed, rng.standard_normal(shape), -np.inf if kind == "float -inf" else -1.0)
    return [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)], mask


MASK_KINDS = ["bool", "float", "float -inf"]


@st.composite
def qkv_shapes(draw, causal, same_t=False):
    """q, k, v shapes without a mask; causal needs Tq <= Tk (Tq < Tk is the KV-cache case)."""
    b, h, d, dv = (draw(st.integers(1, n)) for n in (2, 2, 3, 3))
    tq, tk = sorted(draw(st.tuples(st.integers(1, 6), st.integers(1, 6))))
    tq = tk if same_t else tq
    return [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)] if causal else [(b, h, tk, d), (b, h, tq, d), (b, h, tq, dv)]


def draw_qkv(data, shapes):
    return [make_array(data.draw(seeds), s) for s in shapes]


@pytest.mark.parametrize("kind", MASK_KINDS)
@given(case=st.data(), dropout_p=st.sampled_from([0.0, 0.3]), seed=seeds)
def test_masked_attention_against_numpy_and_finite_differences(kind, device, case, dropout_p, seed):
    shapes, mask = case.draw(mask_case(kind))
    q, k, v = draw_qkv(case, shapes)
    b, h, tq, _ = shapes[0]
    tk = shapes[1][2]
    minigrad.manual_seed(seed)
    keep = F.dropout(minigrad.ones(b, h, tq, tk, device=device), dropout_p).numpy()

    def fn(q, k, v, *m):
        minigrad.manual_seed(seed)
        m = m[0] if m else minigrad.tensor(mask, device=device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=dropout_p)

    if kind == "bool":  # a constant
        check_op(fn, lambda q, k, v: attention_ref(q, k, v, additive(mask), keep=keep), [q, k, v], device)
    else:  # the float mask gets a gradient too, as in PyTorch
        check_op(fn, lambda q, k, v, m: attention_ref(q, k, v, m, keep=keep), [q, k, v, mask], device)


def run(fn, arrays, device, grad_of, cotangent_seed=0):
    """fn's output and the gradients of the inputs listed in grad_of, for a random cotangent."""
    xs = [minigrad.tensor(a, device=device, requires_grad=g) for a, g in zip(arrays, grad_of)]
    out = fn(*xs)
    out.backward(minigrad.tensor(np.random.default_rng(cotangent_seed).standard_normal(out.shape), device=device))
    return [out.numpy()] + [x.grad.numpy() for x, g in zip(xs, grad_of) if g]


@pytest.mark.parametrize("kind", MASK_KINDS + ["causal", "none"])
@given(case=st.data(), dropout_p=st.sampled_from([0.0, 0.3]), block=st.integers(1, 4), seed=seeds)
def test_fused_attention_equals_its_simple_twin(kind, device, case, dropout_p, block, seed):
    """Value and every gradient, small query blocks included (several blocks per sequence)."""
    if kind in MASK_KINDS:
        shapes, mask = case.draw(mask_case(kind))
    else:
        shapes, mask = case.draw(qkv_shapes(causal=kind == "causal")), None
    arrays = draw_qkv(case, shapes) + ([mask] if mask is not None else [])
    grad_of = [True, True, True] + ([mask.dtype != bool] if mask is not None else [])

    def with_(op):
        def fn(q, k, v, *m):
            minigrad.manual_seed(seed)
            return op(q, k, v, attn_mask=m[0] if m else None, dropout_p=dropout_p, is_causal=kind == "causal")
        return fn

    default_block, attention.QUERY_BLOCK = attention.QUERY_BLOCK, {device: block}
    try:
        fused = run(with_(F.scaled_dot_product_attention), arrays, device, grad_of)
    finally:
        attention.QUERY_BLOCK = default_block
    simple = run(with_(scaled_dot_product_attention_simple), arrays, device, grad_of)
    for a, b in zip(fused, simple):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_simple_twin_passes_finite_differences(device):
    rng = np.random.default_rng(0)
    q, k, v, m = rng.standard_normal((2, 1, 3, 2)), rng.standard_normal((2, 1, 4, 2)), rng.standard_normal((2, 1, 4, 3)), rng.standard_normal((1, 3, 4))
    m[0, 1] = -np.inf  # one query sees nothing
    check_op(lambda q, k, v, m: scaled_dot_product_attention_simple(q, k, v, attn_mask=m),
             lambda q, k, v, m: attention_ref(q, k, v, m), [q, k, v, m], device)


@pytest.mark.parametrize("kind", ["bool", "float -inf"])
def test_a_query_that_sees_no_key_gives_output_0_and_gradient_0(kind, device):
    rng = np.random.default_rng(1)
    q, k, v = (minigrad.tensor(rng.standard_normal(s), device=device, requires_grad=True) for s in [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)])
    allowed = np.ones((3, 5), dtype=bool)
    allowed[1] = False  # query 1 may look at nothing
    mask = minigrad.tensor(allowed if kind == "bool" else np.where(allowed, 0.0, -np.inf), device=device)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    (out * minigrad.tensor(rng.standard_normal(out.shape), device=device)).sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(q.grad.numpy()).all()
    np.testing.assert_array_equal(out.numpy()[:, :, 1], 0.0)
    np.testing.assert_array_equal(q.grad.numpy()[:, :, 1], 0.0)
    assert np.abs(q.grad.numpy()[:, :, [0, 2]]).min() > 0  # the others are untouched


# ---- PyTorch parity ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MASK_KINDS + ["causal", "none"])
@given(case=st.data())
def test_masked_attention_matches_torch(kind, device, case):
    torch = need("torch")
    if kind in MASK_KINDS:
        shapes, mask = case.draw(mask_case(kind))
        mask = mask.copy()  # torch gives NaN where a query sees no key, minigrad 0: let every query see key 0
        mask[..., 0] = True if kind == "bool" else np.where(np.isneginf(mask[..., 0]), 0.0, mask[..., 0])
    else:  # torch's is_causal puts the triangle top-left, minigrad's bottom-right: equal for Tq = Tk
        shapes, mask = case.draw(qkv_shapes(causal=True, same_t=kind == "causal")), None
    arrays = draw_qkv(case, shapes) + ([mask] if mask is not None else [])
    grad_of = [True, True, True] + ([mask.dtype != bool] if mask is not None else [])
    causal = kind == "causal"
    ours = run(lambda q, k, v, *m: F.scaled_dot_product_attention(q, k, v, attn_mask=m[0] if m else None, is_causal=causal),
               arrays, device, grad_of)
    ts = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grad_of)]
    out = torch.nn.functional.scaled_dot_product_attention(*ts[:3], attn_mask=ts[3] if mask is not None else None,
                                                           is_causal=causal)
    out.backward(torch.tensor(np.random.default_rng(0).standard_normal(out.shape)))
    theirs = [out.detach().numpy()] + [t.grad.numpy() for t, g in zip(ts, grad_of) if g]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---- bad input ------------------------------------------------------------------------------


def test_masks_of_the_wrong_shape_or_dtype_name_the_op_and_the_shapes(device):
    q, k = minigrad.zeros(2, 3, 4, 5, device=device), minigrad.zeros(2, 3, 6, 5, device=device)
    sdpa = F.scaled_dot_product_attention
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: attn_mask of shape \(4, 4\) does not "
                                         r"broadcast to \(B, H, Tq, Tk\) = \(2, 3, 4, 6\)"):
        sdpa(q, k, k, attn_mask=minigrad.ones(4, 4, device=device).astype(bool))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(1, 1, 1, 4, 6\) does not broadcast"):
        sdpa(q, k, k, attn_mask=minigrad.ones(1, 1, 1, 4, 6, device=device).astype(bool))
    with pytest.raises(TypeError, match=r"scaled_dot_product_attention: attn_mask must be bool or float64"):
        sdpa(q, k, k, attn_mask=minigrad.tensor(np.ones((4, 6), dtype=np.int64), device=device))
    with pytest.raises(TypeError, match=r"attn_mask must be bool or float64 \(the query's dtype\), got float32"):
        sdpa(q, k, k, attn_mask=minigrad.ones(4, 6, device=device).astype(np.float32))
    with pytest.raises(TypeError, match=r"attn_mask must be a Tensor"):
        sdpa(q, k, k, attn_mask=np.ones((4, 6), dtype=bool))
    with pytest.raises(ValueError, match=r"attn_mask or is_causal=True, not both"):
        sdpa(q, k, k, attn_mask=minigrad.ones(4, 6, device=device).astype(bool), is_causal=True)
