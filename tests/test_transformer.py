"""nn.MultiheadAttention and the nn.Transformer* modules: PyTorch's state dicts load and give the same
outputs, attention weights and gradients (inputs and every parameter) in float64; finite differences
through the whole stack on every backend; bad input named."""
import numpy as np
import pytest

import minigrad
from minigrad import nn
from helpers import make_array, need

pytestmark = [pytest.mark.usefixtures("float64"), pytest.mark.filterwarnings("ignore::UserWarning")]  # torch on mixed mask types

E, H, FF = 8, 2, 12  # d_model, heads, feed-forward width: small, so each case takes milliseconds
N, S, T = 3, 5, 4  # batch, source length, target length


def arr(seed, *shape):
    return make_array(seed, shape)


def padding(n, length, seed):
    """(n, length) bool, True = padding, never the first position (a query must see some key: torch gives NaN)."""
    pad = np.random.default_rng(seed).random((n, length)) < 0.4
    pad[:, 0] = False
    return pad


def causal_float(t):
    return np.where(np.tri(t, t, dtype=bool), 0.0, -np.inf)


def compare_with_torch(make_ours, make_theirs, call, inputs, device, n_outputs=1):
    """Build torch's module, load its state dict into ours, run `call(module, *inputs, lib)` in both,
    backward the same random cotangents, and compare outputs, input grads and every parameter's grad."""
    torch = need("torch")
    torch.manual_seed(0)
    theirs = make_theirs(torch.nn).double()
    ours = make_ours(nn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})  # strict: same names
    ours.to(device)
    grad = [a is not None and a.dtype.kind == "f" and not np.isneginf(a).any() for a in inputs]  # not -inf masks
    t_in = [None if a is None else torch.tensor(a, requires_grad=g) for a, g in zip(inputs, grad)]
    m_in = [None if a is None else minigrad.tensor(a, device=device, requires_grad=g) for a, g in zip(inputs, grad)]
    t_out = as_tuple(call(theirs, *t_in, lib=torch))
    m_out = as_tuple(call(ours, *m_in, lib=minigrad))
    assert len(m_out) == len(t_out) == n_outputs
    rng = np.random.default_rng(1)
    t_loss, m_loss = 0, 0
    for a, b in zip(m_out, t_out):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
        u = rng.standard_normal(a.shape)
        t_loss = t_loss + (b * torch.tensor(u)).sum()
        m_loss = m_loss + (a * minigrad.tensor(u, device=device)).sum()
    t_loss.backward()
    m_loss.backward()
    for a, b in zip(m_in, t_in):
        if b is not None and b.requires_grad:  # float masks included
            assert (a.grad is None) == (b.grad is None)  # inputs a call does not use get none
        if b is not None and b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
    t_params = dict(theirs.named_parameters())
    m_params = dict(ours.named_parameters())
    assert m_params.keys() == t_params.keys()
    for name, p in m_params.items():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def as_tuple(x):
    return tuple(y for y in x if y is not None) if isinstance(x, tuple) else (x,)


# ---- MultiheadAttention --------------------------------------------------------------------------

MHA_CASES = {
    # name: (constructor kwargs, forward kwargs, q/k/v: "self", "kv" (key is value) or "all" (three inputs))
    "self-attention, padding + float mask, weights": ({}, dict(kpm=True, mask="float"), "self"),
    "cross-attention, key is value": ({}, dict(kpm=True), "kv"),
    "three inputs, no bias, per-head bool mask": (dict(bias=False), dict(mask="bool3d", average_attn_weights=False), "all"),
    "batch_first, bool mask, no weights": (dict(batch_first=True), dict(mask="bool", need_weights=False), "self"),
    "is_causal hint (fast path)": ({}, dict(mask="causal", is_causal=True, need_weights=False), "self"),
    "unbatched": ({}, dict(mask="float", unbatched=True), "kv"),
}


@pytest.mark.parametrize("name", MHA_CASES)
def test_multihead_attention_matches_torch(name, device):
    ctor, fwd, inputs = MHA_CASES[name]
    fwd = dict(fwd)
    kpm, mask_kind, unbatched = fwd.pop("kpm", False), fwd.pop("mask", None), fwd.pop("unbatched", False)
    L = S if inputs == "self" else T
    batch_first = ctor.get("batch_first", False)

    def x(seed, length):
        if unbatched:
            return arr(seed, length, E)
        return arr(seed, N, length, E) if batch_first else arr(seed, length, N, E)

    q, k, v = x(1, L), x(2, S), x(3, S)
    rng = np.random.default_rng(4)
    attn_mask = {
        None: None,
        "float": rng.standard_normal((L, S)),
        "bool": rng.random((L, S)) < 0.3,
        "bool3d": rng.random((N * H, L, S)) < 0.3,
        "causal": causal_float(S),
    }[mask_kind]
    if attn_mask is not None and attn_mask.dtype == bool:
        attn_mask[..., 0] = False  # every query sees key 0
    pad = padding(N, S, 5) if kpm else None

    def call(m, q, k, v, attn_mask, pad, lib):
        key, value = {"self": (q, q), "kv": (k, k), "all": (k, v)}[inputs]
        return m(q, key, value, key_padding_mask=pad, attn_mask=attn_mask, **fwd)

    compare_with_torch(lambda lib: lib.MultiheadAttention(E, H, **ctor), lambda lib: lib.MultiheadAttention(E, H, **ctor),
                       call, [q, k, v, attn_mask, pad], device, n_outputs=1 + fwd.get("need_weights", True))


