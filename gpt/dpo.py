"""Direct preference optimisation (Rafailov et al. 2023, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model"): tune the policy on preference pairs with one
classification loss, no reward model and no sampling. It leaves out the training loop (the
example's) and where the log-probabilities come from (logprobs.py).

Shapes: B pairs. Every input is a (B,) sequence log-probability log π(y | x) of a whole answer
(logprobs.sequence_logprob), for the policy π being trained and the frozen reference π_ref
(the supervised model the policy started from).

The derivation, in one line each. RLHF maximises E[r(x, y)] - β KL(π || π_ref), whose optimum is
π*(y | x) ∝ π_ref(y | x) exp(r(x, y) / β). Solved for r, every policy defines an implicit reward

    r̂(x, y) = β (log π(y | x) - log π_ref(y | x))            (up to a term in x only)

and putting r̂ into the Bradley–Terry loss of reward.py (the x-only term cancels in a difference):

    L = mean_b -logsigmoid(β ((log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))))
      = mean_b -logsigmoid(r̂_chosen - r̂_rejected)

    dL/d log π(c) = -β sigmoid(r̂_rejected - r̂_chosen) / B = -dL/d log π(r)

so each pair pushes its chosen answer up and its rejected one down, harder where the implicit
reward still ranks them wrong. The gradient comes from logsigmoid's hand-written backward
(minigrad/ops/activation.py). β weighs the leash to the reference: small β lets the policy move far.

As TRL's DPOTrainer (loss_type "sigmoid"): the implicit rewards are returned detached, and their
margin r̂_chosen - r̂_rejected is what one logs (it should rise); the reference log-probabilities
are computed once, without a graph (reference_logprob), since π_ref never changes.

Read next: quantize.py, distill.py, prune.py (making a model smaller), t5.py (T5's text-to-text
recipe), then cli.py (the command line: train, sample, export, bench, plot).
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

import minigrad.functional as F
from gpt.logprobs import sequence_logprob
from gpt.model import GPT
from minigrad.autograd import no_grad
from minigrad.tensor import Tensor


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, chosen_rewards, rejected_rewards) from four (B,) sequence log-probabilities:
    loss = mean(-logsigmoid(β ((π_c - ref_c) - (π_r - ref_r)))), a scalar in the graph; the
    implicit rewards β (π_c - ref_c) and β (π_r - ref_r), (B,) each, detached. The reference
    log-probabilities must carry no graph (compute them once with reference_logprob)."""
    if not beta > 0:
        raise ValueError(f"dpo_loss: beta must be > 0 (the strength of the KL leash to the reference), got {beta}")
    named = {"policy_chosen_logps": policy_chosen_logps, "policy_rejected_logps": policy_rejected_logps,
             "ref_chosen_logps": ref_chosen_logps, "ref_rejected_logps": ref_rejected_logps}
    for name, t in named.items():
        if not isinstance(t, Tensor) or t.ndim != 1 or t.shape != policy_chosen_logps.shape:
            raise ValueError(f"dpo_loss: {name} must be a (B,) Tensor like policy_chosen_logps "
                             f"{getattr(policy_chosen_logps, 'shape', None)}, got {getattr(t, 'shape', type(t).__name__)}")
    for name in ("ref_chosen_logps", "ref_rejected_logps"):
        if named[name].requires_grad:
            raise ValueError(f"dpo_loss: {name} carries a graph (requires_grad): the reference is frozen, so "
                             "compute its log-probabilities once without one (reference_logprob, or under no_grad)")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,): log π(c) - log π_ref(c)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    loss = (-F.logsigmoid(beta * (chosen_logratios - rejected_logratios))).mean()  # ()
    return loss, (beta * chosen_logratios).detach(), (beta * rejected_logratios).detach()


def check_reference(policy: GPT, reference: GPT) -> None:
    """Raise naming the first config field (vocabulary, width, ...) where the reference differs from
    the policy: their log-probabilities must score the same token ids with the same architecture."""
    for f in fields(policy.config):
        a, b = getattr(policy.config, f.name), getattr(reference.config, f.name)
        if a != b:
            raise ValueError(f"check_reference: the reference model's {f.name} is {b!r}, the policy's {a!r}: "
                             "the reference must be a frozen copy of the policy's starting point")


def reference_logprob(reference: GPT, idx: Any, response_mask: Any) -> Tensor:
    """log π_ref(response | prompt), (B,), computed without a graph (the reference is never trained)."""
    with no_grad():
        return sequence_logprob(reference, idx, response_mask)
