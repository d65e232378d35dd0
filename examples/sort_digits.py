"""A minGPT-style algorithmic task: a tiny GPT learns to sort lists of digits.

Each example is 6 digits from 0..2 followed by the same digits sorted:
    input  2 0 1 1 0 2 | 0 0 1 1 2 2
The model reads the whole sequence (minus the last token) and is trained to
predict only the sorted half (the other targets are -1, which cross_entropy
ignores). At the end it sorts held-out lists greedily, one token at a time,
and prints the fraction it gets exactly right (100% after the default 500 iterations);
the last line of output is one JSON object with the metrics.
The held-out lists (every 7th of the 3^6 possible ones) never appear in training.

    python examples/sort_digits.py [--iters 500] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import minigrad
from gpt.model import GPT, GPTConfig
from gpt.sample import generate
from minigrad.nn.utils import clip_grad_norm_

LENGTH, DIGITS = 6, 3


def is_held_out(lists: np.ndarray) -> np.ndarray:
    """Every 7th possible list (by its value in base DIGITS) is never trained on."""
    return (lists @ DIGITS ** np.arange(LENGTH)) % 7 == 0


def make_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, DIGITS, size=(4 * n, LENGTH))
    x = x[~is_held_out(x)][:n]  # (n, LENGTH) training lists only
    seq = np.concatenate([x, np.sort(x, axis=1)], axis=1)  # (n, 2 * LENGTH)
    inputs, targets = seq[:, :-1], seq[:, 1:].copy()
    targets[:, : LENGTH - 1] = -1  # no loss on predicting the unsorted input
    return inputs, targets


EPILOG = """times on a 2-core machine, with OPENBLAS_NUM_THREADS=1:
  python examples/sort_digits.py --iters 10    about 1 s (the smallest run)
  python examples/sort_digits.py --iters 250   about 6 s (the slow test's run)
  python examples/sort_digits.py               about 9 s"""


def train(model: GPT, iters: int, device: str, rng: np.random.Generator) -> float:
    """iters + 1 AdamW steps on batches of 64 training lists; the seconds they took."""
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.99))
    t0 = time.perf_counter()
    for it in range(iters + 1):
        x, y = make_batch(rng, 64)
        _, loss = model(minigrad.tensor(x, device=device), minigrad.tensor(y, device=device))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it % 100 == 0:
            print(f"iter {it:4d}  loss {loss.item():.4f}  ({time.perf_counter() - t0:.0f} s)")
    return time.perf_counter() - t0


def sort_held_out(model: GPT) -> tuple[int, int]:
    """Greedy sorting of every held-out list: (how many come out exactly sorted, how many there are)."""
    every = np.stack(np.meshgrid(*[np.arange(DIGITS)] * LENGTH, indexing="ij"), -1).reshape(-1, LENGTH)
    problems = every[is_held_out(every)]  # lists the model has never seen
    correct = 0
    for p in problems:
        out = generate(model, list(p), LENGTH, temperature=0.0)
        correct += out[LENGTH:] == sorted(p.tolist())
    return correct, len(problems)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    minigrad.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = GPTConfig(vocab_size=DIGITS, block_size=2 * LENGTH - 1, n_layer=2, n_head=4, n_embd=64)
    model = GPT(cfg).to(args.device)
    train_seconds = train(model, args.iters, args.device, rng)
    correct, n = sort_held_out(model)
    print(f"held-out accuracy {correct / n:.3f} ({correct}/{n} lists sorted exactly)")
    print(json.dumps({"held_out_accuracy": round(correct / n, 4), "sorted": int(correct),
                      "held_out": n, "iters": args.iters, "train_seconds": round(train_seconds, 1)}))


if __name__ == "__main__":
    main()
