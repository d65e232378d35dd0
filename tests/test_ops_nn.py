"""NN ops (softmax, cross_entropy, layer_norm, embedding, dropout, attention, linear) vs NumPy and finite diffs."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad.ops import attention
from helpers import arrays, check_op, seeds, shapes

pytestmark = pytest.mark.usefixtures("float64")

sides = st.integers(1, 4)


# ---- NumPy references ---------------------------------------------------------------------


def log_softmax_ref(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_ref(x, axis=-1):
    return np.exp(log_softmax_ref(x, axis))


def cross_entropy_ref(logits, targets, ignore_index, label_smoothing=0.0):
    rows = np.flatnonzero(targets != ignore_index)
    q = np.eye(logits.shape[1])[targets[rows]] * (1 - label_smoothing) + label_smoothing / logits.shape[1]
    return -(q * log_softmax_ref(logits)[rows]).sum(1).mean()


def layer_norm_ref(x, weight=1.0, bias=0.0, eps=1e-5):
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return xhat * weight + bias


def attention_ref(q, k, v, causal, keep=1.0):
    """softmax(q k^T / sqrt(D)) v; causal: query i sees key j iff j <= i + (Tk - Tq). keep: dropout's multiplier."""
    s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    if causal:
        tq, tk = s.shape[-2:]
        s = np.where(np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq), s, -np.inf)
    return (softmax_ref(s) * keep) @ v


# ---- tests --------------------------------------------------------------------------------

SOFTMAXES = {"softmax": (F.softmax, softmax_ref), "log_softmax": (F.log_softmax, log_softmax_ref)}


@pytest.mark.parametrize("name", SOFTMAXES)
@given(shape=shapes(min_dims=1), data=st.data())
def test_softmax(name, device, shape, data):
    op, ref = SOFTMAXES[name]
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_op(lambda x: op(x, axis), lambda x: ref(x, axis), [data.draw(arrays(shape))], device)


@pytest.mark.parametrize("name", SOFTMAXES)
def test_softmax_is_stable_for_large_logits(name, device):
    op, ref = SOFTMAXES[name]
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -1002.0]])
    np.testing.assert_allclose(op(minigrad.tensor(x, device=device)).numpy(), ref(x), rtol=1e-12)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore_index", [-100, 0])
@given(n=sides, v=st.integers(1, 5), seed=seeds, data=st.data())
def test_cross_entropy(ignore_index, label_smoothing, device, n, v, seed, data):
    rng = np.random.default_rng(seed)
    targets = np.where(rng.random(n) < 0.3, ignore_index, rng.integers(0, v, n))
    assume((targets != ignore_index).any())  # the mean over no targets is NaN, tested below
    t = minigrad.tensor(targets, device=device)
    check_op(
        lambda x: F.cross_entropy(x, t, ignore_index=ignore_index, label_smoothing=label_smoothing),
        lambda x: cross_entropy_ref(x, targets, ignore_index, label_smoothing),
        [data.draw(arrays((n, v)))],
        device,
    )


def test_cross_entropy_with_every_target_ignored_is_nan(device):
    logits = minigrad.zeros(2, 3, device=device)
    assert np.isnan(F.cross_entropy(logits, minigrad.tensor([-100, -100], device=device)).item())


@pytest.mark.parametrize("n_params", [0, 1, 2], ids=["no params", "weight", "weight and bias"])
@given(shape=shapes(min_dims=1), data=st.data())
def test_layer_norm(n_params, device, shape, data):
    xs = [data.draw(arrays(shape))] + [data.draw(arrays(shape[-1:])) for _ in range(n_params)]
    check_op(F.layer_norm, layer_norm_ref, xs, device)


@pytest.mark.parametrize("n_params", [0, 1, 2])
def test_layer_norm_backward_leaves_its_output_alone(device, n_params):
    # LayerNorm keeps xhat and may reuse it in its last backward; without a weight, xhat is the output.
    rng = np.random.default_rng(0)
    x = minigrad.tensor(rng.standard_normal((3, 5)), device=device, requires_grad=True)
    params = [minigrad.tensor(rng.standard_normal(5), device=device, requires_grad=True) for _ in range(n_params)]
    y = F.layer_norm(x, *params)
    before = y.numpy().copy()
    (y * minigrad.tensor(rng.standard_normal((3, 5)), device=device)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), before)


@given(v=sides, c=sides, idx_shape=shapes(max_dims=2, max_side=6), seed=seeds, data=st.data())
def test_embedding(device, v, c, idx_shape, seed, data):
    """Ids repeat often (up to 36 of them, at most 4 rows): their gradients must add up."""
    idx = np.random.default_rng(seed).integers(0, v, idx_shape)
    ids = minigrad.tensor(idx, device=device)
    check_op(lambda w: F.embedding(ids, w), lambda w: w[idx], [data.draw(arrays((v, c)))], device)


def seeded(seed, fn):
    """fn, reseeding minigrad first on every call: the same dropout mask each time, as gradcheck needs."""

    def call(*args):
        minigrad.manual_seed(seed)
        return fn(*args)

    return call


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@given(shape=shapes(), seed=seeds, data=st.data())
def test_dropout(p, device, shape, seed, data):
    x = data.draw(arrays(shape, "nonzero"))  # nonzero, so a zero in the output means dropped
    fn = seeded(seed, lambda x: F.dropout(x, p))
    kept = fn(minigrad.tensor(x, device=device)).numpy() != 0
    check_op(fn, lambda x: np.where(kept, x / (1 - p), 0.0), [x], device)


def test_dropout_drops_a_fraction_p_and_keeps_the_mean(device):
    y = F.dropout(minigrad.ones(100_000, device=device), p=0.3).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.01 and abs(y.mean() - 1.0) < 0.02


@pytest.mark.parametrize("p, training", [(0.0, True), (0.5, False)])
def test_dropout_is_the_identity_when_off(p, training, device):
    x = minigrad.ones(3, device=device)
    assert F.dropout(x, p, training=training) is x


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
@given(
    b=st.integers(1, 2), h=st.integers(1, 2), t=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    d=sides, dv=sides, block=st.integers(1, 6), seed=seeds, data=st.data(),
)
def test_scaled_dot_product_attention(causal, dropout_p, device, b, h, t, d, dv, block, seed, data):
    tq, tk = sorted(t) if causal else t  # causal needs Tq <= Tk; Tq < Tk is the KV-cache case
    q, k, v = (data.draw(arrays(s)) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)])
    fn = seeded(seed, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal))
    # The weights' dropout multiplier: attention draws it as dropout on a (B, H, Tq, Tk) tensor would.
    keep = seeded(seed, lambda: F.dropout(minigrad.ones(b, h, tq, tk, device=device), dropout_p))().numpy()
    default_block, attention.QUERY_BLOCK = attention.QUERY_BLOCK, {device: block}  # small blocks: several per sequence
    try:
        check_op(fn, lambda q, k, v: attention_ref(q, k, v, causal, keep), [q, k, v], device)
    finally:
        attention.QUERY_BLOCK = default_block


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@given(lead=shapes(max_dims=2), n_in=sides, n_out=sides, data=st.data())
def test_linear(bias, device, lead, n_in, n_out, data):
    in_shapes = [(*lead, n_in), (n_out, n_in)] + [(n_out,)] * bias
    check_op(F.linear, lambda x, w, b=0.0: x @ w.T + b, [data.draw(arrays(s)) for s in in_shapes], device)
