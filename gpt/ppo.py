"""PPO for a language model (RLHF's last stage): sample responses, score them, and push the policy
toward high reward while a per-token KL penalty keeps it near a frozen reference (the SFT model).

The recipe is Ouyang et al. 2022 (InstructGPT), with the details of "The N Implementation Details
of RLHF with PPO" (Huang et al. 2022) and the adaptive KL coefficient of Ziegler et al. 2019. One
iteration, each step a named function below:

    rollout          prompts -> ids (B, T) and response_mask (B, T-1), sampled with the KV cache
    make_ppo_batch   old log-probs and values (policy), reference log-probs, per_token_rewards,
                     gae, whitened advantages: everything PPO holds fixed during its epochs
    ppo_step         one epoch over the batch: recompute log-probs and values, ppo_losses,
                     backward, clip the gradient norm, optimizer step
    AdaptiveKLController.update(kl of the batch): steer the KL coefficient toward a target

Shapes: B batch, T tokens per sequence (prompt + response + right padding), C n_embd, V vocabulary.
A sequence of T tokens has T - 1 actions: entry t of every (B, T-1) array belongs to the token
idx[:, t+1], chosen in the state idx[:, :t+1] (gpt/logprobs.py's convention). response_mask
(B, T-1) is True on the response's tokens: one run per row, the prompt and padding False.

The losses are built from engine ops, so their gradients come from the ops' hand-written
backwards (tests/test_ppo.py checks them by finite differences). Rewards, advantages and
returns are constants to PPO: they are computed on arrays, outside the graph.
It leaves out the reward model (gpt/reward.py) and DPO, the route without one (gpt/dpo.py).

Read next: dpo.py (the same preferences, learnt without a reward model or sampling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.dpo import check_reference
from gpt.logprobs import token_logprobs
from gpt.model import GPT
from gpt.sample import generate_batch
from minigrad import nn
from minigrad.backend import get_array_module
from minigrad.nn.utils import clip_grad_norm_
from minigrad.tensor import Tensor

# ---- rollouts --------------------------------------------------------------------------


def rollout(
    policy: GPT,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    pad_id: int = 0,
) -> tuple[Tensor, Tensor]:
    """Sample one response of max_new_tokens tokens per prompt: (idx (B, T), response_mask (B, T-1)),
    both on the policy's device, T = longest prompt + max_new_tokens.

    Prompts of one length are sampled together (gpt/sample.py's generate_batch, KV cache); shorter
    ones are right-padded with pad_id, outside the mask (the model is causal: padding after a
    sequence changes nothing before it). Log-probabilities are not kept from sampling: PPO
    recomputes them with one forward pass (token_logprobs), which gives the graph the loss needs.
    Those are the model's own, at temperature 1: keep the defaults (temperature 1, no top-k or
    top-p) for on-policy samples; anything else samples another policy than the one PPO scores
    (Huang et al. 2022 list the mismatch among their details)."""
    if not prompts:
        raise ValueError("rollout: no prompts")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"rollout: max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not 0 <= pad_id < policy.config.vocab_size:
        raise ValueError(f"rollout: pad_id {pad_id} is out of range for vocab_size {policy.config.vocab_size}")
    lengths = [len(p) for p in prompts]
    T = max(lengths) + max_new_tokens
    idx = np.full((len(prompts), T), pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((len(prompts), T - 1), dtype=bool)  # (B, T-1)
    rng = np.random.default_rng(seed)  # one generator across the groups
    for n in sorted(set(lengths)):
        rows = [i for i, m in enumerate(lengths) if m == n]
        ids = generate_batch(policy, [list(prompts[i]) for i in rows], max_new_tokens,
                             temperature, top_k, top_p, rng)  # (b, n + max_new_tokens)
        idx[rows, : n + max_new_tokens] = ids
        mask[rows, n - 1 : n - 1 + max_new_tokens] = True  # entry t covers token t + 1: tokens n.. are the response
    device = policy.lm_head.weight.device
    return Tensor(idx, device=device), Tensor(mask, device=device)


# ---- the value head ----------------------------------------------------------------------


class ValueHead(nn.Module):
    """V(s_t): a Linear(n_embd, 1) on each position's hidden state, (B, T, C) -> (B, T). The value
    at position t estimates the return still to come after the state idx[:, :t+1]. Initialised
    as the reward heads of Huang et al. 2022 (weight N(0, 1/(C + 1)), bias 0), in the dtype and on
    the device of `like` (the GPT's weights); the name `summary` is TRL's."""

    def __init__(self, n_embd: int, like: Tensor) -> None:
        super().__init__()
        self.summary = nn.Linear(n_embd, 1)
        w = minigrad.randn(1, n_embd, dtype=like.dtype, device=like.device) / math.sqrt(n_embd + 1)  # (1, C)
        self.summary.weight.data = w.data
        self.summary.bias.data = minigrad.zeros(1, dtype=like.dtype, device=like.device).data  # (1,)

    def forward(self, hidden: Tensor) -> Tensor:
        B, T, _ = hidden.shape
        return self.summary(hidden).reshape(B, T)  # (B, T, 1) -> (B, T)


class PolicyWithValue(nn.Module):
    """The policy (a GPT) and its critic sharing one transformer: the LM head and the value head
    read the same hidden states (GPT.hidden_states), as TRL's AutoModelForCausalLMWithValueHead.
    Both losses' gradients reach the shared blocks. (Ouyang et al. 2022 train a separate value
    model, started from the reward model: better values, twice the weights.)"""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.v_head = ValueHead(gpt.config.n_embd, like=gpt.lm_head.weight)

    def forward(self, idx: Any) -> tuple[Tensor, Tensor]:
        """idx (B, T) -> logits (B, T, V) at every position and values (B, T)."""
        h = self.gpt.hidden_states(idx)  # (B, T, C)
        return self.gpt.lm_head(h), self.v_head(h)  # (B, T, V), (B, T)

    def logprobs_and_values(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The (B, T-1) log-probabilities of the tokens taken and the values of the states they
        were taken in (values[:, t] is V(idx[:, :t+1])), from one forward pass."""
        logits, values = self(idx)  # (B, T, V), (B, T)
        return token_logprobs(self.gpt, idx, logits), values[:, :-1]  # (B, T-1) each


