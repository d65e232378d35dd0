"""GPT model: nanoGPT's parameter names and shapes, GPT-2 init, dtypes, shapes, gradients and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad import nn
from gpt.model import GPT, GPTConfig, sinusoidal_positions


def tiny_config(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 8, **kw})


def randomize(model: GPT, std: float = 0.3, seed: int = 0) -> GPT:
    """Every parameter (LayerNorm gains and biases included) random, so every gradient is far from 0."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, std, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return model


def nanogpt_shapes(V: int, T: int, L: int, C: int) -> dict[str, tuple[int, ...]]:
    """The state_dict of nanoGPT's GPT (without its causal-mask buffers), name -> shape."""
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C)}
    for i in range(L):
        h = f"transformer.h.{i}."
        shapes.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (3 * C, C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (4 * C, C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (C, 4 * C), h + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,), "lm_head.weight": (V, C)})
    return shapes


# ---- structure -----------------------------------------------------------------------------


def test_parameter_names_and_shapes_are_nanogpts():
    model = GPT(tiny_config(vocab_size=11, block_size=8, n_layer=2, n_embd=8))
    got = {name: t.shape for name, t in model.state_dict().items()}
    assert got == nanogpt_shapes(V=11, T=8, L=2, C=8)
    assert list(got) == list(nanogpt_shapes(V=11, T=8, L=2, C=8))  # same order, too


def test_bias_false_drops_every_bias():
    names = GPT(tiny_config(bias=False)).state_dict()
    assert not [n for n in names if n.endswith(".bias")]
    assert "transformer.h.1.mlp.c_fc.weight" in names


def test_lm_head_is_tied_to_the_token_embedding():
    model = GPT(tiny_config())
    assert model.lm_head.weight is model.transformer.wte.weight
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params)  # the tied matrix is listed once
    assert len(params) == len(model.state_dict()) - 1  # ... though state_dict names it twice
    assert "lm_head.weight" not in dict(model.named_parameters())
    assert model.num_parameters() == sum(int(np.prod(s)) for n, s in nanogpt_shapes(11, 8, 2, 8).items()
                                         if n != "lm_head.weight")


def test_gpt2_init_statistics():
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=4, n_head=4, n_embd=128))
    sd = {name: t.numpy() for name, t in model.state_dict().items()}
    resid_std = 0.02 / math.sqrt(2 * 4)
    expected_std = {
        "transformer.wte.weight": 0.02,
        "transformer.wpe.weight": 0.02,
        "transformer.h.0.attn.c_attn.weight": 0.02,
        "transformer.h.3.mlp.c_fc.weight": 0.02,
        "transformer.h.0.attn.c_proj.weight": resid_std,
        "transformer.h.3.mlp.c_proj.weight": resid_std,
    }
    for name, std in expected_std.items():
        w = sd[name]
        assert abs(w.std() / std - 1) < 0.05, (name, w.std())
        assert abs(w.mean()) < 0.05 * std, name
    for name, w in sd.items():
        if name.endswith(".bias"):
            assert np.all(w == 0), name
        if ".ln_" in name and name.endswith(".weight"):
            assert np.all(w == 1), name


def test_init_goes_by_module_type_not_by_name():
    """GPT initialises Linear and Embedding layers by type (nanoGPT's self.apply(self._init_weights)):
    a LayerNorm under any name keeps what it was made with, a Linear under any name gets N(0, 0.02), bias 0."""
    model = GPT(tiny_config())
    odd = nn.ModuleDict(norm=nn.LayerNorm(64), proj=nn.Linear(64, 64))
    odd.norm.weight.data[...] = 3.0
    odd.apply(model._init_weights)
    assert np.all(odd.norm.weight.numpy() == 3.0) and np.all(odd.proj.bias.numpy() == 0)  # LayerNorm untouched
    assert abs(odd.proj.weight.numpy().std() / 0.02 - 1) < 0.1


def test_forward_hooks_see_each_call_until_removed():
    lin, seen = nn.Linear(3, 2), []
    handle = lin.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
    x = minigrad.randn(4, 3)
    lin(x)
    handle.remove()
    lin(x)
    assert seen == [(lin, (4, 3), (4, 2))]


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
def test_float64_default_dtype_makes_a_float64_model(float64, pos_encoding):
    model = GPT(tiny_config(pos_encoding=pos_encoding))
    assert {str(p.dtype) for p in model.parameters()} == {"float64"}
    logits, loss = model([[1, 2, 3]], [[2, 3, 4]])
    assert logits.dtype == np.float64 and loss.dtype == np.float64


def test_float32_is_the_default():
    model = GPT(tiny_config())
    assert {str(p.dtype) for p in model.parameters()} == {"float32"}
    assert model([[1, 2]])[0].dtype == np.float32


# ---- forward --------------------------------------------------------------------------------


@pytest.mark.parametrize("B, T", [(1, 1), (3, 5), (2, 8)])
def test_forward_shapes(device, B, T):
    model = GPT(tiny_config()).to(device)
    idx = np.random.default_rng(0).integers(0, 11, (B, T))
    logits, loss = model(idx, idx)
    assert logits.shape == (B, T, 11) and loss.shape == () and logits.device == device
    assert math.isfinite(loss.item())
    logits, loss = model(idx)
    assert logits.shape == (B, 1, 11) and loss is None  # without targets: the last position only


