"""nn: Module registration and names, layers, modes, state dicts, and moving models (with optimizer state)."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad import nn, optim
from minigrad.backend import device_of


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.scale = nn.Parameter(minigrad.ones(4))
        self.plain = minigrad.ones(4)  # a plain Tensor is not a parameter

    def forward(self, x):
        return self.norm(self.fc(x)) * self.scale


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight  # weight tying, as in GPT-2


def test_module_registers_parameters_and_submodules():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "norm.weight", "norm.bias"]
    assert [n for n, _ in m.named_children()] == ["fc", "norm"]
    assert m.num_parameters() == 4 + 3 * 4 + 4 + 4 + 4


def test_dotted_names_through_sequential_and_modulelist():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 1)]))
    assert [n for n, _ in m.named_parameters()] == [
        "0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight", "2.1.bias",
    ]
    assert m[2][1] is list(m.modules())[-1]


def test_tied_parameters_count_once_but_save_under_both_names():
    m = TiedLM()
    assert len(list(m.parameters())) == 1
    assert set(m.state_dict()) == {"emb.weight", "head.weight"}
    m.load_state_dict(m.state_dict())  # both names load into the one tensor


def test_train_and_eval_reach_every_submodule():
    m = nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.Dropout(0.5)]))
    assert all(sub.training for sub in m.modules())
    assert m.eval() is m
    assert not any(sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())


def test_linear_layout_and_output(device):
    lin = nn.Linear(3, 4).to(device)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (4,)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y = lin(minigrad.tensor(x, device=device))
    np.testing.assert_allclose(y.numpy(), x @ lin.weight.numpy().T + lin.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_gathers_rows_and_sums_grads_of_repeated_ids(device):
    emb = nn.Embedding(5, 3).to(device)
    ids = minigrad.tensor([[0, 2], [2, 4]], device=device)
    y = emb(ids)
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y.numpy(), emb.weight.numpy()[ids.numpy()])
    y.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(), np.array([1, 0, 2, 0, 1])[:, None] * np.ones(3))


def test_layernorm_normalizes_the_last_axis(device):
    ln = nn.LayerNorm(6).to(device)
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32) * 3 + 1
    y = ln(minigrad.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=-1), 1, atol=1e-3)  # biased variance, eps 1e-5
    with minigrad.no_grad():
        ln.weight.data[...] = 2.0
        ln.bias.data[...] = 0.5
    y2 = ln(minigrad.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(y2, 2 * y + 0.5, rtol=1e-5, atol=1e-5)


def test_dropout_train_and_eval(device):
    drop = nn.Dropout(p=0.25)
    x = minigrad.ones(200, 500, device=device, requires_grad=True)
    y = drop(x)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75)  # inverted scaling of what is kept...
    assert abs(y.numpy().mean() - 1.0) < 0.01  # ...keeps the mean
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # the same mask in backward
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


def test_dropout_is_reproducible_with_manual_seed(device):
    drop = nn.Dropout(p=0.5)
    x = minigrad.ones(50, device=device)
    minigrad.manual_seed(123)
    a = drop(x).numpy()
    b = drop(x).numpy()
    minigrad.manual_seed(123)
    np.testing.assert_array_equal(drop(x).numpy(), a)
    assert not np.array_equal(a, b)  # the generator moves on between calls


def make_mlp(device):
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(device)


def test_state_dict_round_trip(device):
    minigrad.manual_seed(1)
    src = make_mlp(device)
    minigrad.manual_seed(2)
    dst = make_mlp(device)
    x = minigrad.randn(5, 3, device=device)
    assert not np.allclose(src(x).numpy(), dst(x).numpy())
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst(x).numpy(), src(x).numpy())
    cpu_copy = make_mlp("cpu")
    cpu_copy.load_state_dict(src.state_dict())  # arrays change device as they load
    np.testing.assert_array_equal(cpu_copy[0].weight.numpy(), src[0].weight.numpy())


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda sd: sd.pop("2.bias"), KeyError, r"missing keys \['2.bias'\]"),
        (lambda sd: sd.update(extra=sd["2.bias"]), KeyError, r"unexpected keys \['extra'\]"),
        (lambda sd: sd.update({"0.weight": np.zeros((3, 4))}), ValueError, r"0.weight has shape \(3, 4\).*\(4, 3\)"),
    ],
)
def test_load_state_dict_strict_errors(device, edit, error, match):
    m = make_mlp(device)
    sd = m.state_dict()
    edit(sd)
    with pytest.raises(error, match=match):
        m.load_state_dict(sd)


def test_load_state_dict_non_strict_loads_what_matches(device):
    m = make_mlp(device)
    m.load_state_dict({"2.bias": np.full(2, 7.0, dtype=np.float32), "extra": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(m[2].bias.numpy(), [7.0, 7.0])


def test_module_to_moves_parameters_and_grads(gpu_device):
    m = make_mlp("cpu")
    m(minigrad.randn(5, 3)).sum().backward()
    weight, before = m[0].weight, [(p.numpy(), p.grad.numpy()) for p in m.parameters()]
    m.to(gpu_device)
    assert m[0].weight is weight  # moved in place: whoever holds the parameter still holds it
    assert all(p.device == gpu_device and p.grad.device == gpu_device for p in m.parameters())
    m.to("cpu")
    for p, (value, grad) in zip(m.parameters(), before):
        assert p.device == "cpu" and p.grad.device == "cpu"
        np.testing.assert_array_equal(p.numpy(), value)
        np.testing.assert_array_equal(p.grad.numpy(), grad)


def train_adamw(move_to: str, steps: int = 3):
    """AdamW on an MLP that starts on cpu and moves to `move_to` after the first step."""
    minigrad.manual_seed(0)
    model = make_mlp("cpu")
    opt = optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    device = "cpu"
    for step in range(steps):
        if step == 1:
            model.to(move_to)
            device = move_to
        loss = (model(minigrad.tensor(x, device=device)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def test_module_to_moves_optimizer_state_too(gpu_device):
    moved, opt = train_adamw(gpu_device)
    stayed, _ = train_adamw("cpu")
    state = opt.state_dict()["state"]
    assert {device_of(a) for s in state.values() for a in s.values()} == {gpu_device}
    for p, q in zip(moved.parameters(), stayed.parameters()):
        assert p.device == gpu_device
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)




@pytest.mark.parametrize(
    "make_ids, vocab, dim",
    [
        (lambda rng: np.tile(np.arange(64), 12), 64, 128),  # the position table at the CPU configuration
        (lambda rng: rng.integers(0, 50257, 65536), 50257, 8),  # GPT-2's vocabulary, 64K tokens
    ],
    ids=["positions 12x64", "gpt2 vocab 64K tokens"],
)
def test_embedding_grad_of_repeated_ids_is_float32_exact(device, make_ids, vocab, dim):
    """Each table row's gradient is summed alone, so its error is the rounding of that row's own sum
    (here below 1e-6 of max|dout|). A cumulative sum over all rows followed by differences (CuPy's
    add.reduceat, which the strict fakegpu runs) carries the rounding of the whole running total:
    3.6e-5 and 1.9e-3 of max|dout| here, where a channel's gradients share a sign (mean 1)."""
    rng = np.random.default_rng(0)
    ids = make_ids(rng)
    dout = (rng.standard_normal((len(ids), dim)) + 1.0).astype(np.float32)
    exact = np.zeros((vocab, dim))
    np.add.at(exact, ids, dout.astype(np.float64))
    emb = nn.Embedding(vocab, dim).to(device)
    emb(minigrad.tensor(ids, device=device)).backward(minigrad.tensor(dout, device=device))
    err = np.abs(emb.weight.grad.numpy() - exact).max() / np.abs(dout).max()
    assert err < 1e-5, err
