"""Mixture of experts: dispatch and combine by finite differences and against their simple twins,
the router's gradient through the top-k weights, capacity drops, the balance and z losses against
a hand computation, config errors, and a tiny MoE GPT that trains, samples with the KV cache and
keeps out of GPT-2's export."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from gpt.model import GPT, MLP, GPTConfig
from gpt.moe import MoE, capacity, route
from gpt.sample import generate
from minigrad.backend import to_device
from minigrad.ops.experts import combine, combine_simple, dispatch, dispatch_simple

ROOT = Path(__file__).resolve().parents[1]

# N = 5 tokens, k = 2 choices: 7 of the 10 (token, choice) pairs kept, in an expert's order
ASSIGNMENT = np.array([3, 0, 8, 5, 9, 2, 6])


def assignment(device: str) -> minigrad.Tensor:
    return minigrad.tensor(ASSIGNMENT, device=device)


def test_dispatch_and_combine_by_finite_differences(device, float64):
    rng = np.random.default_rng(0)
    x = minigrad.tensor(rng.normal(size=(5, 3)), device=device, requires_grad=True)
    ys = minigrad.tensor(rng.normal(size=(7, 3)), device=device, requires_grad=True)
    w = minigrad.tensor(rng.uniform(0.1, 1.0, (5, 2)), device=device, requires_grad=True)
    a = assignment(device)
    assert minigrad.gradcheck(lambda x: dispatch(x, a, 2), [x], fast_mode=False)
    assert minigrad.gradcheck(lambda ys, w: combine(ys, w, a), [ys, w], fast_mode=False)


def test_dispatch_and_combine_equal_their_simple_twins(device, float64):
    rng = np.random.default_rng(1)
    arrays = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)), rng.uniform(0.1, 1.0, (5, 2))
    a = assignment(device)
    for fused, simple in ((lambda x, ys, w: combine(dispatch(x, a, 2) * ys, w, a),
                           lambda x, ys, w: combine_simple(dispatch_simple(x, a, 2) * ys, w, a)),):
        results = []
        for fn in (fused, simple):
            ts = [minigrad.tensor(v, device=device, requires_grad=True) for v in arrays]
            out = fn(*ts)
            out.backward(minigrad.tensor(np.random.default_rng(2).normal(size=out.shape), device=device))
            results.append([out.numpy()] + [t.grad.numpy() for t in ts])
        for got, want in zip(*results):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_dropped_choice_adds_nothing_and_gets_no_gradient(float64):
    """ASSIGNMENT keeps both choices of tokens 1 (a = 2, 3) and 4 (a = 8, 9), and drops token 0's
    second (a = 1), token 2's first (a = 4) and token 3's second (a = 7): their weights get gradient 0.
    Weight a + 1 for pair a, ys all ones: y[n] is the sum of token n's kept weights."""
    ys = minigrad.tensor(np.ones((7, 3)), requires_grad=True)
    w = minigrad.tensor(np.arange(1.0, 11.0).reshape(5, 2), requires_grad=True)
    y = combine(ys, w, assignment("cpu"))
    np.testing.assert_array_equal(y.numpy()[:, 0], [1, 3 + 4, 6, 7, 9 + 10])  # the kept weights, summed per token
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy().reshape(-1) == 0, [0, 1, 0, 0, 1, 0, 0, 1, 0, 0])


def test_route_keeps_first_choices_first_and_earlier_tokens_first():
    choice = np.array([[0, 1], [0, 1], [0, 2], [1, 0]])  # (N 4, k 2)
    a, kept, routed = route(choice, 3, cap=2)
    assert routed == [4, 3, 1]
    # expert 0: first choices of tokens 0, 1, 2 (a = 0, 2, 4), capacity 2 keeps tokens 0 and 1, and token
    # 3's second choice (a = 7) comes after every first choice: dropped. Expert 1: token 3's first choice
    # (a = 6) before tokens 0 and 1's second ones (a = 1, 3): 6 and 1 kept. Expert 2: token 2's second.
    assert kept == [2, 2, 1]
    assert a.tolist() == [0, 2, 6, 1, 5]
    a_all, kept_all, _ = route(choice, 3, cap=None)
    assert kept_all == routed and sorted(a_all.tolist()) == list(range(8))


def test_capacity_is_the_ceiling_of_factor_tokens_k_over_experts():
    assert capacity(8, 3, 1, 1.0) == 3 and capacity(8, 3, 2, 1.25) == 7 and capacity(1, 4, 1, 1.25) == 1


def moe_config(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 10, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 6, "n_expert": 3,
                        "expert_hidden": 5, **kw})


def moe_layer(device: str, seed: int = 0, **kw) -> MoE:
    layer = MoE(moe_config(**kw))
    rng = np.random.default_rng(seed)
    for p in layer.parameters():  # far from 0.02's init: router probabilities well apart, experts distinct
        p.data[...] = rng.normal(0.0, 0.7, p.shape)
    return layer.to(device)


