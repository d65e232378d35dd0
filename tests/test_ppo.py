"""PPO (gpt/ppo.py): the losses' gradients by finite differences, GAE and whitening against hand
numbers and a NumPy loop, the KL controller, one ppo_step against an SGD update computed by hand
from finite differences, rollouts, and bad input."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import minigrad
from gpt.model import GPT, GPTConfig
from gpt.ppo import (
    AdaptiveKLController,
    FixedKLController,
    PolicyWithValue,
    PPOBatch,
    PPOConfig,
    gae,
    make_ppo_batch,
    per_token_rewards,
    ppo_losses,
    ppo_step,
    rollout,
    whiten,
)
from gpt.logprobs import token_logprobs
from gpt.sample import generate, generate_batch

CFG = GPTConfig(vocab_size=10, block_size=12, n_layer=1, n_head=2, n_embd=8)


def span_mask(starts: list[int], ends: list[int], n: int) -> np.ndarray:
    """(B, n) bool, row b True on [starts[b], ends[b])."""
    t = np.arange(n)
    return (t >= np.array(starts)[:, None]) & (t < np.array(ends)[:, None])


def tensors(device: str, *arrays: np.ndarray, requires_grad: bool = False) -> list[minigrad.Tensor]:
    return [minigrad.tensor(a, device=device, requires_grad=requires_grad) for a in arrays]


def tiny_gpt(device: str) -> GPT:
    """A float64 GPT with weights large enough that its distributions are far from uniform."""
    m = GPT(CFG)
    rng = np.random.default_rng(0)
    for p in m.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape) + (1.0 if p.ndim == 1 else 0.0)
    return m.to(device)


# ---- the losses: reference values and gradients ------------------------------------------------


def reference_losses(new, old, adv, v, v_old, ret, m, eps, eps_v, vf_coef):
    """ppo_losses written again in NumPy, from the formulas of Huang et al. 2022."""
    ratio = np.exp(new - old)
    pg = np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - eps, 1 + eps))
    vf = np.maximum((v - ret) ** 2, (np.clip(v, v_old - eps_v, v_old + eps_v) - ret) ** 2)
    policy, value = pg[m].mean(), 0.5 * vf[m].mean()
    return policy + vf_coef * value, policy, value


def loss_inputs(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """new/old log-probs, advantages, values, old values, returns (3, 6) and a mask; new - old and
    v - v_old spread wide enough that some tokens are clipped and some are not."""
    rng = np.random.default_rng(seed)
    old = -rng.uniform(0.5, 3.0, (3, 6))
    new = old + rng.normal(0.0, 0.4, (3, 6))
    v_old = rng.normal(0.0, 1.0, (3, 6))
    v = v_old + rng.normal(0.0, 0.4, (3, 6))
    return [new, old, rng.normal(0.0, 1.0, (3, 6)), v, v_old, rng.normal(0.0, 1.0, (3, 6))], span_mask([1, 2, 0], [6, 5, 4], 6)


def test_ppo_losses_match_a_numpy_reference_and_clip_both_ways(device, float64):
    arrays, m = loss_inputs()
    out = ppo_losses(*tensors(device, *arrays), minigrad.tensor(m, device=device), 0.2, 0.2, 0.1)
    want = reference_losses(*arrays, m, 0.2, 0.2, 0.1)
    for got, w in zip((out.loss, out.policy_loss, out.value_loss), want):
        np.testing.assert_allclose(got.item(), w, rtol=1e-12)
    new, old = arrays[0], arrays[1]
    np.testing.assert_allclose(out.approx_kl, 0.5 * ((new - old)[m] ** 2).mean(), rtol=1e-12)
    assert 0 < out.clip_frac < 1 and 0 < out.value_clip_frac < 1  # the checks below see both branches


@pytest.mark.parametrize("part", ["policy_loss", "value_loss", "loss"])
def test_ppo_losses_gradcheck(device, float64, part):
    """Every input requires grad: the gradient reaches the model through new log-probs and values;
    the others are constants in PPO, but their gradients must be right too (a masked-out entry: 0)."""
    arrays, m = loss_inputs(seed=1)
    xs = tensors(device, *arrays, requires_grad=True)
    mask = minigrad.tensor(m, device=device)

    def fn(*xs):
        return getattr(ppo_losses(*xs, mask, 0.2, 0.2, 0.5), part)

    assert minigrad.gradcheck(fn, xs)
    assert minigrad.gradcheck(fn, xs, fast_mode=False)


def test_the_policy_gradient_is_zero_where_the_ratio_is_clipped(float64):
    """A token with A > 0 whose ratio is above 1 + clip_range has done enough: no gradient."""
    m = np.ones((1, 2), dtype=bool)
    new, old, adv = np.array([[0.5, 0.05]]), np.zeros((1, 2)), np.ones((1, 2))  # ratios e^0.5 (clipped), e^0.05
    xs = tensors("cpu", new, old, adv, np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), requires_grad=True)
    ppo_losses(*xs, minigrad.tensor(m), 0.2, 0.2, 0.1).policy_loss.backward()
    np.testing.assert_allclose(xs[0].grad.numpy(), [[0.0, -np.exp(0.05) / 2]], rtol=1e-12)  # d(-A ratio)/d new / 2 tokens


# ---- rewards, GAE, whitening --------------------------------------------------------------------


def test_per_token_rewards_hand_example(device, float64):
    m = np.array([[False, True, True, True], [False, False, True, False]])
    logp = np.array([[-9.0, -1.0, -2.0, -0.5], [-9.0, -9.0, -1.5, -9.0]])
    ref = np.array([[-1.0, -1.5, -1.0, -0.5], [-1.0, -1.0, -2.5, -1.0]])
    r = per_token_rewards(*tensors(device, np.array([3.0, -1.0]), logp, ref, m), kl_coef=0.1)
    # -0.1 (logp - ref) on the response; the score added at its last token; 0 elsewhere
    np.testing.assert_allclose(r.numpy(), [[0.0, -0.05, 0.1, 3.0], [0.0, 0.0, -0.1 - 1.0, 0.0]], rtol=1e-12)
    assert r.device == device and not r.requires_grad


def test_gae_hand_example(device, float64):
    """gamma 0.9, lam 0.8, so gamma * lam = 0.72. Row 0, response at t = 1..3:
    t=3: delta = 2 + 0 - (-1) = 3,            A = 3
    t=2: delta = 0 + 0.9 (-1) - 1 = -1.9,     A = -1.9 + 0.72 * 3 = 0.26
    t=1: delta = 1 + 0.9 * 1 - 0.5 = 1.4,     A = 1.4 + 0.72 * 0.26 = 1.5872
    Row 1, response at t = 1..2 then padding (its garbage rewards and values must not leak in):
    t=2: delta = 3 + 0 - 1 = 2,               A = 2
    t=1: delta = 1 + 0.9 * 1 - 2 = -0.1,      A = -0.1 + 0.72 * 2 = 1.34
    Returns are A + V on the response."""
    m = np.array([[False, True, True, True], [False, True, True, False]])
    rewards = np.array([[5.0, 1.0, 0.0, 2.0], [5.0, 1.0, 3.0, 7.0]])
    values = np.array([[5.0, 0.5, 1.0, -1.0], [9.0, 2.0, 1.0, 8.0]])
    adv, ret = gae(*tensors(device, rewards, values, m), gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv.numpy(), [[0, 1.5872, 0.26, 3.0], [0, 1.34, 2.0, 0]], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ret.numpy(), [[0, 2.0872, 1.26, 2.0], [0, 3.34, 3.0, 0]], rtol=1e-12, atol=1e-15)


def reference_gae(r: np.ndarray, v: np.ndarray, m: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """A_t = sum_l (gamma lam)^l delta_{t+l} over the rest of the response, row by row: the sum
    GAE's recursion computes, written out."""
    adv = np.zeros_like(r)
    for b in range(r.shape[0]):
        ts = np.flatnonzero(m[b])
        vals = np.append(v[b, ts], 0.0)  # V after the last response token is 0
        delta = r[b, ts] + gamma * vals[1:] - vals[:-1]
        for i, t in enumerate(ts):
            adv[b, t] = sum((gamma * lam) ** l * delta[i + l] for l in range(len(ts) - i))
    return adv


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.9, 0.0), (0.7, 1.0)])
def test_gae_equals_a_numpy_loop(device, float64, gamma, lam):
    rng = np.random.default_rng(3)
    m = span_mask([2, 0, 5, 1], [7, 3, 9, 9], 9)
    r, v = rng.normal(size=(4, 9)), rng.normal(size=(4, 9))
    adv, ret = gae(*tensors(device, r, v, m), gamma=gamma, lam=lam)
    want = reference_gae(r, v, m, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), np.where(m, want + v, 0.0), rtol=1e-10, atol=1e-12)


