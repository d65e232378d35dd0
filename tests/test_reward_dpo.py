"""gpt/logprobs.py, gpt/reward.py and gpt/dpo.py: values against NumPy (and torch), gradients against
finite differences on every device, and a few training steps that must move the right way."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from gpt.dpo import check_reference, dpo_loss, reference_logprob
from gpt.logprobs import sequence_logprob, token_logprobs
from gpt.model import GPT, GPTConfig
from gpt.reward import RewardModel, bradley_terry_loss, pair_accuracy
from tests.helpers import need

V = 10


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": V, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, **kw})


def randomize(model, std: float = 0.3, seed: int = 0):
    """Every parameter random (LayerNorm gains near 1), so no gradient is accidentally 0."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, std, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return model


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_logsigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


# ---- log-probabilities -------------------------------------------------------------------


def test_token_logprobs_equal_numpy_and_gradcheck_on_logits(device, float64):
    rng = np.random.default_rng(0)
    model = GPT(tiny()).to(device)
    idx = rng.integers(0, V, (3, 5))
    z = rng.standard_normal((3, 5, V))
    expected = np.take_along_axis(np_log_softmax(z)[:, :-1], idx[:, 1:, None], axis=2)[..., 0]  # (3, 4)
    logits = minigrad.tensor(z, device=device, requires_grad=True)
    out = token_logprobs(model, idx, logits)
    assert (out.shape, out.device) == ((3, 4), device)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert minigrad.gradcheck(lambda lg: token_logprobs(model, idx, lg), [logits])


def test_token_logprobs_of_the_model_match_its_cross_entropy(float64):
    """Causal: the logits of idx at positions 0..T-2 are those of idx[:, :-1], whose loss GPT.forward computes."""
    model = randomize(GPT(tiny()))
    idx = np.random.default_rng(1).integers(0, V, (2, 6))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    np.testing.assert_allclose(-token_logprobs(model, idx).numpy().mean(), loss.item(), rtol=1e-12)


def test_sequence_logprob_sums_the_masked_positions_and_gradchecks_on_the_model(device, float64):
    model = randomize(GPT(tiny())).to(device)
    idx = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]])  # row 1 right-padded
    mask = np.array([[0, 1, 1, 1], [0, 1, 0, 0]], dtype=bool)  # prompts of 2 tokens, row 1 answers one token
    per_token = token_logprobs(model, idx).numpy()
    np.testing.assert_allclose(sequence_logprob(model, idx, mask).numpy(), (per_token * mask).sum(1), rtol=1e-12)
    params = list(model.parameters())
    assert minigrad.gradcheck(lambda *_: sequence_logprob(model, idx, mask), params)


def test_logprob_errors():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="T >= 2"):
        token_logprobs(model, [[1]])
    with pytest.raises(ValueError, match=r"logits must be \(B, T, V\)"):
        token_logprobs(model, [[1, 2]], minigrad.zeros(1, 2, V + 1))
    with pytest.raises(ValueError, match="response_mask must be a bool"):
        sequence_logprob(model, [[1, 2, 3]], np.ones((1, 3), dtype=bool))  # (B, T), not (B, T-1)
    with pytest.raises(ValueError, match="response_mask must be a bool"):
        sequence_logprob(model, [[1, 2, 3]], np.ones((1, 2)))


# ---- reward model ------------------------------------------------------------------------


def test_bradley_terry_loss_equals_numpy_and_gradchecks(device, float64):
    rng = np.random.default_rng(2)
    rc, rr = rng.standard_normal(6), rng.standard_normal(6)
    tc, tr = (minigrad.tensor(a, device=device, requires_grad=True) for a in (rc, rr))
    np.testing.assert_allclose(bradley_terry_loss(tc, tr).item(), np.mean(-np_logsigmoid(rc - rr)), rtol=1e-12)
    assert minigrad.gradcheck(bradley_terry_loss, [tc, tr])
    with pytest.raises(ValueError, match="both be"):
        bradley_terry_loss(tc, tr[:3])