# ---- checks --------------------------------------------------------------------------------


def check_mask(fn: str, response_mask: Tensor, **arrays: Tensor) -> None:
    """response_mask must be a bool (B, T-1) Tensor holding one run of True per row (the response),
    and every other array a Tensor of its shape; one error naming the first that is not."""
    if not isinstance(response_mask, Tensor) or response_mask.dtype != np.bool_ or response_mask.ndim != 2:
        raise ValueError(f"{fn}: response_mask must be a bool (B, T-1) Tensor, got "
                         f"{getattr(response_mask, 'dtype', type(response_mask).__name__)} "
                         f"of shape {getattr(response_mask, 'shape', None)}")
    for name, a in arrays.items():
        if not isinstance(a, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(a).__name__}")
        if tuple(a.shape) != tuple(response_mask.shape):
            raise ValueError(f"{fn}: {name} has shape {tuple(a.shape)}, response_mask {tuple(response_mask.shape)}: "
                             f"they must match")
    m = response_mask.data  # (B, T-1)
    runs = m[:, 0].astype(np.int64) + (m[:, 1:] & ~m[:, :-1]).sum(axis=1)  # (B,): False -> True steps
    if bool((runs != 1).any()):
        row = int((runs != 1).argmax())
        what = "has no response token" if int(runs[row]) == 0 else "is not one run of True (one response)"
        raise ValueError(f"{fn}: response_mask row {row} {what}")


def check_unit(fn: str, name: str, x: float) -> None:
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{fn}: {name} must be in [0, 1], got {x}")


# ---- rewards and advantages (constants to PPO: arrays, outside the graph) ------------------


def per_token_rewards(score: Tensor, logprobs: Tensor, ref_logprobs: Tensor, response_mask: Tensor,
                      kl_coef: float) -> Tensor:
    """The reward of every action, (B, T-1) (Ziegler et al. 2019; Ouyang et al. 2022, eq. 2):

        r_t = -kl_coef * (log pi(a_t|s_t) - log pi_ref(a_t|s_t))          at each response token
            + score                                                        at the last one too

    The first term is a one-sample estimate of the KL to the reference, paid token by token: it
    leashes the policy to the text the reference would write. score (B,) is the reward model's
    verdict on the whole response, given once, at its end. Outside the mask r_t = 0."""
    check_mask("per_token_rewards", response_mask, logprobs=logprobs, ref_logprobs=ref_logprobs)
    if tuple(score.shape) != (response_mask.shape[0],):
        raise ValueError(f"per_token_rewards: score has shape {tuple(score.shape)}, expected (B,) = "
                         f"({response_mask.shape[0]},): one score per response")
    m = response_mask.data  # (B, T-1)
    xp = get_array_module(m)
    rewards = xp.where(m, -kl_coef * (logprobs.data - ref_logprobs.data), 0.0)  # (B, T-1)
    n = m.shape[1]
    last = n - 1 - xp.argmax(m[:, ::-1], axis=1)  # (B,): the last True in each row
    rewards[xp.arange(m.shape[0]), last] += score.data
    return Tensor(rewards)