def test_whiten_gives_masked_mean_0_and_variance_1(device, float64):
    rng = np.random.default_rng(4)
    m = span_mask([1, 0, 3], [5, 6, 4], 6)
    x = rng.normal(3.0, 5.0, (3, 6))
    w = whiten(*tensors(device, x, m)).numpy()
    assert abs(w[m].mean()) < 1e-12
    np.testing.assert_allclose(w[m].var(ddof=1), 1.0, rtol=1e-8)
    assert (w[~m] == 0).all()
    np.testing.assert_allclose(w[m], (x[m] - x[m].mean()) / np.sqrt(x[m].var(ddof=1) + 1e-8), rtol=1e-12)
    scaled = whiten(*tensors(device, x, m), shift_mean=False).numpy()  # the mean kept
    np.testing.assert_allclose(scaled[m].mean(), x[m].mean(), rtol=1e-10)
    np.testing.assert_allclose(scaled[m].var(ddof=1), 1.0, rtol=1e-8)


# ---- the KL coefficient ----------------------------------------------------------------------------


def test_adaptive_kl_controller_hand_example():
    kl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    kl.update(current_kl=6.6, n_steps=256)  # error 6.6 / 6 - 1 = 0.1: value 0.2 (1 + 0.1 * 256 / 10000)
    assert kl.value == pytest.approx(0.2 * 1.00256, rel=1e-12)
    kl.update(current_kl=12.0, n_steps=256)  # error 1.0, clipped to 0.2
    assert kl.value == pytest.approx(0.2 * 1.00256 * 1.00512, rel=1e-12)
    kl.update(current_kl=0.0, n_steps=1000)  # error -1, clipped to -0.2
    assert kl.value == pytest.approx(0.2 * 1.00256 * 1.00512 * 0.98, rel=1e-12)
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 256)
    assert fixed.value == 0.05


