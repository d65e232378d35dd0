"""Train a small MLP on two interleaved spirals with minigrad, in seconds on a CPU.

The data is made in code: two arms of a spiral, one per class, with a little noise.
The network is Linear -> tanh -> Linear -> tanh -> Linear, trained with AdamW
on the cross-entropy loss; it prints the falling loss, the final accuracy, and a
JSON line of its metrics last.

    python examples/mlp_spirals.py [--steps 300] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import minigrad
import minigrad.functional as F
from minigrad import nn, optim


def make_spirals(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = np.sqrt(rng.random(n_per_class)) * 3 * np.pi  # angle along the arm, denser near the centre
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)  # (n, 2) in [-1, 1]
    x = np.concatenate([arm, -arm]) + rng.normal(scale=0.02, size=(2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class, dtype=np.int64), np.ones(n_per_class, dtype=np.int64)])
    return x.astype(np.float32), y


EPILOG = """times on a 2-core machine, with OPENBLAS_NUM_THREADS=1:
  python examples/mlp_spirals.py --steps 30    about 0.5 s (the smallest run)
  python examples/mlp_spirals.py               about 1 s"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default=minigrad.get_default_device())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    minigrad.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_spirals(500, rng)
    x_test, y_test = make_spirals(200, rng)
    x, y = minigrad.tensor(x_train, device=args.device), minigrad.tensor(y_train, device=args.device)

    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)).to(args.device)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)

    for step in range(args.steps + 1):
        loss = F.cross_entropy(model(x), y)  # full batch: 1000 points
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    with minigrad.no_grad():
        logits = model(minigrad.tensor(x_test, device=args.device))
    accuracy = float((logits.numpy().argmax(axis=1) == y_test).mean())
    print(f"test accuracy {accuracy:.3f} on {len(y_test)} held-out points")
    print(json.dumps({"final_loss": round(loss.item(), 4), "test_accuracy": accuracy, "steps": args.steps,
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:  # a bad --device, as the gpt CLI reports it: one line, no traceback
        sys.exit(f"error: {e}")