def test_is_causal_hint_in_cross_attention_applies_the_float_mask(device):
    """With L != S the is_causal hint does not take the causal fast path (whose diagonal sits bottom-right):
    the float attn_mask given is added, so the output equals is_causal=False with the same mask."""
    mha = nn.MultiheadAttention(E, H).to(device)
    q, kv = minigrad.tensor(arr(1, T, N, E), device=device), minigrad.tensor(arr(2, S, N, E), device=device)
    mask = np.where(np.tri(T, S, dtype=bool), 0.0, -np.inf) + np.random.default_rng(3).standard_normal((T, S))
    mask = minigrad.tensor(mask, device=device)  # top-left causal (T, S), plus a float bias
    hinted, _ = mha(q, kv, kv, attn_mask=mask, is_causal=True, need_weights=False)
    plain, _ = mha(q, kv, kv, attn_mask=mask, need_weights=False)
    assert hinted.shape == (T, N, E)
    np.testing.assert_allclose(hinted.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)


# ---- layers, stacks and the whole Transformer -----------------------------------------------------

LAYER_KW = dict(dim_feedforward=FF, dropout=0.0)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation, device):
    kw = dict(LAYER_KW, norm_first=norm_first, activation=activation)
    src, mask = arr(1, S, N, E), np.random.default_rng(2).standard_normal((S, S))
    compare_with_torch(lambda lib: lib.TransformerEncoderLayer(E, H, **kw), lambda lib: lib.TransformerEncoderLayer(E, H, **kw),
                       lambda m, src, mask, pad, lib: m(src, src_mask=mask, src_key_padding_mask=pad),
                       [src, mask, padding(N, S, 3)], device)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_decoder_layer_matches_torch(norm_first, device):
    kw = dict(LAYER_KW, norm_first=norm_first, batch_first=True, bias=not norm_first)
    tgt, memory = arr(1, N, T, E), arr(2, N, S, E)
    memory_mask = np.random.default_rng(4).random((T, S)) < 0.3
    memory_mask[:, 0] = False

    def call(m, tgt, memory, tgt_mask, memory_mask, tgt_pad, mem_pad, lib):
        return m(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_pad,
                 memory_key_padding_mask=mem_pad)

    compare_with_torch(lambda lib: lib.TransformerDecoderLayer(E, H, **kw), lambda lib: lib.TransformerDecoderLayer(E, H, **kw),
                       call, [tgt, memory, causal_float(T), memory_mask, padding(N, T, 5), padding(N, S, 6)], device)


def test_encoder_and_decoder_stacks_match_torch(device):
    def make(lib):
        enc = lib.TransformerEncoder(lib.TransformerEncoderLayer(E, H, **LAYER_KW), 2, lib.LayerNorm(E))
        dec = lib.TransformerDecoder(lib.TransformerDecoderLayer(E, H, **LAYER_KW), 2, lib.LayerNorm(E))
        return lib.ModuleDict({"enc": enc, "dec": dec})

    def call(m, src, tgt, tgt_mask, src_pad, lib):
        memory = m["enc"](src, src_key_padding_mask=src_pad)
        return m["dec"](tgt, memory, tgt_mask=tgt_mask, memory_key_padding_mask=src_pad)  # the causal mask is detected

    compare_with_torch(make, make, call, [arr(1, S, N, E), arr(2, T, N, E), causal_float(T), padding(N, S, 3)], device)


