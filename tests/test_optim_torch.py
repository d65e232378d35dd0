"""optim against torch.optim in float64: SGD, Adam, AdamW step by step, parameters that skip steps
(grad None, frozen then unfrozen: each counts its own steps), zero_grad, and state dicts both ways."""
import numpy as np
import pytest

import minigrad
from minigrad import nn, optim
from minigrad.backend import to_device
from helpers import make_array, need

torch = need("torch")

pytestmark = pytest.mark.usefixtures("float64")

SHAPES = [(3, 4), (4,), (2, 2)]


def make_params(device):
    """The same starting values in both libraries."""
    values = [make_array(i, s) for i, s in enumerate(SHAPES)]
    ours = [nn.Parameter(minigrad.tensor(v, device=device)) for v in values]
    theirs = [torch.nn.Parameter(torch.tensor(v)) for v in values]
    return ours, theirs


def grads_at(step):
    return [make_array(100 + 10 * step + i, s) for i, s in enumerate(SHAPES)]


def set_grads(ours, theirs, grads, device, which=None):
    """p.grad = g for the parameters listed in `which` (all by default); the others keep grad None."""
    for i, (p, q, g) in enumerate(zip(ours, theirs, grads)):
        if which is None or i in which:
            p.grad = minigrad.tensor(g, device=device)
            q.grad = torch.tensor(g)


def assert_same(ours, theirs):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-14)


OPTIMIZERS = {
    "sgd": (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd momentum wd": (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    "sgd dampening": (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    "sgd nesterov": (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1}),
    "adam decoupled": (optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    "adamw": (optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-6}),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_match_torch(device, name):
    ours_cls, theirs_cls, hyper = OPTIMIZERS[name]
    ours, theirs = make_params(device)
    opt, topt = ours_cls(ours, **hyper), theirs_cls(theirs, **hyper)
    for step in range(4):
        set_grads(ours, theirs, grads_at(step), device)
        opt.step()
        topt.step()
        assert_same(ours, theirs)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_parameter_whose_grad_is_none_is_skipped_as_in_torch(device, name):
    """No weight decay, no momentum for it, and its step count stays: when it comes back, its
    bias corrections are those of its own next step."""
    ours_cls, theirs_cls, hyper = OPTIMIZERS[name]
    ours, theirs = make_params(device)
    opt, topt = ours_cls(ours, **hyper), theirs_cls(theirs, **hyper)
    which_per_step = [{0, 1, 2}, {0, 2}, {0}, {0, 1}, {1, 2}, {0, 1, 2}]
    for step, which in enumerate(which_per_step):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(ours, theirs, grads_at(step), device, which)
        opt.step()
        topt.step()
        assert_same(ours, theirs)


@pytest.mark.parametrize("cls, tcls", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)])
def test_a_parameter_unfrozen_late_takes_a_first_step_of_about_lr(device, cls, tcls):
    """Per-parameter step counts: with one count for all, a parameter unfrozen after 30 steps took its
    first step with t = 31's bias corrections, 0.6 lr instead of lr (3.16 lr after 10,000 steps)."""
    ours, theirs = make_params(device)
    ours[1].requires_grad_(False)
    theirs[1].requires_grad_(False)
    lr = 0.01
    opt, topt = cls(ours, lr=lr, weight_decay=0.0), tcls(theirs, lr=lr, weight_decay=0.0)
    for step in range(30):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(ours, theirs, grads_at(step), device, which={0, 2})
        opt.step()
        topt.step()
    ours[1].requires_grad_(True)
    theirs[1].requires_grad_(True)
    before = ours[1].numpy()
    opt.zero_grad()
    topt.zero_grad()
    set_grads(ours, theirs, grads_at(30), device)
    opt.step()
    topt.step()
    assert_same(ours, theirs)
    np.testing.assert_allclose(np.abs(ours[1].numpy() - before), lr, rtol=1e-4)  # m/sqrt(v) = g/|g| at t = 1
    assert [opt.state[p]["step"] for p in ours] == [31, 1, 31]


