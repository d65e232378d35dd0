"""optim: SGD, Adam and AdamW against hand computations, clipping, schedules, state dicts, and grads set elsewhere."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad import nn, optim
from minigrad.backend import to_device
from minigrad.nn.utils import clip_grad_norm_

P0 = [np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]), np.array([0.1, -0.2, 0.3])]
G1 = [np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]), np.array([0.5, 0.5, -2.0])]
G2 = [np.array([[-0.5, 1.0, 1.5], [2.0, -1.0, 0.0]]), np.array([-1.0, 0.25, 1.0])]


def make_params(device):
    return [nn.Parameter(minigrad.tensor(p, dtype=np.float32, device=device)) for p in P0]


def set_grads(params, grads, device):
    """Backward of sum(p * g), so each p.grad becomes exactly g."""
    loss = sum((p * minigrad.tensor(g, dtype=p.dtype, device=device)).sum() for p, g in zip(params, grads))
    loss.backward()


def run(opt, params, device, grads_per_step):
    for grads in grads_per_step:
        opt.zero_grad()
        set_grads(params, grads, device)
        opt.step()


def assert_params(params, expected):
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-5, atol=1e-6)


# An update runs on pieces of the flat buffers (minigrad.speed.chunks); the 9 parameters
# here fit in one piece unless the test asks for 7-element pieces.
PIECES = pytest.mark.parametrize("pieces", [False, True], ids=["one piece", "7-element pieces"])


@PIECES
@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.1)])
def test_sgd_matches_hand_computation(device, momentum, weight_decay, pieces, request):
    if pieces:
        request.getfixturevalue("small_chunks")
    lr = 0.1
    params = make_params(device)
    run(optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay), params, device, [G1, G2])
    expected = []
    for p, g1, g2 in zip(P0, G1, G2):
        buf = None
        for g in (g1, g2):
            g = g + weight_decay * p
            buf = g if buf is None else momentum * buf + g
            p = p - lr * buf
        expected.append(p)
    assert_params(params, expected)


def adam_reference(p, grads, lr, betas, eps, weight_decay, decoupled):
    """Adam (L2 decay added to the gradient) or AdamW (decoupled decay), step by step in NumPy."""
    (b1, b2), m, v = betas, np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@PIECES
@pytest.mark.parametrize("cls, decoupled", [(optim.Adam, False), (optim.AdamW, True)])
def test_adam_and_adamw_match_hand_computation(device, cls, decoupled, pieces, request):
    if pieces:
        request.getfixturevalue("small_chunks")
    hyper = {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}
    params = make_params(device)
    run(cls(params, **hyper), params, device, [G1, G2])
    expected = [adam_reference(p, [g1, g2], decoupled=decoupled, **hyper) for p, g1, g2 in zip(P0, G1, G2)]
    assert_params(params, expected)


def test_parameter_groups_keep_their_own_hyperparameters(device):
    w, b = params = make_params(device)
    groups = [{"params": [w], "weight_decay": 0.5}, {"params": [b], "lr": 0.01, "weight_decay": 0.0}]
    run(optim.AdamW(groups, lr=0.1, betas=(0.9, 0.99)), params, device, [G1, G2])
    common = {"betas": (0.9, 0.99), "eps": 1e-8, "decoupled": True}
    expected = [
        adam_reference(P0[0], [G1[0], G2[0]], lr=0.1, weight_decay=0.5, **common),  # lr from the defaults
        adam_reference(P0[1], [G1[1], G2[1]], lr=0.01, weight_decay=0.0, **common),
    ]
    assert_params(params, expected)


def test_clip_grad_norm_returns_the_norm_and_scales_grads(device):
    params = make_params(device)
    set_grads(params, G1, device)
    total = math.sqrt(sum((g**2).sum() for g in G1))
    assert total > 1.0
    assert clip_grad_norm_(params, max_norm=1.0) == pytest.approx(total, rel=1e-5)
    for p, g in zip(params, G1):
        np.testing.assert_allclose(p.grad.numpy(), g / total, rtol=1e-5)
    assert clip_grad_norm_(params, max_norm=10.0) == pytest.approx(1.0, rel=1e-5)  # under the limit...
    for p, g in zip(params, G1):
        np.testing.assert_allclose(p.grad.numpy(), g / total, rtol=1e-5)  # ...grads stay as they are


@pytest.mark.parametrize(
    "it, lr",
    [
        (0, 0.1),  # warmup starts at max_lr / warmup_iters
        (9, 1.0),  # and ends at max_lr
        (10, 1.0),  # the cosine starts at max_lr
        (60, 0.55),  # halfway down: (max_lr + min_lr) / 2
        (110, 0.1),  # min_lr at decay_iters
        (1000, 0.1),  # and after
    ],
)
def test_warmup_cosine_values(it, lr):
    assert optim.warmup_cosine(it, max_lr=1.0, warmup_iters=10, decay_iters=110, min_lr=0.1) == pytest.approx(lr)


def test_param_groups_are_dicts_as_in_pytorch(device):
    w, b = params = make_params(device)
    opt = optim.AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=1.0)
    g0, g1 = opt.param_groups
    assert isinstance(g0, dict) and g0["params"] == [w] and g1["params"] == [b]
    assert {"params", "lr", "betas", "eps", "weight_decay"} <= set(g0)  # iteration over keys
    assert (g0["weight_decay"], g1["weight_decay"], g1["lr"]) == (1e-2, 0.0, 1.0)
    for g in opt.param_groups:  # the line every PyTorch training loop has
        g["lr"] = 0.5 * g["lr"]
    sgd = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.1}], lr=1.0)
    sgd.param_groups[1]["lr"] = 0.01
    run(sgd, params, device, [G1])  # the optimizer steps with the rates set by item assignment
    assert_params(params, [P0[0] - 1.0 * G1[0], P0[1] - 0.01 * G1[1]])
    assert opt.state_dict()["param_groups"][1]["lr"] == 0.5


@pytest.mark.parametrize(
    "make_opt",
    [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.AdamW(ps, lr=0.1)],
    ids=["sgd", "adamw"],
)
def test_optimizer_state_dict_round_trip(device, make_opt):
    params = make_params(device)
    opt = make_opt(params)
    run(opt, params, device, [G1, G2])
    resumed = [nn.Parameter(minigrad.tensor(p.numpy(), device=device)) for p in params]
    opt2 = make_opt(resumed)
    opt2.load_state_dict(opt.state_dict())
    run(opt, params, device, [G2])
    run(opt2, resumed, device, [G2])
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_step_after_model_zero_grad(device):
    model = nn.Linear(3, 2).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = minigrad.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], device=device)
    w0, b0 = model.weight.numpy(), model.bias.numpy()
    for _ in range(2):
        model.zero_grad()  # grads become None; backward then makes fresh arrays that step() copies in
        assert model.weight.grad is None
        model(x).sum().backward()
        opt.step()
    # d(sum(x @ W.T + b))/dW has every row equal to x.sum(0), and d/db is 2 (two rows of x): no accumulation
    np.testing.assert_allclose(model.weight.numpy(), w0 - 0.1 * 2 * np.tile([1.5, 2.5, 3.5], (2, 1)), rtol=1e-5)
    np.testing.assert_allclose(model.bias.numpy(), b0 - 0.1 * 2 * 2.0, rtol=1e-5)


# ---- frozen parameters and empty groups -----------------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
        lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    ],
    ids=["sgd", "adamw", "adam"],
)
def test_frozen_parameter_is_not_moved_and_keeps_no_state(device, make_opt):
    """Weight decay used to move a frozen parameter (its missing grad counted as zero)."""
    params = make_params(device)
    params[0].requires_grad_(False)
    opt = make_opt(params)
    for _ in range(2):
        opt.zero_grad()
        loss = (params[1] * minigrad.tensor(G1[1], device=device)).sum()
        loss.backward()
        opt.step()
    np.testing.assert_array_equal(params[0].numpy(), P0[0])
    assert params[0].grad is None
    assert not np.allclose(params[1].numpy(), P0[1])
    sd = opt.state_dict()
    assert set(sd["state"]) == {1}  # state only for the trainable parameter, numbered as PyTorch does
    assert sd["param_groups"][0]["params"] == [0, 1]


def test_freezing_after_the_optimizer_was_made_takes_effect_at_the_next_step(device):
    params = make_params(device)
    opt = optim.AdamW(params, lr=0.1, weight_decay=0.1)
    run(opt, params, device, [G1])
    m0, m1 = (to_device(opt.state_dict()["state"][i]["exp_avg"], "cpu") for i in (0, 1))
    params[0].requires_grad_(False)
    frozen = params[0].numpy().copy()
    opt.zero_grad()
    (params[1] * minigrad.tensor(G2[1], device=device)).sum().backward()
    opt.step()
    np.testing.assert_array_equal(params[0].numpy(), frozen)
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1}  # the frozen parameter keeps its state, as in PyTorch...
    assert (sd["state"][0]["step"], sd["state"][1]["step"]) == (1, 2)  # ...and its step count
    np.testing.assert_allclose(to_device(sd["state"][0]["exp_avg"], "cpu"), m0, rtol=1e-6)
    # the trainable parameter's state was carried over: m = 0.9 * m1 + 0.1 * g2
    np.testing.assert_allclose(to_device(sd["state"][1]["exp_avg"], "cpu"), 0.9 * m1 + 0.1 * G2[1], rtol=1e-6)
    params[0].requires_grad_(True)  # unfreezing: its state goes on from where it stopped
    run(opt, params, device, [G1])
    assert not np.allclose(params[0].numpy(), frozen)
    sd = opt.state_dict()
    assert (sd["state"][0]["step"], sd["state"][1]["step"]) == (2, 3)
    np.testing.assert_allclose(to_device(sd["state"][0]["exp_avg"], "cpu"), 0.9 * m0 + 0.1 * G1[0], rtol=1e-6)


@pytest.mark.parametrize("cls", [optim.SGD, optim.AdamW])
def test_empty_group_works_in_step_and_state_dicts(device, cls):
    params = make_params(device)
    frozen = nn.Parameter(minigrad.tensor(np.ones(4), device=device), requires_grad=False)
    groups = [{"params": params, "weight_decay": 0.1}, {"params": [], "weight_decay": 0.0}, {"params": [frozen]}]
    opt = cls(groups, lr=0.1)
    run(opt, params, device, [G1, G2])
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [], [2]]
    opt2 = cls(groups, lr=0.5)
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [0.1, 0.1, 0.1]
    opt2.to(device)
    run(opt2, params, device, [G1])
    np.testing.assert_array_equal(frozen.numpy(), np.ones(4))


def test_configure_optimizer_takes_only_trainable_parameters():
    from gpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8, dropout=0.0))
    for name, p in model.named_parameters():
        if not name.startswith("lm_head") and "wte" not in name and "ln_f" not in name:
            p.requires_grad_(False)
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == trainable
    w = model.transformer.h[0].attn.c_attn.weight
    before = w.numpy().copy()
    x = minigrad.tensor(np.array([[1, 2, 3, 4]]))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    np.testing.assert_array_equal(w.numpy(), before)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter requires grad"):
        model.configure_optimizer(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95))


# ---- zero_grad, skipped parameters, keywords ---------------------------------------------------


def test_zero_grad_sets_none_by_default_or_zeroes_views_into_the_flat_buffer(device):
    params = make_params(device)
    opt = optim.AdamW(params, lr=0.1)
    assert all(p.grad is None for p in params)
    run(opt, params, device, [G1])
    opt.zero_grad()  # PyTorch's default: backward then makes fresh gradients, step() copies them in
    assert all(p.grad is None for p in params)
    opt.zero_grad(set_to_none=False)  # the fast path: zero views into the buffer, backward adds into them
    (group,) = opt.param_groups
    assert all(p.grad.data is view for p, view in zip(params, group.grad_views)) and not group.grad.any()
    set_grads(params, G2, device)
    assert all(p.grad.data is view for p, view in zip(params, group.grad_views))
    np.testing.assert_array_equal(params[1].grad.numpy(), G2[1])


def test_a_parameter_without_grad_is_not_moved(device):
    """PyTorch's rule: grad None means no step at all, not a step with a zero gradient (weight decay and
    momentum would move it)."""
    params = make_params(device)
    opt = optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    run(opt, params, device, [G1])
    moved = params[0].numpy().copy()
    opt.zero_grad()
    (params[1] * minigrad.tensor(G2[1], device=device)).sum().backward()  # params[0].grad stays None
    opt.step()
    np.testing.assert_array_equal(params[0].numpy(), moved)
    assert [s["step"] for s in opt.state.values()] == [1, 2]


@pytest.mark.parametrize("make, error, match", [
    (lambda ps: optim.AdamW(ps, lr=0.1, foo=1), TypeError, r"AdamW: keyword 'foo' is not supported"),
    (lambda ps: optim.Adam(ps, amsgrad=True), ValueError, r"Adam: amsgrad=True is not supported"),
    (lambda ps: optim.SGD(ps, maximize=True), ValueError, r"SGD: maximize=True is not supported"),
    (lambda ps: optim.SGD(ps, nesterov=True), ValueError, r"SGD: nesterov=True needs a momentum > 0"),
    (lambda ps: optim.SGD([ps[0] * 2]), TypeError, r"SGD: expected leaf Tensors \(Parameters\), got Tensor made by"),
])
def test_unsupported_keywords_raise_naming_themselves(make, error, match):
    params = [minigrad.tensor(p, requires_grad=True) for p in P0]  # leaf tensors, as PyTorch takes too
    with pytest.raises(error, match=match):
        make(params)


def test_pytorch_switches_at_their_defaults_are_accepted_and_step_takes_a_closure(device):
    params = [minigrad.tensor(p, device=device, requires_grad=True) for p in P0]
    opt = optim.AdamW(params, lr=0.1, amsgrad=False, foreach=None, fused=None, capturable=False)
    assert opt.param_groups[0]["amsgrad"] is False and opt.defaults["lr"] == 0.1

    def closure():
        opt.zero_grad()
        loss = sum((p * p).sum() for p in params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(sum((p**2).sum() for p in P0))
    assert_params(params, [p * (1 - 0.1 * 0.01) - 0.1 * np.sign(p) for p in P0])  # AdamW's first step: lr sign(g)
