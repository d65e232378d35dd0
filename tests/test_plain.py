"""Plain mode (minigrad/speed.py): every speed trick off, for stepping through in a debugger.

For each op with a speed path, fast and plain give the same values and gradients (float64 to
about 1e-12, float32 to its rounding), with the tricks made to bite on small arrays (blocks of
2 queries, 7-element pieces); then a whole GPT step. Then that plain mode takes the plain path
(one block, one piece, dense gradients, add.at, the simple GELU, no reuse_saved), and that the
switch is restored after its context manager and read from MINIGRAD_PLAIN."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from gpt.model import GPT, GPTConfig
from minigrad import nn, optim, speed
from minigrad.autograd import Function
from minigrad.ops import attention, reduce
from minigrad.ops.shape import ScatteredGrad

DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 2e-5, "atol": 2e-6}}


@pytest.fixture(autouse=True)
def _fast_by_default():
    """Each test starts fast, even in a suite run with MINIGRAD_PLAIN=1."""
    with minigrad.plain(False):
        yield


@pytest.fixture
def tricks_bite(device, small_chunks, monkeypatch):
    """Blocks of 2 queries and 7-element pieces: several of each on these small arrays."""
    monkeypatch.setattr(attention, "QUERY_BLOCK", {device: 2})


def fast_and_plain(fn: Callable[..., Any], arrays: Sequence[np.ndarray], device: str, dtype: Any,
                   grad_of: Sequence[bool] | None = None) -> list[list[np.ndarray]]:
    """[out, grads...] of fn(*tensors) with the gradients of sum(out * dout) for a random dout,
    first fast, then plain (forward and backward both inside the mode)."""
    grad_of = grad_of or [True] * len(arrays)
    runs = []
    for plain in (False, True):
        with minigrad.plain(plain):
            xs = [minigrad.tensor(a.astype(dtype) if a.dtype.kind == "f" else a, device=device, requires_grad=g)
                  for a, g in zip(arrays, grad_of)]
            minigrad.manual_seed(0)  # the same dropout masks both times
            out = fn(*xs)
            dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
            (out * minigrad.tensor(dout, device=device)).sum().backward()
            runs.append([out.numpy()] + [x.grad.numpy() for x, g in zip(xs, grad_of) if g])
    return runs


def assert_same(runs: list[list[np.ndarray]], dtype: Any) -> None:
    fast, plain = runs
    assert len(fast) == len(plain) > 1
    for a, b in zip(fast, plain):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, **TOLERANCE[dtype])


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ---- the same values and gradients, op by op --------------------------------------------------

# kind -> (query length, key length, attn_mask or None, is_causal, dropout_p)
def _bool_mask() -> np.ndarray:
    m = np.random.default_rng(7).random((1, 5, 6)) < 0.7  # (H=1, Tq, Tk), broadcast over B
    m[:, 2] = False  # a query that sees no key: output and gradient 0
    return m


ATTENTION_CASES = {
    "none": (5, 6, None, False, 0.0),
    "causal": (6, 6, None, True, 0.0),
    "causal Tq < Tk": (3, 7, None, True, 0.0),
    "bool mask": (5, 6, _bool_mask(), False, 0.0),
    "float mask": (5, 6, rand(8, 2, 1, 5, 6), False, 0.0),
    "causal, dropout": (6, 6, None, True, 0.3),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ATTENTION_CASES)
def test_attention(device, tricks_bite, kind, dtype):
    tq, tk, mask, causal, p = ATTENTION_CASES[kind]
    arrays = [rand(1, 2, 2, tq, 4), rand(2, 2, 2, tk, 4), rand(3, 2, 2, tk, 3)] + ([mask] if mask is not None else [])
    grad_of = [True, True, True] + ([mask.dtype != bool] if mask is not None else [])

    def sdpa(q, k, v, *m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m[0] if m else None, dropout_p=p, is_causal=causal)

    assert_same(fast_and_plain(sdpa, arrays, device, dtype, grad_of), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(device, tricks_bite, approximate, dtype):
    assert_same(fast_and_plain(lambda x: F.gelu(x, approximate), [2 * rand(4, 3, 11)], device, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(device, tricks_bite, dtype):
    idx = minigrad.tensor(np.array([[1, 3, 1, 0], [4, 3, 3, 1]]), device=device)  # repeated ids sum their grads
    assert_same(fast_and_plain(lambda w: F.embedding(idx, w), [rand(5, 6, 3)], device, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["split", "repeated ids", "gather", "slice and mask"])
def test_indexing(device, tricks_bite, kind, dtype):
    def split(x):  # GPT's q, k, v = qkv.split(...): three pieces of one gradient
        q, k, v = x.split(4, dim=-1)
        return q * k + v * v

    index = {
        "split": split,
        "repeated ids": lambda x: x[minigrad.tensor(np.array([2, 0, 2, 2]), device=device)],
        "gather": lambda x: minigrad.gather(x, 1, minigrad.tensor(np.array([[0, 0, 11], [5, 5, 5], [1, 2, 1]]),
                                                                   device=device)),
        "slice and mask": lambda x: x[1:, ::2] + x[minigrad.tensor(np.array([True, False, True]), device=device)][:, :6],
    }[kind]
    assert_same(fast_and_plain(index, [rand(6, 3, 12)], device, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["none", "weight", "weight+bias"])
def test_layer_norm(device, tricks_bite, affine, dtype):
    arrays = [2 * rand(9, 2, 3, 8) + 1] + [rand(10 + i, 8) for i in range({"none": 0, "weight": 1}.get(affine, 2))]
    assert_same(fast_and_plain(F.layer_norm, arrays, device, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_sums(device, tricks_bite, dtype):
    """Linear's bias gradient is a column sum (reduce.col_sum); sum and mean are the plain ops themselves."""
    def fn(x, w, b):
        y = F.linear(x, w, b)  # (2, 3, 5)
        return y.sum(-1, keepdim=True) * y.mean(0) + y

    assert_same(fast_and_plain(fn, [rand(11, 2, 3, 4), rand(12, 5, 4), rand(13, 5)], device, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_and_column_sums(device, dtype):
    xp = minigrad.get_array_module(minigrad.zeros(1, device=device).data)
    a, b = (xp.asarray(rand(s, 2, 3, 5).astype(dtype)) for s in (14, 15))
    for helper, args in ((reduce.row_mean, (a,)), (reduce.row_dot_mean, (a, b)), (reduce.col_sum, (a,)),
                         (reduce.col_dot, (a, b))):
        fast = helper(*args)
        with minigrad.plain():
            plain = helper(*args)
        assert plain.shape == fast.shape and plain.dtype == fast.dtype == dtype
        np.testing.assert_allclose(minigrad.tensor(plain).numpy(), minigrad.tensor(fast).numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["AdamW", "Adam", "SGD"])
def test_optimizer_updates(device, tricks_bite, name, dtype):
    """Three steps on 9 + 3 parameters: in 7-element pieces, and whole in plain mode."""
    make = {"AdamW": lambda ps: optim.AdamW(ps, lr=0.1),
            "Adam": lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
            "SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)}[name]
    results = []
    for plain in (False, True):
        with minigrad.plain(plain):
            params = [nn.Parameter(minigrad.tensor(rand(16, *s).astype(dtype), device=device)) for s in ((3, 3), (3,))]
            opt = make(params)
            for step in range(3):
                opt.zero_grad()
                sum((p * p * minigrad.tensor(rand(17 + step, *p.shape).astype(dtype), device=device)).sum()
                    for p in params).backward()
                opt.step()
            results.append([p.numpy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpt_forward_and_backward(device, tricks_bite, dtype):
    """A whole tiny GPT: the loss and every parameter's gradient."""
    minigrad.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1)
    model = GPT(config).to(device)
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    idx = np.random.default_rng(18).integers(0, 11, (2, 8))
    targets = np.random.default_rng(19).integers(0, 11, (2, 8))
    runs = []
    for plain in (False, True):
        with minigrad.plain(plain):
            model.zero_grad()
            minigrad.manual_seed(1)  # the same dropout masks both times
            logits, loss = model(idx, targets)
            loss.backward()
            runs.append([logits.numpy(), loss.numpy()] + [p.grad.numpy() for p in model.parameters()])
    assert_same(runs, dtype)


# ---- plain mode takes the plain path ----------------------------------------------------------


def test_attention_runs_in_one_block(device, monkeypatch):
    monkeypatch.setattr(attention, "QUERY_BLOCK", {device: 2})
    q, k, v = (minigrad.tensor(rand(s, 1, 1, 6, 4), device=device, requires_grad=True) for s in (1, 2, 3))
    fast = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    with minigrad.plain():
        plain = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert fast._ctx.blocks == [(0, 2, 2), (2, 4, 4), (4, 6, 6)]
    assert plain._ctx.blocks == [(0, 6, 6)]


def test_chunks_is_one_piece():
    a = np.zeros(10 * speed.CHUNK_ELEMENTS["cpu"])
    assert len(speed.chunks(a)) == 10
    with minigrad.plain():
        assert speed.chunks(a) == [slice(0, a.size)]


def test_indexing_gradient_is_dense(device):
    x = minigrad.tensor(rand(1, 3, 4), device=device, requires_grad=True)
    dout = minigrad.tensor(rand(2, 2, 4), device=device).data
    assert isinstance(x[:2]._ctx.backward(dout)[0], ScatteredGrad)
    with minigrad.plain():
        (dx,) = x[:2]._ctx.backward(dout)
    assert type(dx) is type(x.data) and dx.shape == (3, 4)


def test_embedding_gradient_skips_the_sort(monkeypatch):
    """The sorted path (np.argsort, add.reduceat) is NumPy's; plain mode takes add.at instead."""
    sorts = []
    argsort = np.argsort
    monkeypatch.setattr(np, "argsort", lambda *a, **k: sorts.append(1) or argsort(*a, **k))
    w = minigrad.tensor(rand(1, 5, 3), requires_grad=True)
    F.embedding(np.array([1, 3, 1]), w).sum().backward()
    assert sorts == [1]
    with minigrad.plain():
        F.embedding(np.array([1, 3, 1]), w).sum().backward()
    assert sorts == [1]
    np.testing.assert_array_equal(w.grad.numpy(), 2 * np.array([0, 2, 0, 1, 0])[:, None] * np.ones(3))


def test_gelu_takes_its_simple_twin():
    x = minigrad.tensor(rand(1, 4), requires_grad=True)
    assert type(F.gelu(x)._ctx).__name__ == "GELU"
    with minigrad.plain():
        assert type(F.gelu(x)._ctx).__name__ != "GELU"
        assert type(nn.GELU(approximate="tanh")(x)._ctx).__name__ != "GELU"


def test_backward_never_reuses_saved_arrays():
    class Spy(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, dout):
            seen.append(self.reuse_saved)
            return (dout,)

    seen: list[bool] = []
    x = minigrad.tensor(rand(1, 3), requires_grad=True)
    Spy.apply(x).sum().backward()
    with minigrad.plain():
        Spy.apply(x).sum().backward()
    assert seen == [True, False]


# ---- the switch -------------------------------------------------------------------------------


def test_switch_is_restored_even_after_an_exception():
    assert not minigrad.is_plain()
    with pytest.raises(KeyError), minigrad.plain():
        assert minigrad.is_plain()
        with minigrad.plain(False):
            assert not minigrad.is_plain()
        assert minigrad.is_plain()
        raise KeyError("an error inside the block")
    assert not minigrad.is_plain()
    minigrad.set_plain(True)
    try:
        assert minigrad.is_plain()
    finally:
        minigrad.set_plain(False)
    assert not minigrad.is_plain()


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False)])
def test_environment_variable(value, expected):
    env = {**os.environ, "MINIGRAD_PLAIN": value}
    out = subprocess.run([sys.executable, "-c", "import minigrad; print(minigrad.is_plain())"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(expected)