@pytest.mark.parametrize("layout", ["(T, N, E)", "batch_first", "unbatched"])
def test_transformer_matches_torch(layout, device):
    batch_first = layout == "batch_first"
    kw = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=2, batch_first=batch_first, **LAYER_KW)
    shape = {"(T, N, E)": lambda t: (t, N, E), "batch_first": lambda t: (N, t, E), "unbatched": lambda t: (t, E)}[layout]
    src, tgt = arr(1, *shape(S)), arr(2, *shape(T))
    src_pad, tgt_pad = padding(N, S, 3), padding(N, T, 4)
    if layout == "unbatched":
        src_pad, tgt_pad = src_pad[0], tgt_pad[0]

    def call(m, src, tgt, tgt_mask, src_pad, tgt_pad, lib):
        return m(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                 memory_key_padding_mask=src_pad)

    compare_with_torch(lambda lib: lib.Transformer(**kw), lambda lib: lib.Transformer(**kw), call,
                       [src, tgt, causal_float(T), src_pad, tgt_pad], device)


def test_state_dict_names_and_shapes_are_torchs():
    torch = need("torch")
    kw = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=FF)
    theirs = {k: tuple(v.shape) for k, v in torch.nn.Transformer(**kw).state_dict().items()}
    ours = {k: v.shape for k, v in nn.Transformer(**kw).state_dict().items()}
    assert ours == theirs
    assert ours["encoder.layers.1.self_attn.in_proj_weight"] == (3 * E, E)


def test_generate_square_subsequent_mask_is_torchs():
    torch = need("torch")
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(5).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())


# ---- finite differences through the whole stack, every backend ------------------------------------


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_transformer_gradients_by_finite_differences(norm_first, device):
    minigrad.manual_seed(0)
    model = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=6,
                           dropout=0.0, norm_first=norm_first, activation="gelu").to(device)
    src = minigrad.tensor(arr(1, 3, 2, 4), device=device, requires_grad=True)
    tgt = minigrad.tensor(arr(2, 2, 2, 4), device=device, requires_grad=True)
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(2, device=device)
    pad = minigrad.tensor(np.array([[False, False, True], [False, True, True]]), device=device)

    def fn(src, tgt, *params):
        return model(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=pad, memory_key_padding_mask=pad)

    assert minigrad.gradcheck(fn, [src, tgt, *model.parameters()])


def test_a_query_that_sees_no_key_gives_0_not_nan(device):
    mha = nn.MultiheadAttention(E, H, batch_first=True).to(device)
    x = minigrad.tensor(arr(1, 2, S, E), device=device, requires_grad=True)
    pad = np.zeros((2, S), dtype=bool)
    pad[1] = True  # batch row 1 is all padding
    out, w = mha(x, x, x, key_padding_mask=minigrad.tensor(pad, device=device))
    out.sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_array_equal(w.numpy()[1], 0.0)


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_named(device):
    with pytest.raises(ValueError, match=r"MultiheadAttention: embed_dim \(10\) must be divisible by num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)
    mha = nn.MultiheadAttention(E, H).to(device)  # (L, N, E)
    x = minigrad.tensor(arr(1, S, N, E), device=device)
    with pytest.raises(ValueError, match=r"attn_mask has shape \(4, 4\), expected \(L, S\) = \(5, 5\) or "
                                         r"\(N \* num_heads, L, S\) = \(6, 5, 5\)"):
        mha(x, x, x, attn_mask=minigrad.zeros(4, 4, device=device))
    with pytest.raises(TypeError, match=r"MultiheadAttention: attn_mask must be bool or float64"):
        mha(x, x, x, attn_mask=minigrad.tensor(np.zeros((S, S), dtype=np.int64), device=device))
    with pytest.raises(ValueError, match=r"key_padding_mask has shape \(3, 4\), expected \(N, S\) = \(3, 5\)"):
        mha(x, x, x, key_padding_mask=minigrad.tensor(np.zeros((N, 4), dtype=bool), device=device))
    # batch-first data (N, S, E) given to a module that expects (S, N, E): its padding mask (N, S) gives it away
    xb = minigrad.tensor(arr(2, N, S, E), device=device)
    with pytest.raises(ValueError, match=r"batch_first=False the inputs are \(L, N, E\): is the batch on the other axis"):
        mha(xb, xb, xb, key_padding_mask=minigrad.tensor(np.zeros((N, S), dtype=bool), device=device))
    with pytest.raises(ValueError, match=r"query \(5, 3, 8\) and key \(3, 5, 8\) differ in the batch axis \(1\)"):
        mha(x, xb, xb)
    with pytest.raises(ValueError, match=r"query has shape \(5, 3, 7\), expected \(L, N, E\)"):
        mha(minigrad.zeros(S, N, 7, device=device), x, x)
    with pytest.raises(RuntimeError, match=r"is_causal=True .* needs attn_mask"):
        mha(x, x, x, is_causal=True)
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=FF).to(device)
    with pytest.raises(ValueError, match=r"Transformer: the batch sizes of src \(5, 3, 8\) and tgt \(3, 4, 8\) differ in axis 1"):
        model(x, minigrad.tensor(arr(3, N, T, E), device=device))
