"""Aligning a Shakespeare GPT with a preference a program knows exactly: a reward model from noisy
preference pairs, PPO against it with a KL leash, DPO without it, each measured by the gold score.

The path of InstructGPT (Ouyang et al. 2022) on a toy whose truth is known:

    base        a character GPT pretrained on Shakespeare's plays (gpt.pretrained, kept in --base_dir)
    pairs       two samples of the base per prompt, labelled by the gold score with Bradley-Terry
                noise (gpt.preferences): mostly, not always, the gold order, as people label
    reward      the base with a scalar head reading the response, trained on the pairs (gpt.reward),
                three times from different starts and averaged (an ensemble); its held-out pair
                accuracy against the best the noisy labels allow (the gold agreement rate)
    ppo         the base trained to please the reward model, a per-token KL penalty to the frozen
                base with an adaptive coefficient (gpt.ppo)
    dpo         the base trained on the same pairs directly, no reward model, no sampling (gpt.dpo)
    ppo_no_kl   PPO with the KL coefficient at 0: what the reward model alone asks for

The gold score of a response is the fraction of its words that are words of the corpus, each
counted once (gpt.preferences.RealWordFraction with distinct=True: "a a a a" scores 1/4), over
whole words only: the last word, cut by the response's length, is left out unless the response
ends after it. The reward model never sees the gold
score, only the labelled pairs; PPO only sees the reward model. So the gold score of the policies'
samples says how much of what the pairs meant survived the two proxies (Gao et al. 2022's setup).

Each model is scored on the same held-out prompts, one sample per prompt at temperature 1: mean
gold score, mean reward-model score (normalised to mean 0, standard deviation 1 on the base's
samples, as Huang et al. 2022 normalise rewards) and the KL to the base, sum over the response of
log pi - log pi_base on the model's own samples (a Monte-Carlo estimate of KL(pi || pi_base), nats
per response). Every stage after the base runs once per seed (--seeds): the JSON gives each
seed's numbers and, for PPO and DPO, the gain in gold score over the base against the spread
between seeds. --plot draws the over-optimisation picture: gold and reward-model score against
the KL along PPO's training, with and without the leash.

    python examples/align_shakespeare.py [--seeds 0,1] [--plot docs/align_overoptimisation.png]

Leaves out: a supervised fine-tuning stage on demonstrations (the base is the pretrained model;
examples/finetune_instructions.py is that stage), a separate value model (the value head shares
the policy's transformer), PPO's reward whitening across batches, and any human.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from gpt.data import DataError, default_corpus  # noqa: E402
from gpt.dpo import dpo_loss, reference_logprob  # noqa: E402
from gpt.logprobs import sequence_logprob, token_logprobs  # noqa: E402
from gpt.model import GPT, GPTConfig  # noqa: E402
from gpt.ppo import (AdaptiveKLController, FixedKLController, PolicyWithValue, PPOConfig,  # noqa: E402
                     make_ppo_batch, ppo_step, rollout)
from gpt.preferences import RealWordFraction, gold_agreement_rate, label_pairs  # noqa: E402
from gpt.pretrained import pretrained_base  # noqa: E402
from gpt.reward import RewardModel, bradley_terry_loss, pair_accuracy  # noqa: E402
from minigrad.extras import exit_if_missing, require  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402

PROMPT, RESPONSE = 24, 40  # characters: a prompt ending after a space, then a response
BASE = GPTConfig(block_size=PROMPT + RESPONSE, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
BETA_BT = 10.0  # Bradley-Terry sharpness: a gold gap of 0.1 is labelled right 73% of the time, 0.3: 95%


# ---- the gold score and the prompts ------------------------------------------------------------


class Gold:
    """gold(response): the distinct real-word fraction of its whole words (a response cut inside a
    word drops that word: a cut is not a spelling mistake)."""

    def __init__(self, corpus: str) -> None:
        self.score = RealWordFraction(corpus, distinct=True)

    def __call__(self, response: str) -> float:
        if response and response[-1].isalpha():
            response = response[: max(response.rfind(" "), 0)]
        return self.score(response)


def draw_prompts(corpus: str, n: int, rng: np.random.Generator) -> list[str]:
    """n windows of PROMPT characters of the corpus, each ending after a space (the response
    starts a word), without a line break in their last 8 characters."""
    out: list[str] = []
    while len(out) < n:
        end = int(rng.integers(PROMPT, len(corpus)))
        if corpus[end - 1] == " " and "\n" not in corpus[end - 8 : end]:
            out.append(corpus[end - PROMPT : end])
    return out


def copy_of(model: GPT) -> GPT:
    twin = GPT(model.config)
    twin.load_state_dict(model.state_dict())
    return twin


class Sampler:
    """Samples of a model for a list of prompts, one per prompt, at temperature 1 (PPO's rollouts
    and every evaluation): ids (N, T), response_mask (N, T-1) and the responses' texts."""

    def __init__(self, tok: Any, batch: int = 128) -> None:
        self.tok, self.batch = tok, batch

    def __call__(self, model: GPT, prompts: list[str], seed: int) -> tuple[minigrad.Tensor, minigrad.Tensor, list[str]]:
        ids, masks = [], []
        for i, start in enumerate(range(0, len(prompts), self.batch)):
            idx, mask = rollout(model, [self.tok.encode(p) for p in prompts[start : start + self.batch]], RESPONSE,
                                seed=seed * 1000 + i)
            ids.append(idx.numpy())
            masks.append(mask.numpy())
        idx = np.concatenate(ids)  # (N, T)
        texts = [self.tok.decode(row[PROMPT:].tolist()) for row in idx]
        return minigrad.Tensor(idx), minigrad.Tensor(np.concatenate(masks)), texts


