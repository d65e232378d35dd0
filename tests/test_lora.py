"""LoRA: the layer's gradients by finite differences, only adapters train (optimizer state sized to
them), merge/unmerge, adapter-only state dicts, wrapping a GPT's layers by name, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from gpt.model import GPT, GPTConfig
from minigrad import nn
from minigrad.backend import to_device
from minigrad.nn import LoRALinear, apply_lora, load_lora_state_dict, lora_state_dict, merge_lora, unmerge_lora


def lora_layer(device, r=3, alpha=6.0, dropout=0.0):
    minigrad.manual_seed(0)
    layer = LoRALinear.from_linear(nn.Linear(5, 4).to(device), r=r, alpha=alpha, dropout=dropout)
    rng = np.random.default_rng(1)  # B off zero, so every path carries gradient
    layer.lora_B.data[...] = to_device(rng.normal(size=(4, r)).astype(layer.lora_B.dtype), device)
    return layer


def test_lora_linear_gradients_by_finite_differences(device, float64):
    layer = lora_layer(device)
    x = minigrad.tensor(np.random.default_rng(2).normal(size=(2, 3, 5)), device=device, requires_grad=True)
    layer.weight.requires_grad_(True)  # check the frozen weight's path too
    assert minigrad.gradcheck(lambda x, a, b, w: layer(x), [x, layer.lora_A, layer.lora_B, layer.weight], fast_mode=False)


def test_lora_output_is_base_plus_scaled_low_rank_update(device, float64):
    layer = lora_layer(device, r=2, alpha=5.0)
    x = np.random.default_rng(3).normal(size=(6, 5))
    W, b, A, B = (to_device(p.data, "cpu") for p in (layer.weight, layer.bias, layer.lora_A, layer.lora_B))
    expected = x @ W.T + b + 2.5 * (x @ A.T @ B.T)
    np.testing.assert_allclose(layer(minigrad.tensor(x, device=device)).numpy(), expected, rtol=1e-12)


def test_starts_equal_to_the_wrapped_layer(device):
    minigrad.manual_seed(0)
    base = nn.Linear(5, 4).to(device)
    x = minigrad.tensor(np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32), device=device)
    before = base(x).numpy()
    layer = LoRALinear.from_linear(base, r=2)
    assert layer.weight is base.weight and not layer.weight.requires_grad and not layer.bias.requires_grad
    np.testing.assert_array_equal(layer(x).numpy(), before)  # B starts at zero


def test_merge_is_exact_and_unmerge_restores(device, float64):
    layer = lora_layer(device)
    x = minigrad.tensor(np.random.default_rng(4).normal(size=(2, 5)), device=device)
    W0 = to_device(layer.weight.data, "cpu").copy()
    adapted = layer(x).numpy()
    layer.merge()
    A, B = to_device(layer.lora_A.data, "cpu"), to_device(layer.lora_B.data, "cpu")
    np.testing.assert_array_equal(to_device(layer.weight.data, "cpu"), W0 + 2.0 * (B @ A))  # W + (alpha/r) B A
    np.testing.assert_allclose(layer(x).numpy(), adapted, rtol=1e-12, atol=1e-14)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    np.testing.assert_allclose(to_device(layer.weight.data, "cpu"), W0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(layer(x).numpy(), adapted, rtol=1e-12, atol=1e-14)


def test_built_directly_only_the_adapters_train(device):
    """LoRALinear(in, out) freezes its own weight and bias, as from_linear does: only A and B train."""
    layer = LoRALinear(5, 4, r=2).to(device)
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]  # not weight, bias
    x = minigrad.tensor(np.random.default_rng(5).normal(size=(3, 5)).astype(np.float32), device=device)
    layer(x).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is None
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None


def test_lora_dropout_drops_the_adapter_input_in_training_only(device, float64):
    """With dropout p, training mode feeds the adapters dropout(x) (zeros, the rest scaled by 1/(1-p));
    the frozen path sees x, and eval mode is the undropped output."""
    layer = lora_layer(device, r=2, alpha=5.0, dropout=0.5)
    x = np.random.default_rng(6).normal(size=(8, 5))
    xt = minigrad.tensor(x, device=device)
    W, b, A, B = (to_device(p.data, "cpu") for p in (layer.weight, layer.bias, layer.lora_A, layer.lora_B))
    minigrad.manual_seed(7)
    dropped = minigrad.functional.dropout(xt, 0.5).numpy()  # the mask the layer draws from the same seed
    assert set(np.unique(np.round(dropped / x, 12))) == {0.0, 2.0}  # some dropped, the rest times 1/(1-p)
    minigrad.manual_seed(7)
    trained = layer(xt).numpy()
    np.testing.assert_allclose(trained, x @ W.T + b + 2.5 * (dropped @ A.T @ B.T), rtol=1e-12)
    evaluated = layer.eval()(xt).numpy()
    np.testing.assert_allclose(evaluated, x @ W.T + b + 2.5 * (x @ A.T @ B.T), rtol=1e-12)
    assert not np.allclose(trained, evaluated)


def small_gpt():
    minigrad.manual_seed(0)
    return GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16))


def test_apply_lora_to_gpt_only_adapters_train_and_optimizer_state_matches(device):
    model = small_gpt().to(device)
    x = np.random.default_rng(0).integers(0, 17, size=(2, 8))
    before_logits = model(x, x)[0].numpy()
    frozen = {n: p.numpy().copy() for n, p in model.named_parameters()}
    names = apply_lora(model, ["c_attn", "attn.c_proj"], r=2, alpha=4)
    assert names == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                     "transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj"]
    assert isinstance(model.transformer.h[1].attn.c_attn, LoRALinear)
    assert not isinstance(model.transformer.h[0].mlp.c_proj, LoRALinear)
    np.testing.assert_array_equal(model(x, x)[0].numpy(), before_logits)  # B = 0: the same model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{m}.{ab}" for m in names for ab in ("lora_A", "lora_B")}
    n_adapter = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_adapter == 2 * (2 * (16 + 48) + 2 * (16 + 16))  # per layer: r (in + out) for c_attn and c_proj
    opt = model.configure_optimizer(0.1, 1e-2, (0.9, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(x, x)[1].backward()
        opt.step()
    state = opt.state_dict()["state"]
    assert sum(s[n].size for s in state.values() for n in ("exp_avg", "exp_avg_sq")) == 2 * n_adapter  # Adam's m and v, adapters only
    for n, p in model.named_parameters():
        if n in frozen:
            np.testing.assert_array_equal(p.numpy(), frozen[n], err_msg=n)
    assert not np.allclose(model(x, x)[0].numpy(), before_logits)  # the adapters learned something
    # merged: one model with plain weights, the same outputs
    with minigrad.no_grad():
        adapted = model.eval()(x, x)[0].numpy()
        merge_lora(model)
        np.testing.assert_allclose(model(x, x)[0].numpy(), adapted, rtol=1e-5, atol=1e-6)
        unmerge_lora(model)
        np.testing.assert_allclose(model(x, x)[0].numpy(), adapted, rtol=1e-5, atol=1e-6)


def test_adapter_only_state_dict_round_trip():
    model = small_gpt()
    apply_lora(model, ["c_attn"], r=4)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            m.lora_B.data[...] = np.random.default_rng(0).normal(size=m.lora_B.shape)
    sd = lora_state_dict(model)
    assert sorted(sd) == [f"transformer.h.{i}.attn.c_attn.lora_{ab}" for i in range(2) for ab in "AB"]
    other = small_gpt()  # the same pretrained weights (same seed), fresh adapters
    apply_lora(other, ["c_attn"], r=4)
    load_lora_state_dict(other, {k: v.numpy() for k, v in sd.items()})
    x = np.arange(8)[None] % 17
    np.testing.assert_array_equal(other(x, x)[0].numpy(), model(x, x)[0].numpy())
    with pytest.raises(KeyError, match="missing adapters"):
        load_lora_state_dict(other, {})
    with pytest.raises(ValueError, match="no LoRA layers"):
        load_lora_state_dict(small_gpt(), sd)
    # the full state dict keeps the pretrained names: a base checkpoint loads into the adapted model
    other.load_state_dict(small_gpt().state_dict(), strict=False)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"targets": ["c_attn"], "r": 0}, ValueError, "rank r must be a positive integer, got 0"),
        ({"targets": ["c_attn"], "r": -2}, ValueError, "rank r must be a positive integer"),
        ({"targets": ["q_proj"]}, ValueError, r"no Linear layer matches \['q_proj'\]; the model's Linear layers are named"),
        ({"targets": ["ln_1"]}, TypeError, "is a LayerNorm, not a Linear"),
    ],
)
def test_bad_lora_arguments(kw, err, match):
    model = small_gpt()
    with pytest.raises(err, match=match):
        apply_lora(model, **kw)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # nothing half-applied
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="rank r"):
        LoRALinear(4, 4, r=0)