def margins(layer: MoE, x: minigrad.Tensor, k: int) -> float:
    """The smallest gap, over tokens, between the k-th and (k+1)-th router probability: far from 0,
    a finite-difference step cannot change which experts are chosen."""
    p = np.sort(minigrad.functional.softmax(layer.router(x.reshape(-1, x.shape[-1]))).numpy(), axis=-1)[:, ::-1]
    return float((p[:, k - 1] - p[:, k]).min())


@pytest.mark.parametrize("k, factor", [(1, 1.25), (2, 1.0), (1, 0.5)])
def test_moe_gradients_through_router_topk_weights_and_experts(device, float64, k, factor):
    """The layer's output y by finite differences in x, the router's weight and every expert's
    weights: the router's gradient comes only through the top-k weights (the choice itself is
    constant near these inputs); factor 0.5 drops tokens, whose paths then carry nothing."""
    layer = moe_layer(device, expert_top_k=k, capacity_factor=factor)
    x = minigrad.tensor(np.random.default_rng(3).normal(size=(2, 4, 6)), device=device, requires_grad=True)
    assert margins(layer, x, k) > 1e-3
    params = [x, *layer.parameters()]
    assert minigrad.gradcheck(lambda *ts: layer(x), params, n_directions=4)  # random directions: full on failure
    assert (layer.stats["dropped"] > 0) == (factor == 0.5)


def test_the_router_losses_by_finite_differences(device, float64):
    layer = moe_layer(device, expert_top_k=2, router_aux_loss_coef=0.3, router_z_loss_coef=0.2)
    x = minigrad.tensor(np.random.default_rng(4).normal(size=(2, 4, 6)), device=device, requires_grad=True)
    assert margins(layer, x, 2) > 1e-3

    def losses(*ts):
        layer(x)
        return layer.aux_loss

    assert minigrad.gradcheck(losses, [x, layer.router.weight], n_directions=4)


def test_balance_and_z_loss_values_by_hand(float64):
    layer = moe_layer("cpu", expert_top_k=2, router_aux_loss_coef=1.0, router_z_loss_coef=0.0)
    x = np.random.default_rng(5).normal(size=(2, 4, 6))
    layer(minigrad.tensor(x))
    logits = x.reshape(8, 6) @ layer.router.weight.numpy().T  # (N, E)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    top2 = np.argsort(-p, axis=1)[:, :2]
    f = np.bincount(top2.ravel(), minlength=3) / 16  # fraction of the N k = 16 assignments per expert
    assert layer.aux_loss.item() == pytest.approx(3 * np.sum(f * p.mean(axis=0)), rel=1e-12)
    np.testing.assert_allclose(layer.stats["load"], f)
    layer.z_coef, layer.aux_coef = 1.0, 0.0
    layer(minigrad.tensor(x))
    lse = np.log(np.exp(logits).sum(axis=1))
    assert layer.aux_loss.item() == pytest.approx(np.mean(lse**2), rel=1e-12)


def test_balance_loss_is_one_when_uniform_and_e_when_all_go_to_one_expert(float64):
    layer = moe_layer("cpu")
    layer.aux_coef = 1.0
    x = minigrad.tensor(np.abs(np.random.default_rng(6).normal(size=(1, 6, 6))) + 0.1)
    layer.router.weight.data[...] = 0.0  # every probability 1/3; ties: topk picks one expert for all
    layer(x)
    assert layer.aux_loss.item() == pytest.approx(1.0)  # E * sum_i f_i / E = 1 whatever f is
    layer.router.weight.data[...] = np.array([[5.0] * 6, [-5.0] * 6, [-5.0] * 6])  # all to expert 0, p_0 ~ 1
    layer(x)
    assert layer.aux_loss.item() == pytest.approx(3.0, rel=1e-6)


def test_a_token_over_capacity_is_passed_on_by_the_residual(float64):
    """All 8 tokens choose expert 0, capacity ceil(1.0 * 8 / 3) = 3: tokens 3..7 get MLP output 0 and
    no gradient at all (the router's included: their weights reach nothing)."""
    layer = moe_layer("cpu", capacity_factor=1.0)
    layer.router.weight.data[...] = np.array([[1.0] * 6, [-1.0] * 6, [-1.0] * 6])
    x = minigrad.tensor(np.abs(np.random.default_rng(7).normal(size=(1, 8, 6))) + 0.1, requires_grad=True)
    y = layer(x)
    assert layer.stats["dropped"] == 5 / 8 and layer.stats["load"] == [1.0, 0.0, 0.0]
    assert np.all(y.numpy()[0, 3:] == 0) and np.all(y.numpy()[0, :3] != 0)
    y.backward(minigrad.tensor(np.random.default_rng(8).normal(size=y.shape)))
    assert np.all(x.grad.numpy()[0, 3:] == 0) and np.all(x.grad.numpy()[0, :3] != 0)
    layer.eval()  # no capacity outside training
    layer(x)
    assert layer.stats["dropped"] == 0


