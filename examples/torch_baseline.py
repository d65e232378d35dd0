"""The PyTorch baseline for the README's quality and wall-clock comparison (needs torch).

Trains gpt/torch_gpt.py's twin of our GPT with the same data, batches, schedule,
AdamW groups and clipping as `python -m gpt train`, times the training steps
(the same span that `train_seconds` covers there), then reports the mean val
loss over --eval_iters random batches.

    python examples/torch_baseline.py --data ../shared/data/tinyshakespeare.txt
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from gpt.data import Batches, read_text
from gpt.model import GPTConfig
from gpt.tokenizer import CharTokenizer, encode_array
from gpt.torch_gpt import TorchGPT
from minigrad.optim import warmup_cosine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max_iters", type=int, default=2000)
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--min_lr", type=float, default=1e-4)
    ap.add_argument("--eval_iters", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    text = read_text(args.data)
    tok = CharTokenizer.train(text)
    cfg = GPTConfig(vocab_size=tok.vocab_size)  # nanoGPT's CPU configuration, as `python -m gpt train`
    batches = Batches(encode_array(tok, text), cfg.block_size, batch_size=12, seed=args.seed)
    model = TorchGPT(cfg)
    opt = model.configure_optimizer(0.1, args.learning_rate, (0.9, 0.99))

    def batch(split: str, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batches.sample(split, "cpu", rng)
        return torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())

    t_train = 0.0
    for it in range(args.max_iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(it, args.learning_rate, 100, args.max_iters, args.min_lr)
        _, loss = model(*batch("train"))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_train += time.perf_counter() - t0

    model.eval()
    rng = np.random.default_rng([args.seed, args.max_iters, True])
    with torch.no_grad():
        val = float(np.mean([model(*batch("val", rng))[1].item() for _ in range(args.eval_iters)]))
    print(json.dumps({"iter": args.max_iters, "val_loss": val, "train_seconds": round(t_train, 1)}))


if __name__ == "__main__":
    main()