# ---- one PPO epoch against a hand-computed SGD update ---------------------------------------------


def numeric_gradient(policy: PolicyWithValue, loss_fn, eps: float = 1e-6) -> list[np.ndarray]:
    """d loss / d p for every parameter, by central differences, one element at a time."""
    grads = []
    for p in policy.parameters():
        g = np.zeros(p.shape)
        for i in np.ndindex(*p.shape):
            x0 = p.data[i]
            p.data[i] = x0 + eps
            f_plus = loss_fn()
            p.data[i] = x0 - eps
            f_minus = loss_fn()
            p.data[i] = x0
            g[i] = (f_plus - f_minus) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("max_grad_norm", [None, 0.3])
def test_one_ppo_epoch_equals_a_hand_computed_sgd_update(float64, max_grad_norm):
    """Two minibatches of two sequences, SGD lr 0.5: after minibatch k the parameters must be
    theta - lr * g_k * min(1, max_norm / (|g_k| + 1e-6)), g_k the gradient at the current theta of
    the NumPy reference loss on minibatch k, by finite differences. The old log-probs are the
    policy's shifted by noise, so that some ratios start clipped."""
    minigrad.manual_seed(0)
    policy = PolicyWithValue(GPT(GPTConfig(vocab_size=6, block_size=6, n_layer=1, n_head=1, n_embd=4)))
    rng = np.random.default_rng(5)
    idx = minigrad.tensor(rng.integers(0, 6, (4, 6)))
    m = span_mask([2, 1, 3, 2], [5, 5, 5, 4], 5)
    with minigrad.no_grad():
        lp, v = (t.numpy() for t in policy.logprobs_and_values(idx))
    old_lp, old_v = lp + rng.normal(0, 0.3, lp.shape), v + rng.normal(0, 0.3, v.shape)
    adv, ret = rng.normal(size=lp.shape), rng.normal(size=lp.shape)
    batch = PPOBatch(idx, minigrad.tensor(m), *tensors("cpu", old_lp, old_v, adv, ret), kl=0.0)
    config = PPOConfig(minibatch_size=2, max_grad_norm=max_grad_norm, clip_range=0.2, clip_range_value=0.2, vf_coef=0.5)
    lr = 0.5

    expected = copy.deepcopy(policy)  # stepped by hand
    clipped = []
    for rows in ([0, 1], [2, 3]):
        def loss_fn():
            with minigrad.no_grad():
                new, val = (t.numpy() for t in expected.logprobs_and_values(idx[rows]))
            return reference_losses(new, old_lp[rows], adv[rows], val, old_v[rows], ret[rows], m[rows], 0.2, 0.2, 0.5)[0]

        grads = numeric_gradient(expected, loss_fn)
        norm = np.sqrt(sum((g**2).sum() for g in grads))
        scale = 1.0 if max_grad_norm is None else min(1.0, max_grad_norm / (norm + 1e-6))
        clipped.append(scale < 1)
        for p, g in zip(expected.parameters(), grads):
            p.data -= lr * scale * g

    stats = ppo_step(policy, minigrad.optim.SGD(policy.parameters(), lr=lr), batch, config)
    for (name, p), q in zip(policy.named_parameters(), expected.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-8, err_msg=name)
    assert any(clipped) == (max_grad_norm is not None)  # the clipping case really clips
    assert stats["clip_frac"] > 0  # and the ratio's clipping took part