# ---- the reward model -----------------------------------------------------------------------------


def pair_ids(tok: Any, pairs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) ids (N, T): prompt + answer; every text has the same length here."""
    chosen = np.array([tok.encode(p.prompt + p.chosen) for p in pairs], dtype=np.int64)
    rejected = np.array([tok.encode(p.prompt + p.rejected) for p in pairs], dtype=np.int64)
    return chosen, rejected


def rm_view(ids: np.ndarray, end_id: int) -> np.ndarray:
    """What the reward model reads: the response alone, then an end token (N, RESPONSE + 1).
    - The response alone: the gold score judges only the response, so the prompt is only
      something to look past; as accurate as reading it too, within the noise, and 41 tokens
      instead of 64.
    - An end token: the reward is read at the last position; ending every text on the same token
      gives that position one job, summing up the text (InstructGPT's reward models read an
      end-of-text token), instead of also predicting the next character of a word cut by the
      length (held-out accuracy 0.648 against 0.608 on the same pairs, seed 0)."""
    return np.concatenate([ids[:, PROMPT:], np.full((len(ids), 1), end_id, dtype=ids.dtype)], axis=1)


def train_reward_model(base: GPT, train: tuple[np.ndarray, np.ndarray], end_id: int, args: argparse.Namespace,
                       rng: np.random.Generator) -> RewardModel:
    """Bradley-Terry on the training pairs, args.rm_epochs passes in random order (Ouyang et al. use
    one: the reward model overfits fast)."""
    rm = RewardModel.from_gpt(base)
    opt = minigrad.optim.AdamW(rm.parameters(), lr=args.rm_lr, weight_decay=0.0)
    chosen, rejected = train
    n = len(chosen)
    for _ in range(args.rm_epochs):
        order = rng.permutation(n)
        for start in range(0, n - args.batch_size + 1, args.batch_size):
            rows = order[start : start + args.batch_size]
            r = rm(rm_view(np.concatenate([chosen[rows], rejected[rows]]), end_id))  # (2b,): both halves at once
            loss = bradley_terry_loss(r[: len(rows)], r[len(rows) :])
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(list(rm.parameters()), 1.0)
            opt.step()
    return rm


class RewardEnsemble:
    """The mean of several reward models' standardised scores (Coste et al. 2023, "Reward model
    ensembles help mitigate overoptimization"): members differ in their head's start and the order
    of the pairs. ensemble(ids) -> (N,) scores with mean 0 and standard deviation 1 on `calibration`
    (the base's samples), as Huang et al. 2022 normalise a reward model.

    A reward model's mistakes are partly its own: in the full run the three members ranked 0.643 to
    0.655 of the 2,000 held-out pairs right, their mean 0.667 and 0.662 (seeds 0 and 1)."""

    def __init__(self, members: list[RewardModel], end_id: int, calibration: np.ndarray) -> None:
        self.members, self.end_id = members, end_id
        self.stats = [(float(r.mean()), float(r.std()) + 1e-8) for r in (self.raw(m, calibration) for m in members)]
        z = self.mean_z(calibration)
        self.mean, self.std = float(z.mean()), float(z.std()) + 1e-8

    def raw(self, rm: RewardModel, ids: np.ndarray, batch: int = 256) -> np.ndarray:
        """r(response) for each row of ids (N, T), prompt + response, without a graph: (N,)."""
        with minigrad.no_grad():
            return np.concatenate([rm(rm_view(ids[i : i + batch], self.end_id)).numpy()
                                   for i in range(0, len(ids), batch)])

    def mean_z(self, ids: np.ndarray) -> np.ndarray:
        return np.mean([(self.raw(m, ids) - mu) / sd for m, (mu, sd) in zip(self.members, self.stats)], axis=0)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return (self.mean_z(ids) - self.mean) / self.std


# ---- evaluation -------------------------------------------------------------------------------------


def kl_to(model: GPT, reference: GPT, idx: minigrad.Tensor, mask: minigrad.Tensor) -> np.ndarray:
    """(N,) sum over each response of log pi - log pi_ref, on the model's own samples."""
    with minigrad.no_grad():
        diff = token_logprobs(model, idx).numpy() - token_logprobs(reference, idx).numpy()  # (N, T-1)
    return np.where(mask.numpy(), diff, 0.0).sum(axis=1)


def evaluate(model: GPT, base: GPT, score: Any, gold: Gold, sample: Sampler, prompts: list[str],
             seed: int) -> dict[str, Any]:
    """Mean gold score, reward-model score and KL to the base of one sample per prompt."""
    idx, mask, texts = sample(model, prompts, seed)
    return {"gold": round(float(np.mean([gold(t) for t in texts])), 4),
            "rm": round(float(np.mean(score(idx.numpy()))), 3),
            "kl": round(float(np.mean(kl_to(model, base, idx, mask))), 3),
            "samples": [p + "|" + t for p, t in zip(prompts[:3], texts[:3])]}


# ---- PPO and DPO ------------------------------------------------------------------------------------


def train_ppo(base: GPT, score: Any, gold: Gold, sample: Sampler, corpus: str, kl_coef: float | None,
              args: argparse.Namespace, seed: int) -> tuple[GPT, list[dict[str, float]]]:
    """args.ppo_iters iterations: a rollout of args.rollout prompts, scored by the reward model,
    then args.ppo_epochs epochs of ppo_step. kl_coef None: the adaptive controller (Ziegler et al.:
    start 0.2, target args.kl_target nats); a number: fixed. The trajectory: each rollout's mean
    gold score, reward-model score and KL."""
    rng = np.random.default_rng(seed)
    policy = PolicyWithValue(copy_of(base))
    opt = minigrad.optim.Adam(policy.parameters(), lr=args.ppo_lr)
    kl_ctl = (AdaptiveKLController(0.2, args.kl_target, horizon=10_000) if kl_coef is None
              else FixedKLController(kl_coef))
    config = PPOConfig(minibatch_size=args.ppo_minibatch)
    trajectory = []
    for it in range(args.ppo_iters):
        prompts = draw_prompts(corpus, args.rollout, rng)
        idx, mask, texts = sample(policy.gpt, prompts, seed * 100_000 + it)
        scores = minigrad.Tensor(score(idx.numpy()).astype(np.float32))  # (B,)
        batch = make_ppo_batch(policy, base, idx, mask, scores, kl_ctl.value, config)
        for epoch in range(args.ppo_epochs):
            ppo_step(policy, opt, batch, config, seed=int(rng.integers(2**31)))
        kl_ctl.update(batch.kl, args.rollout)
        trajectory.append({"iter": it, "gold": float(np.mean([gold(t) for t in texts])),
                           "rm": float(scores.numpy().mean()), "kl": batch.kl, "kl_coef": kl_ctl.value})
    return policy.gpt, trajectory


def train_dpo(base: GPT, train: tuple[np.ndarray, np.ndarray], args: argparse.Namespace,
              rng: np.random.Generator) -> tuple[GPT, dict[str, float]]:
    """DPO on the training pairs, args.dpo_epochs passes; the base's log-probabilities computed once."""
    chosen, rejected = train
    mask = np.zeros((len(chosen), chosen.shape[1] - 1), dtype=bool)
    mask[:, PROMPT - 1 :] = True  # the response's tokens (entry t scores token t + 1)
    ref_c = np.concatenate([reference_logprob(base, chosen[i : i + 256], mask[i : i + 256]).numpy()
                            for i in range(0, len(chosen), 256)])
    ref_r = np.concatenate([reference_logprob(base, rejected[i : i + 256], mask[i : i + 256]).numpy()
                            for i in range(0, len(chosen), 256)])
    policy = copy_of(base)
    opt = minigrad.optim.AdamW(policy.parameters(), lr=args.dpo_lr, weight_decay=0.0)
    margins, accuracies = [], []
    for _ in range(args.dpo_epochs):
        order = rng.permutation(len(chosen))
        for start in range(0, len(chosen) - args.batch_size + 1, args.batch_size):
            rows = order[start : start + args.batch_size]
            b = len(rows)
            logps = sequence_logprob(policy, np.concatenate([chosen[rows], rejected[rows]]),
                                     np.concatenate([mask[rows], mask[rows]]))  # (2b,)
            loss, r_c, r_r = dpo_loss(logps[:b], logps[b:], minigrad.Tensor(ref_c[rows]),
                                      minigrad.Tensor(ref_r[rows]), args.dpo_beta)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(list(policy.parameters()), 1.0)
            opt.step()
            margins.append(float((r_c - r_r).numpy().mean()))
            accuracies.append(float((r_c.numpy() > r_r.numpy()).mean()))
    k = max(1, len(margins) // 10)  # the last tenth of the steps
    return policy, {"reward_margin_last": round(float(np.mean(margins[-k:])), 3),
                    "reward_accuracy_last": round(float(np.mean(accuracies[-k:])), 3)}


# ---- one seed ----------------------------------------------------------------------------------------


def run_seed(base: GPT, tok: Any, corpus: str, gold: Gold, eval_prompts: list[str], args: argparse.Namespace,
             seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    minigrad.manual_seed(seed)
    sample = Sampler(tok)
    # pairs: two samples of the base per prompt, labelled with Bradley-Terry noise
    n = args.pairs + args.held_out_pairs
    prompts = draw_prompts(corpus, n, rng)
    _, _, a = sample(base, prompts, seed * 10 + 1)
    _, _, b = sample(base, prompts, seed * 10 + 2)
    keep = [i for i in range(n) if a[i] != b[i]]
    pairs = label_pairs([a[i] for i in keep], [b[i] for i in keep], gold, BETA_BT, rng, [prompts[i] for i in keep])
    train_pairs, test_pairs = pairs[: -args.held_out_pairs], pairs[-args.held_out_pairs :]
    train, test = pair_ids(tok, train_pairs), pair_ids(tok, test_pairs)
    # the reward models, each on all the training pairs, and their mean normalised on the base's samples
    end_id = tok.encode("\n")[0]
    members = [train_reward_model(base, train, end_id, args, rng) for _ in range(args.rm_ensemble)]
    score = RewardEnsemble(members, end_id, calibration=np.concatenate(train))
    accuracy = pair_accuracy(score(test[0]), score(test[1]))
    member_accuracy = [pair_accuracy(score.raw(m, test[0]), score.raw(m, test[1])) for m in members]
    agreement = gold_agreement_rate(test_pairs, gold, BETA_BT)

    t_rm = time.perf_counter()
    print(f"seed {seed}: {len(train_pairs)} training pairs, reward model pair accuracy {accuracy:.3f} on "
          f"{len(test_pairs)} held-out pairs (gold agreement rate {agreement:.3f}; members "
          f"{', '.join(f'{a:.3f}' for a in member_accuracy)}), {t_rm - t0:.0f} s", flush=True)
    result: dict[str, Any] = {"pairs": len(train_pairs), "reward_model": {
        "pair_accuracy": round(accuracy, 4), "gold_agreement_rate": round(agreement, 4),
        "ratio": round(accuracy / agreement, 4), "members": [round(a, 4) for a in member_accuracy]}}
    result["base"] = evaluate(base, base, score, gold, sample, eval_prompts, seed)
    ppo, trajectory = train_ppo(base, score, gold, sample, corpus, None, args, seed)
    t_ppo = time.perf_counter()
    result["ppo"] = evaluate(ppo, base, score, gold, sample, eval_prompts, seed)
    dpo, dpo_stats = train_dpo(base, train, args, rng)
    result["dpo"] = {**evaluate(dpo, base, score, gold, sample, eval_prompts, seed), **dpo_stats}
    t_dpo = time.perf_counter()
    result["trajectories"] = {"ppo": trajectory}
    if args.no_kl:
        hacked, trajectory_no_kl = train_ppo(base, score, gold, sample, corpus, 0.0, args, seed)
        result["ppo_no_kl"] = evaluate(hacked, base, score, gold, sample, eval_prompts, seed)
        result["trajectories"]["ppo_no_kl"] = trajectory_no_kl
    result["seconds"] = {"pairs_and_reward_model": round(t_rm - t0), "ppo": round(t_ppo - t_rm),
                         "dpo": round(t_dpo - t_ppo), "total": round(time.perf_counter() - t0)}
    for name in ("base", "ppo", "dpo", "ppo_no_kl"):
        if name in result:
            r = result[name]
            print(f"seed {seed} {name:>9}: gold {r['gold']:.3f}  reward model {r['rm']:+.2f}  KL {r['kl']:6.2f}  "
                  f"| {r['samples'][0]!r}", flush=True)
    return result


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Gold and reward-model score against the KL to the base along PPO's training (seed 0):
    with the adaptive leash, and without one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_gold, ax_rm) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("ppo", "-"), ("ppo_no_kl", "--")):
        traj = results[0]["trajectories"].get(name)
        if not traj:
            continue
        kl = np.maximum([t["kl"] for t in traj], 0.0)
        label = "PPO, adaptive KL penalty" if name == "ppo" else "PPO, no KL penalty"
        ax_gold.plot(np.sqrt(kl), [t["gold"] for t in traj], style, label=label)
        ax_rm.plot(np.sqrt(kl), [t["rm"] for t in traj], style, label=label)
    base = results[0]["base"]
    ax_gold.axhline(base["gold"], color="grey", lw=0.8, label="base")
    ax_rm.axhline(base["rm"], color="grey", lw=0.8, label="base")
    ax_gold.set(xlabel="sqrt(KL to the base), nats^(1/2)", ylabel="gold score (distinct real words / words)",
                title="what the person wanted")
    ax_rm.set(xlabel="sqrt(KL to the base), nats^(1/2)", ylabel="reward-model score (base: mean 0, std 1)",
              title="what the reward model says")
    ax_gold.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


# ---- the whole path ------------------------------------------------------------------------------------


EPILOG = """times on a 2-core machine, one BLAS thread (the pretraining is skipped when --base_dir has it):
  python examples/align_shakespeare.py --pretrain_iters 5 --pairs 32 --held_out_pairs 16 --rm_epochs 1 --ppo_iters 1 --rollout 8 --dpo_epochs 1 --eval_prompts 8 --seeds 0 --no-no_kl  about 8 s (the smallest run)
  python examples/align_shakespeare.py --plot docs/align_overoptimisation.png
                                       the README's run (docs/chapters/12_alignment.md gives its time)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` (character tokenizer, block_size >= "
                    f"{PROMPT + RESPONSE}); default: pretrain one")
    ap.add_argument("--pretrain_iters", type=int, default=1500, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/align_base", help="where the pretraining run (without --ckpt) is kept")
    ap.add_argument("--seeds", default="0,1", help="the seeds of every stage after the base, comma-separated")
    ap.add_argument("--pairs", type=int, default=3000, help="training preference pairs")
    ap.add_argument("--held_out_pairs", type=int, default=2000, help="pairs for the reward model's accuracy")
    ap.add_argument("--batch_size", type=int, default=32, help="pairs per step of the reward model and of DPO")
    ap.add_argument("--rm_ensemble", type=int, default=3, help="reward models averaged (one: a single reward model)")
    ap.add_argument("--rm_epochs", type=int, default=2)
    ap.add_argument("--rm_lr", type=float, default=3e-4)
    ap.add_argument("--ppo_iters", type=int, default=40, help="PPO iterations (a rollout, then its epochs)")
    ap.add_argument("--rollout", type=int, default=64, help="prompts per PPO rollout")
    ap.add_argument("--ppo_epochs", type=int, default=4)
    ap.add_argument("--ppo_minibatch", type=int, default=16)
    ap.add_argument("--ppo_lr", type=float, default=3e-5)
    ap.add_argument("--kl_target", type=float, default=6.0, help="the adaptive KL controller's target, nats per response")
    ap.add_argument("--dpo_epochs", type=int, default=2)
    ap.add_argument("--dpo_lr", type=float, default=3e-5)
    ap.add_argument("--dpo_beta", type=float, default=0.1)
    ap.add_argument("--eval_prompts", type=int, default=256, help="held-out prompts every model is scored on")
    ap.add_argument("--no_kl", action=argparse.BooleanOptionalAction, default=True,
                    help="also run PPO without the KL penalty (first seed only)")
    ap.add_argument("--plot", help="write the over-optimisation picture here (needs matplotlib)")
    args = ap.parse_args(argv)
    if args.rm_ensemble < 1:
        ap.error(f"--rm_ensemble must be at least 1 (reward models averaged), got {args.rm_ensemble}")
    return args


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: mean gold gain over the base across seeds, and the spread (max - min) of the
    method's gold score across seeds; margin = gain - spread (> 0: the gain is beyond seed noise)."""
    out: dict[str, Any] = {"rm_accuracy_ratio_min": min(r["reward_model"]["ratio"] for r in results)}
    for name in ("ppo", "dpo"):
        gains = [r[name]["gold"] - r["base"]["gold"] for r in results]
        golds = [r[name]["gold"] for r in results]
        spread = max(golds) - min(golds)
        out[name] = {"gain": round(float(np.mean(gains)), 4), "spread": round(spread, 4),
                     "margin": round(float(np.mean(gains)) - spread, 4),
                     "kl": round(float(np.mean([r[name]["kl"] for r in results])), 3)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.plot:
        require("matplotlib", "examples/align_shakespeare.py --plot")  # now, not after the pretraining
    seeds = [int(s) for s in args.seeds.split(",")]
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        corpus = default_corpus()
    except DataError as e:  # the default corpus is not installed: say how to, in one line
        sys.exit(f"error: {e}")
    base, tok, origin = pretrained_base(corpus, args.base_dir, args.ckpt, model=BASE, max_iters=args.pretrain_iters,
                                        eval_iters=10, warmup_iters=min(100, args.pretrain_iters // 10))
    if not hasattr(tok, "stoi") or base.config.block_size < PROMPT + RESPONSE:
        raise ValueError(f"align_shakespeare: the base must use the character tokenizer and block_size >= "
                         f"{PROMPT + RESPONSE}")
    gold = Gold(corpus)
    eval_prompts = draw_prompts(corpus, args.eval_prompts, np.random.default_rng(12345))  # the same for all
    results = []
    for i, seed in enumerate(seeds):
        args_seed = argparse.Namespace(**{**vars(args), "no_kl": args.no_kl and i == 0})
        results.append(run_seed(base, tok, corpus, gold, eval_prompts, args_seed, seed))
    if args.plot:
        plot(results, args.plot)
    out = {**origin, "seeds": seeds, **summary(results), "minutes": round((time.perf_counter() - t0) / 60, 1),
           "cpu_minutes": round((time.process_time() - cpu0) / 60, 1),
           "per_seed": [{k: v for k, v in r.items() if k != "trajectories"} for r in results]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    with exit_if_missing():
        main()