def gae(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016), backwards over the response:

        delta_t = r_t + gamma * V_{t+1} - V_t          V_{t+1} = 0 after the last response token
        A_t     = delta_t + gamma * lam * A_{t+1}       A = 0 after the last response token
        R_t     = A_t + V_t                             the value head's regression target

    lam = 1 gives the Monte-Carlo return minus V (high variance), lam = 0 the one-step TD error
    (biased by V). All (B, T-1); 0 outside the mask. Returns (advantages, returns)."""
    check_mask("gae", response_mask, rewards=rewards, values=values)
    check_unit("gae", "gamma", gamma)
    check_unit("gae", "lam", lam)
    m = response_mask.data  # (B, T-1)
    xp = get_array_module(m)
    r = xp.where(m, rewards.data, 0.0)  # (B, T-1)
    v = xp.where(m, values.data, 0.0)  # (B, T-1): V past the response is 0, the episode has ended
    adv = xp.zeros_like(r)  # (B, T-1)
    next_adv = xp.zeros_like(r[:, 0])  # (B,)
    next_value = xp.zeros_like(r[:, 0])  # (B,)
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]  # (B,)
        next_adv = xp.where(m[:, t], delta + gamma * lam * next_adv, 0.0)  # (B,)
        adv[:, t] = next_adv
        next_value = v[:, t]
    return Tensor(adv), Tensor(xp.where(m, adv + v, 0.0))


def whiten(x: Tensor, response_mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the masked entries (TRL's masked_whiten; Huang et al. 2022
    whiten the advantages of each batch): mean and unbiased variance of the response tokens only.
    shift_mean=False adds the mean back (scale only, as for rewards). 0 outside the mask."""
    check_mask("whiten", response_mask, x=x)
    m = response_mask.data  # (B, T-1)
    xp = get_array_module(m)
    n = m.sum()
    if int(n) < 2:
        raise ValueError(f"whiten: needs at least 2 masked entries for a variance, got {int(n)}")
    mean = xp.where(m, x.data, 0.0).sum() / n
    var = xp.where(m, (x.data - mean) ** 2, 0.0).sum() / (n - 1)  # Bessel's correction, as TRL
    out = (x.data - mean) / xp.sqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return Tensor(xp.where(m, out, 0.0))


# ---- the losses (engine ops: in the graph) -------------------------------------------------


def masked_mean(x: Tensor, response_mask: Tensor) -> Tensor:
    """sum(x * mask) / sum(mask): the mean over response tokens, as a 0-d Tensor in the graph."""
    m = response_mask.to(x.dtype)  # (B, T-1) of 0. and 1.
    return (x * m).sum() / m.sum()


@dataclass
class PPOLoss:
    """What ppo_losses returns: the loss to backpropagate, its two parts, and statistics."""

    loss: Tensor  # policy_loss + vf_coef * value_loss, 0-d
    policy_loss: Tensor  # the clipped surrogate, 0-d
    value_loss: Tensor  # the clipped value loss, 0-d
    approx_kl: float  # 0.5 * mean (log pi_new - log pi_old)^2: how far this epoch moved the policy
    clip_frac: float  # fraction of response tokens where the ratio's clipping took effect
    value_clip_frac: float  # fraction where the value's clipping took effect