def test_zero_grad_as_torch(device):
    ours, theirs = make_params(device)
    opt, topt = optim.SGD(ours, lr=0.1), torch.optim.SGD(theirs, lr=0.1)
    assert all(p.grad is None for p in ours)  # making an optimizer makes no gradients
    set_grads(ours, theirs, grads_at(0), device, which={0, 1})
    opt.zero_grad(set_to_none=False)
    topt.zero_grad(set_to_none=False)
    for p, q in zip(ours[:2], theirs[:2]):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())  # zeros
    opt.zero_grad()
    topt.zero_grad()
    assert all(p.grad is None for p in ours) and all(q.grad is None for q in theirs)


def as_numpy_state(sd):
    """torch's state dict with NumPy arrays for tensors (what minigrad's hold)."""
    state = {i: {k: v.numpy() for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name", ["sgd momentum wd", "adam", "adamw"])
def test_state_dict_has_torchs_layout_and_loads_both_ways(device, name):
    ours_cls, theirs_cls, hyper = OPTIMIZERS[name]
    ours, theirs = make_params(device)
    opt, topt = ours_cls(ours, **hyper), theirs_cls(theirs, **hyper)
    for step, which in enumerate([{0, 1, 2}, {0, 2}, {0}]):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(ours, theirs, grads_at(step), device, which)
        opt.step()
        topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert set(sd) == {"state", "param_groups", "step"}  # "step": minigrad's count of step() calls (gpt's checkpoints)
    assert [{k: v for k, v in g.items()} for g in sd["param_groups"]] == tsd["param_groups"]
    assert sd["state"].keys() == tsd["state"].keys()
    for i in tsd["state"]:
        assert list(sd["state"][i]) == list(tsd["state"][i])
        for k, v in tsd["state"][i].items():
            np.testing.assert_allclose(to_device(sd["state"][i][k], "cpu"), v.numpy(), rtol=1e-12)
            assert sd["state"][i][k].shape == tuple(v.shape) and sd["state"][i][k].dtype == v.numpy().dtype

    # torch's state into a fresh minigrad optimizer, and minigrad's into a fresh torch one: both go on as before
    ours2, theirs2 = make_params(device)
    for p, p2, q, q2 in zip(ours, ours2, theirs, theirs2):
        p2.data[...] = p.data
        q2.data.copy_(q.data)
    opt2, topt2 = ours_cls(ours2, **hyper), theirs_cls(theirs2, **hyper)
    opt2.load_state_dict(as_numpy_state(tsd))
    topt2.load_state_dict({"state": {i: {k: torch.tensor(to_device(v, "cpu")) for k, v in s.items()}
                                     for i, s in sd["state"].items()}, "param_groups": sd["param_groups"]})
    for step in range(3, 5):
        for o, t, ps, qs in [(opt, topt, ours, theirs), (opt2, topt2, ours2, theirs2)]:
            o.zero_grad()
            t.zero_grad()
            set_grads(ps, qs, grads_at(step), device)
            o.step()
            t.step()
    assert_same(ours2, theirs)
    assert_same(ours, theirs2)


def test_a_state_dict_with_one_shared_step_still_loads(device):
    """Older minigrad state dicts: one top-level "step" for all, no per-parameter counts."""
    ours, theirs = make_params(device)
    opt, topt = optim.AdamW(ours, lr=0.01), torch.optim.AdamW(theirs, lr=0.01)
    for step in range(3):
        set_grads(ours, theirs, grads_at(step), device)
        opt.step()
        topt.step()
    sd = opt.state_dict()
    old = {"state": {i: {k: v for k, v in s.items() if k != "step"} for i, s in sd["state"].items()},
           "param_groups": [{k: v for k, v in g.items() if k in ("lr", "betas", "eps", "weight_decay", "params")}
                            for g in sd["param_groups"]],
           "step": 3}
    ours2, _ = make_params(device)
    for p, p2 in zip(ours, ours2):
        p2.data[...] = p.data
    opt2 = optim.AdamW(ours2, lr=0.5)
    opt2.load_state_dict(old)
    assert opt2.param_groups[0]["lr"] == 0.01 and [opt2.state[p]["step"] for p in ours2] == [3, 3, 3]
    set_grads(ours2, theirs, grads_at(3), device)
    opt2.step()
    topt.step()
    assert_same(ours2, theirs)