def test_initial_loss_is_near_uniform():
    """With GPT-2's small init the logits are ~0, so the loss is ~ln(V)."""
    model = GPT(tiny_config(vocab_size=50))
    rng = np.random.default_rng(0)
    _, loss = model(rng.integers(0, 50, (4, 8)), rng.integers(0, 50, (4, 8)))
    assert abs(loss.item() - math.log(50)) < 0.05


def test_last_position_logits_without_targets_match_full_logits():
    model = GPT(tiny_config())
    idx = [[1, 5, 2, 7]]
    full, _ = model(idx, idx)
    last, _ = model(idx)
    np.testing.assert_allclose(last.numpy()[0, 0], full.numpy()[0, -1], rtol=1e-5, atol=1e-6)


def test_ignore_index_targets_are_left_out_of_the_loss():
    """Target -1 is ignored: the loss is the mean over the other positions only."""
    model = GPT(tiny_config())
    logits, loss_masked = model([[1, 5, 2, 7]], [[5, 2, 7, -1]])
    z = logits.numpy()[0].astype(np.float64)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))  # (T, V)
    assert loss_masked.item() == pytest.approx(-np.mean([logp[0, 5], logp[1, 2], logp[2, 7]]), rel=1e-5)


def test_causal_future_tokens_do_not_change_earlier_logits():
    model = randomize(GPT(tiny_config()))
    a, _ = model([[1, 2, 3, 4]], [[0, 0, 0, 0]])
    b, _ = model([[1, 2, 9, 9]], [[0, 0, 0, 0]])
    np.testing.assert_allclose(a.numpy()[0, :2], b.numpy()[0, :2], rtol=1e-6, atol=1e-7)
    assert not np.allclose(a.numpy()[0, 2:], b.numpy()[0, 2:])


# ---- sinusoidal positions ------------------------------------------------------------------


def test_sinusoidal_table_matches_the_formula():
    table = sinusoidal_positions(block_size=10, n_embd=6)
    pos, i = 7, 2  # channel 2i = 4 and 2i + 1 = 5
    assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)))
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)))
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths work too


def test_sinusoidal_positions_replace_wpe(device):
    model = GPT(tiny_config(pos_encoding="sinusoidal")).to(device)
    assert "transformer.wpe.weight" not in model.state_dict()
    assert model.pos_table.device == device and not model.pos_table.requires_grad
    logits, loss = model([[1, 2, 3]], [[2, 3, 4]])
    assert logits.shape == (1, 3, 11) and math.isfinite(loss.item())
    # the same token at two positions gets different logits: positions are encoded
    logits, _ = model([[4, 4]], [[0, 0]])
    assert not np.allclose(logits.numpy()[0, 0], logits.numpy()[0, 1])


# ---- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
def test_gradcheck_whole_model(device, float64, pos_encoding):
    """Every parameter's gradient of the loss, end to end, against finite differences."""
    model = randomize(GPT(tiny_config(pos_encoding=pos_encoding))).to(device)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))
    params = list(model.parameters())
    assert minigrad.gradcheck(lambda *_: model(idx, targets)[1], params, fast_mode=True)
    assert all(p.grad is not None and float((p.grad.data * p.grad.data).sum()) > 0 for p in params)


def test_gradcheck_catches_a_wrong_gradient(float64):
    """The check above can fail: scale one gradient and gradcheck must object."""
    model = randomize(GPT(tiny_config(n_layer=1)))
    idx = [[1, 2, 3]]
    block = model.transformer.h[0]
    original = block.mlp.forward

    def broken_mlp(x):  # forward unchanged, backward through c_fc doubled
        h = block.mlp.c_fc(x)
        h = h * 2.0 - h.detach()
        return block.mlp.c_proj(block.mlp.gelu(h))

    block.mlp.forward = broken_mlp
    with pytest.raises(minigrad.GradcheckError):
        minigrad.gradcheck(lambda *_: model(idx, [[2, 3, 4]])[1], list(model.parameters()))
    block.mlp.forward = original


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("idx", [[[11, 0]], [[0, -1]]])
def test_ids_outside_the_vocabulary(device, idx):
    model = GPT(tiny_config()).to(device)
    with pytest.raises(IndexError, match="out of range"):
        model(idx)


def test_targets_outside_the_vocabulary():
    with pytest.raises(IndexError, match="out of range"):
        GPT(tiny_config())([[1, 2]], [[1, 11]])


def test_sequence_longer_than_block_size():
    with pytest.raises(ValueError, match="9 tokens is longer than block_size 8"):
        GPT(tiny_config(block_size=8))([[0] * 9])


@pytest.mark.parametrize("idx, targets, match", [
    ([0, 1, 2], None, r"idx must be \(B, T\)"),
    ([[0, 1, 2]], [[1, 2]], "targets must have the shape"),
])
def test_bad_shapes(idx, targets, match):
    with pytest.raises(ValueError, match=match):
        GPT(tiny_config())(idx, targets)


def test_n_embd_not_divisible_by_n_head():
    with pytest.raises(ValueError, match=r"n_embd \(10\) must be divisible by n_head \(3\)"):
        GPTConfig(n_embd=10, n_head=3)


@pytest.mark.parametrize("field", ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"])
@pytest.mark.parametrize("value", [0, -2])
def test_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive integer, got {value}"):
        GPTConfig(**{field: value})


@pytest.mark.parametrize("kw, match", [
    ({"dropout": 1.0}, "dropout must be in"),
    ({"pos_encoding": "rotary"}, "pos_encoding must be"),
    ({"n_layer": 2.0}, "n_layer must be a positive integer"),
])
def test_other_bad_configs(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**kw)