def ppo_losses(new_logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, values: Tensor, old_values: Tensor,
               returns: Tensor, response_mask: Tensor, clip_range: float, clip_range_value: float,
               vf_coef: float) -> PPOLoss:
    """PPO's clipped objectives (Schulman et al. 2017; TRL's and Huang et al. 2022's form), all
    inputs (B, T-1), means over the response tokens (masked_mean):

        ratio       = exp(log pi_new - log pi_old)
        policy_loss = mean max(-A * ratio, -A * clip(ratio, 1 - clip_range, 1 + clip_range))
        V_clip      = clip(V, V_old - clip_range_value, V_old + clip_range_value)
        value_loss  = 0.5 * mean max((V - R)^2, (V_clip - R)^2)
        loss        = policy_loss + vf_coef * value_loss

    The max takes the pessimistic side: once the ratio has left [1 - eps, 1 + eps] in the
    direction the advantage favours, the clipped term wins and is constant, so that token's
    gradient is 0 and one batch cannot drag the policy far (the trust region, cheaply). The value
    loss is clipped the same way around the rollout's values. old_logprobs, advantages, old_values
    and returns are constants; the gradient reaches the model through new_logprobs and values."""
    check_mask("ppo_losses", response_mask, new_logprobs=new_logprobs, old_logprobs=old_logprobs,
               advantages=advantages, values=values, old_values=old_values, returns=returns)
    if not clip_range > 0:
        raise ValueError(f"ppo_losses: clip_range must be > 0, got {clip_range}")
    if not clip_range_value > 0:
        raise ValueError(f"ppo_losses: clip_range_value must be > 0, got {clip_range_value}")
    if not vf_coef >= 0:
        raise ValueError(f"ppo_losses: vf_coef must be >= 0, got {vf_coef}")
    log_ratio = new_logprobs - old_logprobs  # (B, T-1)
    ratio = log_ratio.exp()  # (B, T-1)
    pg = -advantages * ratio  # (B, T-1)
    pg_clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)  # (B, T-1)
    policy_loss = masked_mean(F.maximum(pg, pg_clipped), response_mask)

    v_clipped = values.clamp(old_values - clip_range_value, old_values + clip_range_value)  # (B, T-1)
    vf = (values - returns) ** 2  # (B, T-1)
    vf_clipped = (v_clipped - returns) ** 2  # (B, T-1)
    value_loss = 0.5 * masked_mean(F.maximum(vf, vf_clipped), response_mask)

    with minigrad.no_grad():  # statistics, not part of the loss
        approx_kl = 0.5 * masked_mean(log_ratio**2, response_mask).item()
        clip_frac = masked_mean((pg_clipped > pg).to(pg.dtype), response_mask).item()
        value_clip_frac = masked_mean((vf_clipped > vf).to(vf.dtype), response_mask).item()
    return PPOLoss(policy_loss + vf_coef * value_loss, policy_loss, value_loss, approx_kl, clip_frac, value_clip_frac)


# ---- the KL coefficient --------------------------------------------------------------------