def test_reward_gradcheck_wrt_head_and_backbone(device, float64):
    rm = randomize(RewardModel(tiny())).to(device)
    idx, lengths = [[1, 2, 3, 4], [5, 6, 0, 0], [7, 8, 9, 0]], [4, 2, 3]
    params = list(rm.parameters())
    assert {id(p) for p in rm.head.parameters()} <= {id(p) for p in params}
    assert minigrad.gradcheck(lambda *_: rm(idx, lengths), params)
    assert all(p.grad is not None for p in params)


def test_padding_does_not_change_a_reward(float64):
    rm = randomize(RewardModel(tiny()))
    rows = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1]]
    padded = [r + [0] * (5 - len(r)) for r in rows]
    batch = rm(padded, [len(r) for r in rows]).numpy()
    alone = [rm([r]).item() for r in rows]
    np.testing.assert_allclose(batch, alone, rtol=1e-12)
    other_pad = [r + [9] * (5 - len(r)) for r in rows]  # another padding token: same rewards
    np.testing.assert_allclose(rm(other_pad, [len(r) for r in rows]).numpy(), batch, rtol=1e-12)


def test_reward_lengths_errors():
    rm = RewardModel(tiny())
    with pytest.raises(ValueError, match=r"lengths must be in 1..3"):
        rm([[1, 2, 3]], [4])
    with pytest.raises(ValueError, match=r"lengths must be \(1,\) integers"):
        rm([[1, 2, 3]], [2.0])


def test_reward_model_learns_separable_pairs():
    """Chosen texts use tokens 1-3, rejected ones 6-8, of varied lengths: a few steps rank all pairs right."""
    minigrad.manual_seed(0)
    rng = np.random.default_rng(3)
    rm = RewardModel(tiny())

    def batch(low: int) -> tuple[np.ndarray, np.ndarray]:
        lengths = rng.integers(2, 7, 8)
        idx = np.zeros((8, 6), dtype=np.int64)
        for b, n in enumerate(lengths):
            idx[b, :n] = rng.integers(low, low + 3, n)
        return idx, lengths

    (c, lc), (r, lr) = batch(1), batch(6)
    opt = minigrad.optim.AdamW(rm.parameters(), lr=3e-2, weight_decay=0.0)
    first = bradley_terry_loss(rm(c, lc), rm(r, lr)).item()
    for _ in range(25):
        loss = bradley_terry_loss(rm(c, lc), rm(r, lr))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with minigrad.no_grad():
        rc, rr = rm(c, lc), rm(r, lr)
    assert bradley_terry_loss(rc, rr).item() < first / 4
    assert pair_accuracy(rc, rr) == 1.0


def test_pair_accuracy_counts_ties_as_half():
    assert pair_accuracy([1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 2.0, 0.5]) == pytest.approx(2.5 / 4)


# ---- DPO ----------------------------------------------------------------------------------


def dpo_numpy(pc, pr, rc, rr, beta):
    logits = beta * ((pc - rc) - (pr - rr))
    return np.mean(-np_logsigmoid(logits)), beta * (pc - rc), beta * (pr - rr)


def test_dpo_loss_equals_numpy_and_gradchecks(device, float64):
    rng = np.random.default_rng(4)
    pc, pr, rc, rr = (rng.normal(-8.0, 2.0, 5) for _ in range(4))
    tpc, tpr = (minigrad.tensor(a, device=device, requires_grad=True) for a in (pc, pr))
    trc, trr = (minigrad.tensor(a, device=device) for a in (rc, rr))
    loss, chosen, rejected = dpo_loss(tpc, tpr, trc, trr, beta=0.7)
    expected = dpo_numpy(pc, pr, rc, rr, 0.7)
    for got, want in zip((loss, chosen, rejected), expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert not chosen.requires_grad and not rejected.requires_grad  # logged, not trained
    assert minigrad.gradcheck(lambda a, b: dpo_loss(a, b, trc, trr, 0.7)[0], [tpc, tpr])


def test_dpo_loss_and_gradient_equal_torch(float64):
    torch = need("torch")
    rng = np.random.default_rng(5)
    pc, pr, rc, rr = (rng.normal(-6.0, 3.0, 7) for _ in range(4))
    beta = 0.3
    ours = [minigrad.tensor(a, requires_grad=True) for a in (pc, pr)]
    loss, chosen, rejected = dpo_loss(*ours, minigrad.tensor(rc), minigrad.tensor(rr), beta)
    loss.backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in (pc, pr)]  # float64, as the arrays
    logits = (theirs[0] - torch.tensor(rc)) - (theirs[1] - torch.tensor(rr))
    t_loss = -torch.nn.functional.logsigmoid(beta * logits).mean()  # TRL's "sigmoid" DPO loss
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-13)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(chosen.numpy(), beta * (pc - rc), rtol=1e-13)
    np.testing.assert_allclose(rejected.numpy(), beta * (pr - rr), rtol=1e-13)