def test_make_ppo_batch_holds_the_rollouts_numbers(float64):
    """With the policy as its own reference the KL is 0 and the rewards are the scores alone."""
    gpt = tiny_gpt("cpu")
    policy = PolicyWithValue(gpt)
    idx, mask = rollout(gpt, [[1, 2, 3], [4, 5, 6]], 4, seed=0)
    config = PPOConfig(lam=0.9, whiten_advantages=False)
    batch = make_ppo_batch(policy, copy.deepcopy(gpt), idx, mask, minigrad.tensor([1.0, -2.0]), 0.3, config)
    assert batch.kl == 0.0
    np.testing.assert_allclose(batch.logprobs.numpy(), token_logprobs(gpt, idx).detach().numpy(), rtol=1e-12)
    v = policy(idx)[1].detach().numpy()[:, :-1]
    r = np.zeros(mask.shape)
    r[:, -1] = [1.0, -2.0]  # the responses end at the last position
    want = reference_gae(r, v, mask.numpy(), 1.0, 0.9)
    np.testing.assert_allclose(batch.advantages.numpy(), want, rtol=1e-10, atol=1e-12)


# ---- rollouts --------------------------------------------------------------------------------------


def test_rollout_keeps_the_prompts_and_masks_exactly_the_response(device, float64):
    gpt = tiny_gpt(device)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8], [9]]
    idx, mask = rollout(gpt, prompts, max_new_tokens=5, seed=0, pad_id=0)
    assert idx.shape == (4, 8) and mask.shape == (4, 7) and idx.device == mask.device == device
    ids, m = idx.numpy(), mask.numpy()
    for b, p in enumerate(prompts):
        assert ids[b, : len(p)].tolist() == p
        assert (ids[b, len(p) + 5 :] == 0).all()  # right padding
        assert np.flatnonzero(m[b]).tolist() == list(range(len(p) - 1, len(p) + 4))  # entry t covers token t + 1
    same_length = [r for r, p in enumerate(prompts) if len(p) == 3]  # sampled as one batch, then row by row
    again = generate_batch(gpt, [prompts[r] for r in same_length], 5, seed=1)
    for k, r in enumerate(same_length):
        assert again[k, :3].tolist() == prompts[r]


def test_generate_batch_of_one_equals_generate_and_greedy_rows_equal_single_runs(float64):
    gpt = tiny_gpt("cpu")
    assert generate_batch(gpt, [[3, 1, 4]], 6, temperature=0.8, top_k=5, seed=7)[0].tolist() == \
        generate(gpt, [3, 1, 4], 6, temperature=0.8, top_k=5, seed=7)
    greedy = generate_batch(gpt, [[3, 1], [4, 1], [5, 9]], 6, temperature=0.0)
    for row in greedy:
        assert row.tolist() == generate(gpt, row[:2].tolist(), 6, temperature=0.0)