class FixedKLController:
    """A constant KL coefficient: update does nothing."""

    def __init__(self, kl_coef: float) -> None:
        if not kl_coef >= 0:
            raise ValueError(f"FixedKLController: kl_coef must be >= 0, got {kl_coef}")
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. 2019, section 2.2: a proportional controller that steers the observed KL
    (per sequence, summed over the response) toward `target`:

        e     = clip(current_kl / target - 1, -0.2, 0.2)
        value = value * (1 + e * n_steps / horizon)

    KL above target raises the coefficient (a tighter leash), below lowers it; the clip bounds the
    change per update, and horizon (in samples) sets how fast it adapts."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if not init_kl_coef > 0:
            raise ValueError(f"AdaptiveKLController: init_kl_coef must be > 0, got {init_kl_coef}")
        if not target > 0:
            raise ValueError(f"AdaptiveKLController: target must be > 0, got {target}")
        if not horizon > 0:
            raise ValueError(f"AdaptiveKLController: horizon must be > 0, got {horizon}")
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """current_kl: the batch's mean KL per sequence; n_steps: the samples it came from."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


# ---- a PPO iteration ----------------------------------------------------------------------------


@dataclass
class PPOConfig:
    """PPO's settings. The clip ranges, vf_coef, gamma and lam default to those of OpenAI's
    lm-human-preferences, which Huang et al. 2022 reproduce and TRL's PPOConfig keeps."""

    clip_range: float = 0.2  # the policy ratio stays in [1 - clip_range, 1 + clip_range]
    clip_range_value: float = 0.2  # the value stays this close to the rollout's value
    vf_coef: float = 0.1  # weight of the value loss in the total loss
    gamma: float = 1.0  # discount: 1, as a response is short and its reward comes at the end
    lam: float = 0.95  # GAE's lambda: bias (0) against variance (1)
    max_grad_norm: float | None = 1.0  # clip the global gradient norm; None: no clipping
    minibatch_size: int | None = None  # sequences per optimizer step; None: the whole batch
    whiten_advantages: bool = True  # Huang et al. 2022: normalise advantages per batch

    def __post_init__(self) -> None:
        for name in ("clip_range", "clip_range_value"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PPOConfig: {name} must be > 0, got {getattr(self, name)}")
        check_unit("PPOConfig", "gamma", self.gamma)
        check_unit("PPOConfig", "lam", self.lam)
        if self.minibatch_size is not None and self.minibatch_size < 1:
            raise ValueError(f"PPOConfig: minibatch_size must be >= 1 or None, got {self.minibatch_size}")


@dataclass
class PPOBatch:
    """A scored rollout, fixed during PPO's epochs; every array but idx is (B, T-1)."""

    idx: Tensor  # (B, T) prompt + response ids
    response_mask: Tensor  # (B, T-1) bool
    logprobs: Tensor  # log pi_old of the tokens taken
    values: Tensor  # V_old
    advantages: Tensor  # from gae, whitened if asked
    returns: Tensor  # the value head's targets
    kl: float  # mean over sequences of sum_t (log pi_old - log pi_ref): what the KL controller reads


def make_ppo_batch(policy: PolicyWithValue, reference: GPT, idx: Tensor, response_mask: Tensor, scores: Tensor,
                   kl_coef: float, config: PPOConfig) -> PPOBatch:
    """Everything PPO holds fixed, from one forward pass of the policy and one of the frozen
    reference: old log-probs and values, per_token_rewards with the KL penalty, gae, whitening."""
    check_reference(policy.gpt, reference)
    with minigrad.no_grad():
        logprobs, values = policy.logprobs_and_values(idx)  # (B, T-1) each
        ref_logprobs = token_logprobs(reference, idx)  # (B, T-1)
    rewards = per_token_rewards(scores, logprobs, ref_logprobs, response_mask, kl_coef)  # (B, T-1)
    advantages, returns = gae(rewards, values, response_mask, config.gamma, config.lam)
    if config.whiten_advantages:
        advantages = whiten(advantages, response_mask)
    m = response_mask.data
    kl = float((get_array_module(m).where(m, logprobs.data - ref_logprobs.data, 0.0)).sum(axis=1).mean())
    return PPOBatch(idx, response_mask, logprobs, values, advantages, returns, kl)


def ppo_step(policy: PolicyWithValue, optimizer: Any, batch: PPOBatch, config: PPOConfig,
             seed: int | None = None) -> dict[str, float]:
    """One PPO epoch over `batch`: for each minibatch (in order, or shuffled by `seed`), recompute
    log-probs and values with the current weights, ppo_losses, backward, clip the global gradient
    norm, optimizer step. Returns the losses and statistics averaged over the minibatches.

    Dropout should be off (Huang et al. 2022): with it, the first minibatch's ratio is not 1."""
    B = batch.idx.shape[0]
    size = config.minibatch_size or B
    order = np.arange(B) if seed is None else np.random.default_rng(seed).permutation(B)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, float] = {}
    n = 0
    for start in range(0, B, size):
        rows = order[start : start + size].tolist()  # a host list indexes any backend
        new_logprobs, values = policy.logprobs_and_values(batch.idx[rows])  # (b, T-1) each
        out = ppo_losses(new_logprobs, batch.logprobs[rows], batch.advantages[rows], values, batch.values[rows],
                         batch.returns[rows], batch.response_mask[rows], config.clip_range, config.clip_range_value,
                         config.vf_coef)
        optimizer.zero_grad()
        out.loss.backward()
        grad_norm = clip_grad_norm_(params, config.max_grad_norm if config.max_grad_norm is not None else math.inf)
        optimizer.step()
        step = {"loss": out.loss.item(), "policy_loss": out.policy_loss.item(), "value_loss": out.value_loss.item(),
                "approx_kl": out.approx_kl, "clip_frac": out.clip_frac, "value_clip_frac": out.value_clip_frac,
                "grad_norm": grad_norm}
        for k, v in step.items():
            totals[k] = totals.get(k, 0.0) + v
        n += 1
    return {k: v / n for k, v in totals.items()}