def test_dpo_errors():
    g = minigrad.tensor([-1.0, -2.0], requires_grad=True)
    ref = minigrad.tensor([-1.5, -2.5])
    for beta in (0.0, -0.1):
        with pytest.raises(ValueError, match="beta must be > 0"):
            dpo_loss(g, g, ref, ref, beta)
    with pytest.raises(ValueError, match="ref_rejected_logps carries a graph"):
        dpo_loss(g, g, ref, g * 1.0, 0.1)
    with pytest.raises(ValueError, match="ref_chosen_logps must be a \\(B,\\) Tensor"):
        dpo_loss(g, g, ref[:1], ref, 0.1)


def test_check_reference_names_the_differing_field():
    policy = GPT(tiny())
    check_reference(policy, GPT(tiny()))
    with pytest.raises(ValueError, match="vocab_size is 12, the policy's 10"):
        check_reference(policy, GPT(tiny(vocab_size=12)))
    with pytest.raises(ValueError, match="n_embd is 16"):
        check_reference(policy, GPT(tiny(n_embd=16)))


def test_dpo_steps_raise_the_margin():
    """Prompt [1, 2]; chosen answers 3 3 3, rejected 4 4 4: a few DPO steps make the chosen likelier."""
    minigrad.manual_seed(0)
    policy, reference = GPT(tiny()), GPT(tiny())
    reference.load_state_dict(policy.state_dict())
    check_reference(policy, reference)
    chosen, rejected = np.array([[1, 2, 3, 3, 3]] * 2), np.array([[1, 2, 4, 4, 4], [1, 2, 4, 4, 0]])
    mask_c = np.array([[0, 1, 1, 1]] * 2, dtype=bool)  # entry t covers token t + 1: the answer's tokens
    mask_r = np.array([[0, 1, 1, 1], [0, 1, 1, 0]], dtype=bool)  # row 1 right-padded
    ref_c, ref_r = reference_logprob(reference, chosen, mask_c), reference_logprob(reference, rejected, mask_r)
    assert not ref_c.requires_grad and not ref_r.requires_grad
    opt = minigrad.optim.AdamW(policy.parameters(), lr=1e-2, weight_decay=0.0)
    margins = []
    for _ in range(8):
        loss, rc, rr = dpo_loss(sequence_logprob(policy, chosen, mask_c),
                                sequence_logprob(policy, rejected, mask_r), ref_c, ref_r, beta=0.5)
        margins.append(float((rc - rr).numpy().mean()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert margins[0] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert margins[-1] > 0.5 and all(b > a for a, b in zip(margins, margins[1:]))
    assert loss.item() < np.log(2)


def test_reward_model_from_gpt_copies_the_backbone(float64):
    gpt = randomize(GPT(tiny()))
    minigrad.set_default_dtype(np.float32)  # the caller's default differs from the model's dtype
    rm = RewardModel.from_gpt(gpt)
    assert all(p.dtype == np.float64 for p in rm.parameters())
    idx = [[1, 2, 3]]
    np.testing.assert_array_equal(rm.backbone.hidden_states(idx).numpy(), gpt.hidden_states(idx).numpy())