def test_policy_with_value_shares_one_forward(device, float64):
    gpt = tiny_gpt(device)
    policy = PolicyWithValue(gpt)
    idx = minigrad.tensor([[1, 2, 3, 4], [5, 6, 7, 8]], device=device)
    logits, values = policy(idx)
    assert logits.shape == (2, 4, 10) and values.shape == (2, 4) and values.dtype == np.float64
    lp, v = policy.logprobs_and_values(idx)
    np.testing.assert_allclose(lp.numpy(), token_logprobs(gpt, idx).numpy(), rtol=1e-12)
    np.testing.assert_allclose(v.numpy(), values.numpy()[:, :-1])
    assert {n for n, _ in policy.named_parameters()} >= {"v_head.summary.weight", "v_head.summary.bias"}


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_one_clear_error(float64):
    arrays, m = loss_inputs()
    xs, mask = tensors("cpu", *arrays), minigrad.tensor(m)
    with pytest.raises(ValueError, match=r"old_logprobs has shape \(3, 5\), response_mask \(3, 6\)"):
        ppo_losses(xs[0], xs[1][:, :5], *xs[2:], mask, 0.2, 0.2, 0.1)
    with pytest.raises(ValueError, match="clip_range must be > 0, got 0"):
        ppo_losses(*xs, mask, 0, 0.2, 0.1)
    with pytest.raises(ValueError, match="clip_range_value must be > 0, got -0.1"):
        ppo_losses(*xs, mask, 0.2, -0.1, 0.1)
    with pytest.raises(ValueError, match="response_mask must be a bool"):
        ppo_losses(*xs, minigrad.tensor(m.astype(np.float64)), 0.2, 0.2, 0.1)
    with pytest.raises(ValueError, match="response_mask row 1 has no response token"):
        m2 = m.copy()
        m2[1] = False
        ppo_losses(*xs, minigrad.tensor(m2), 0.2, 0.2, 0.1)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], got 1.5"):
        gae(xs[0], xs[1], mask, gamma=1.5, lam=0.9)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\], got -0.1"):
        gae(xs[0], xs[1], mask, gamma=1.0, lam=-0.1)
    with pytest.raises(ValueError, match=r"score has shape \(2,\), expected \(B,\) = \(3,\)"):
        per_token_rewards(minigrad.tensor([1.0, 2.0]), xs[0], xs[1], mask, 0.1)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        PPOConfig(gamma=-0.5)
    with pytest.raises(ValueError, match="target must be > 0"):
        AdaptiveKLController(0.1, target=0.0, horizon=100)


def test_bad_rollout_and_reference_get_clear_errors(float64):
    gpt = tiny_gpt("cpu")
    with pytest.raises(ValueError, match="exceeds block_size 12"):
        rollout(gpt, [[1, 2, 3]], max_new_tokens=10)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer"):
        rollout(gpt, [[1, 2, 3]], max_new_tokens=0)
    with pytest.raises(ValueError, match="out of range for vocab_size 10"):
        rollout(gpt, [[1, 12]], max_new_tokens=2)
    idx, mask = rollout(gpt, [[1, 2]], max_new_tokens=2, seed=0)
    other = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match="vocab_size is 11, the policy's 10"):
        make_ppo_batch(PolicyWithValue(gpt), other, idx, mask, minigrad.tensor([1.0]), 0.1, PPOConfig())


def test_a_mask_with_a_hole_or_an_array_for_a_tensor_is_refused(float64):
    arrays, m = loss_inputs()
    xs = tensors("cpu", *arrays)
    holed = m.copy()
    holed[0, 3] = False  # row 0 was True on 1..5
    with pytest.raises(ValueError, match="response_mask row 0 is not one run of True"):
        gae(xs[0], xs[1], minigrad.tensor(holed), gamma=1.0, lam=0.9)
    with pytest.raises(TypeError, match="whiten: x must be a Tensor, got ndarray"):
        whiten(arrays[0], minigrad.tensor(m))
