"""Ready for a GPU: how often a training step makes the CPU wait for the device, and how many array
operations (kernel launches on a GPU) parts of it take, counted by the strict test backend."""
from __future__ import annotations


import numpy as np
import pytest

import minigrad
import minigrad.optim
from gpt.train import TrainConfig, train
from gpt.model import GPTConfig
from minigrad import nn
from minigrad.nn.utils import clip_grad_norm_
from minigrad.testing import fakegpu

TEXT = "It is a tale told by an idiot, full of sound and fury,\nsignifying nothing.\n" * 20


def test_a_training_step_waits_for_the_device_at_most_twice(tmp_path, monkeypatch):
    """The logged loss and the clip's norm (which the NaN guard reads) are the only values a step
    reads back: ids, targets and counts stay on the device. (Before: 10 at grad_accum 1.)"""
    data = tmp_path / "input.txt"
    data.write_text(TEXT, encoding="utf-8")
    cfg = TrainConfig(
        model=GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.0),
        data=str(data), out_dir=str(tmp_path / "out"), device="fakegpu", batch_size=4, grad_accum=2,
        max_iters=4, eval_interval=100, eval_iters=1, log_interval=1, progress=False,
    )
    syncs_at_step = []
    step = minigrad.optim.AdamW.step

    def counting_step(self):
        syncs_at_step.append(len(rec.syncs))
        step(self)

    monkeypatch.setattr(minigrad.optim.AdamW, "step", counting_step)
    with fakegpu.record() as rec:
        train(cfg)
    per_step = np.diff(syncs_at_step)  # from one optimizer step to the next: a whole iteration
    assert len(per_step) == 3 and per_step.max() <= 2, (per_step, rec.syncs)


def mlp_and_optimizer(device):
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)).to(device)
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = minigrad.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}])
    opt.zero_grad(set_to_none=False)  # grads as views into each group's flat buffer
    model(minigrad.randn(5, 3, device=device)).sum().backward()
    return model, opt


def test_clip_takes_one_norm_per_flat_gradient_buffer(device):
    model, _ = mlp_and_optimizer(device)
    params = list(model.parameters())
    grads = [p.grad.numpy().copy() for p in params]
    total = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    ops = None
    if device == "fakegpu":
        with fakegpu.record() as rec:
            norm = clip_grad_norm_(params, max_norm=0.5)
        ops = rec.ops
    else:
        norm = clip_grad_norm_(params, max_norm=0.5)
    assert norm == pytest.approx(total, rel=1e-5)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * 0.5 / (total + 1e-6), rtol=1e-5)
    if ops is not None:
        assert ops["vdot"] == 2 and ops["__imul__"] == 2  # two groups: two buffers, though six parameters


def test_clip_without_flat_buffers_takes_each_grad(device):
    model = nn.Linear(3, 2).to(device)
    model(minigrad.randn(4, 3, device=device)).sum().backward()  # grads made by backward, no optimizer
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    total = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert clip_grad_norm_(model.parameters(), max_norm=1e9) == pytest.approx(total, rel=1e-5)


def attention_ops(device, block):
    """Array operations of one causal attention forward and backward at T = 256 on fakegpu."""
    from minigrad.ops import attention

    rng = np.random.default_rng(0)
    q, k, v = (minigrad.tensor(rng.standard_normal((1, 2, 256, 8)), device=device, requires_grad=True) for _ in range(3))
    default, attention.QUERY_BLOCK = attention.QUERY_BLOCK, ({device: block} if block else {})
    try:
        with fakegpu.record() as rec:
            out = minigrad.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.backward(minigrad.tensor(rng.standard_normal(out.shape), device=device))
    finally:
        attention.QUERY_BLOCK = default
    return sum(rec.ops.values()), out.numpy(), q.grad.numpy()


def test_attention_takes_all_queries_at_once_off_the_cpu(float64):
    """Query blocks save the CPU the masked triangle's work; a GPU would rather launch fewer kernels."""
    from minigrad.ops import attention

    assert "fakegpu" not in attention.QUERY_BLOCK and "cuda" not in attention.QUERY_BLOCK
    whole_ops, out, dq = attention_ops("fakegpu", None)
    blocked_ops, out32, dq32 = attention_ops("fakegpu", 32)
    # float64: blocks sum in another order, which float32 shows in its last bits on some CPUs
    np.testing.assert_allclose(out, out32, rtol=1e-12)
    np.testing.assert_allclose(dq, dq32, rtol=1e-10)
    assert whole_ops * 3 < blocked_ops, (whole_ops, blocked_ops)  # 46 against 196 operations