@pytest.mark.parametrize("kw, message", [
    ({"n_expert": 2, "expert_top_k": 3}, "expert_top_k (3) must be between 1 and n_expert (2)"),
    ({"n_expert": 2, "expert_top_k": 0}, "expert_top_k (0) must be between 1 and n_expert (2)"),
    ({"n_expert": 4, "capacity_factor": 0.0}, "capacity_factor must be a positive number, got 0.0"),
    ({"n_expert": 4, "capacity_factor": -1.0}, "capacity_factor must be a positive number, got -1.0"),
    ({"n_expert": -1}, "n_expert must be a non-negative integer"),
    ({"n_expert": 4, "expert_hidden": 0}, "expert_hidden must be a positive integer or None, got 0"),
    ({"n_expert": 4, "router_aux_loss_coef": -0.1}, "router_aux_loss_coef must be >= 0"),
])  # fmt: skip
def test_config_errors(kw, message):
    with pytest.raises(ValueError, match=f"GPTConfig: {message}".replace("(", r"\(").replace(")", r"\)")):
        GPTConfig(**kw)


def test_the_default_gpt_keeps_the_dense_mlp():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    assert type(model.transformer.h[0].mlp) is MLP
    names = set(GPT(moe_config(n_expert=2)).state_dict())
    assert {"transformer.h.0.mlp.router.weight", "transformer.h.0.mlp.experts.1.c_fc.weight"} <= names


def test_a_tiny_moe_gpt_trains_and_samples_with_the_kv_cache():
    minigrad.manual_seed(0)
    model = GPT(moe_config(n_embd=8, n_expert=4, expert_top_k=2, expert_hidden=None))
    opt = model.configure_optimizer(0.0, 1e-2, (0.9, 0.99))
    data = np.tile(np.arange(10), 4)  # 0 1 2 ... 9 0 1 ...: learnable
    x = np.stack([data[i : i + 8] for i in (0, 3, 5, 11)])
    y = np.stack([data[i + 1 : i + 9] for i in (0, 3, 5, 11)])
    losses = []
    for _ in range(30):
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(b.mlp.aux_loss is not None for b in model.transformer.h)
    model.eval()
    with_cache = generate(model, [1, 2], 6, temperature=1.0, seed=3, use_cache=True)
    without = generate(model, [1, 2], 6, temperature=1.0, seed=3, use_cache=False)
    assert with_cache == without
    _, val = model(x, y)  # eval mode: cross-entropy alone
    assert val.item() < losses[0]


def test_train_saves_an_moe_model_that_load_model_restores(tmp_path):
    """`python -m gpt train`'s loop with experts: the checkpoint keeps the MoE config and weights."""
    from gpt.train import TrainConfig, load_model, train

    data = tmp_path / "input.txt"
    data.write_text("to be or not to be, that is the question\n" * 20, encoding="utf-8")
    model_cfg = GPTConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, n_expert=2, expert_top_k=2)
    cfg = TrainConfig(data=str(data), out_dir=str(tmp_path / "out"), batch_size=4, max_iters=4, eval_interval=4,
                      eval_iters=1, warmup_iters=1, progress=False, model=model_cfg)
    result = train(cfg)
    model, _, _ = load_model(tmp_path / "out" / "ckpt.npz")
    assert (model.config.n_expert, model.config.expert_top_k) == (2, 2)
    for name, t in result["model"].state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), t.numpy())


def test_an_moe_model_is_not_exported_as_gpt2(tmp_path):
    pytest.importorskip("safetensors")
    from gpt.hf import PretrainedError, save_pretrained

    with pytest.raises(PretrainedError, match="mixture of experts .n_expert=2. cannot be exported"):
        save_pretrained(GPT(moe_config(n_expert=2)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_moe_model_on_the_gpu_like_backend_matches_cpu(float64):
    """The whole MoE GPT on fakegpu: the same loss and router gradient as on the CPU."""
    minigrad.manual_seed(0)
    cpu = GPT(moe_config(n_expert=3, expert_top_k=2, capacity_factor=0.8))
    gpu = GPT(moe_config(n_expert=3, expert_top_k=2, capacity_factor=0.8)).to("fakegpu")
    gpu.load_state_dict({k: to_device(v.data, "fakegpu") for k, v in cpu.state_dict().items()})
    idx = np.random.default_rng(9).integers(0, 10, (2, 8))
    results = []
    for model, dev in ((cpu, "cpu"), (gpu, "fakegpu")):
        _, loss = model(minigrad.tensor(idx, device=dev), minigrad.tensor(idx, device=dev))
        loss.backward()
        results.append((loss.item(), model.transformer.h[0].mlp.router.weight.grad.numpy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_moe_shakespeare_reduced_run(tmp_path):
    """A reduced examples/moe_shakespeare.py run (about a minute idle): every model learns (val loss
    well under the uniform guess's ln 65 = 4.17) and capacity 2.0 drops fewer tokens than 1.0."""
    data = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    if not data.exists():
        pytest.skip(f"needs {data}")
    out = subprocess.run([sys.executable, "examples/moe_shakespeare.py", "--iters", "150", "--eval_iters", "5",
                          "--data", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    for run in m["runs"].values():
        assert run["val_loss"] < 0.8 * math.log(65)
    for dropped in m["dropped"].values():
        assert dropped["2.0"] <= dropped["1.25"] <= dropped["1.0"]
