"""A vision–text transformer reads handwritten numbers aloud, in German words.

    [image: 3 2 4 written by hand]   ->   dreihundertvierundzwanzig

An image of a number (1 to 4 of scikit-learn's 8x8 handwritten digits side by side: 8 x 8k pixels)
is cut into patches, digit by digit, and read by a ViT encoder (minigrad.nn.TransformerEncoder). A
character decoder (minigrad.nn.TransformerDecoder: causal self-attention over the characters written
so far) writes the number's German words, and in each decoder layer an nn.MultiheadAttention fuses
the two modalities: the text asks (queries from the characters), the image answers (keys and
values from the patches). German says the units before the tens ("vierundzwanzig", four-and-twenty),
so while it writes "vier" the decoder has to look at the last digit of the image, not the next one.

Patches: 8x8, one per digit, by measurement: in the same 3 minutes on the same busy machine the
model with 8x8 patches read 49% of the held-out numbers (teacher-forced), the one with 4x4 patches
(four per digit) 0.1%: it had not yet found out which patches make a digit. Almost every error is a
misread digit, not a misspelling, so besides the words the encoder also names each digit it sees
(an auxiliary cross-entropy on a Linear head over each digit's slot, --digit_loss; 0 turns it off).

Data: the 1,797 digit images are split 80/20 (stratified, fixed seed, as examples/vit_digits.py);
training images are built from the 80% only, test images from the 20% only. The numbers are 1..9999;
1,000 of them (10%, fixed seed) are held out: never trained on, and read at the end from test
images, one image each, by greedy decoding. Training draws a number of 1, 2, 3 or 4 digits with
probabilities 0.05, 0.1, 0.25, 0.6 (uniform numbers would be 90% four-digit ones and show the short
words almost never), and moves each digit by up to one pixel. Needs scikit-learn (the digits ship in
its wheel): pip install -e '.[vit]'.

    python examples/read_numbers.py [--minutes 12.5 | --steps N] [--digit_loss 1] [--plot PNG]

Last line of output: one JSON object with the metrics. Leaves out: a KV cache when decoding
(nn.TransformerDecoder has none, as PyTorch's), beam search, real photographs of numbers.

Shape legend: B batch, D digits (at most 4), N patches (D_max * patches per digit), Pp pixels per
patch, E d_model, T characters (with BOS or EOS), V vocabulary.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

# One BLAS thread: the products are small, and on a shared machine a second OpenBLAS thread that
# waits for a core slows every step (examples/vit_digits.py measured 10x).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread setting, which numpy reads at import)

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.extras import exit_if_missing, require  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402

FEATURE = "examples/read_numbers.py"

# ---- German number words, 1..9999 ----------------------------------------------------------------
#
# The conventions of examples/translate_numbers.py (a few lines written again here: examples stand
# alone): no "ein" before "hundert" or "tausend" (100 "hundert", 1000 "tausend", 1100
# "tausendhundert"); "eins" at the end (101 "hunderteins"), "ein" inside (21 "einundzwanzig"); "ß"
# and umlauts kept ("dreißig", "fünf"); no spaces.

ONES = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
        "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
LOWEST, HIGHEST = 1, 9999  # the numbers the model is trained on: one to four digits
MAX_DIGITS = len(str(HIGHEST))


def check_number(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not LOWEST <= n <= HIGHEST:
        raise ValueError(f"read_numbers: the number must be an integer in {LOWEST}..{HIGHEST} (the trained range), "
                         f"got {n!r}")
    return int(n)


def german(n: int) -> str:
    """1..9999 in German words, one string: 324 -> "dreihundertvierundzwanzig"."""
    n = check_number(n)
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    words = "" if thousands == 0 else ("" if thousands == 1 else ONES[thousands]) + "tausend"
    words += "" if hundreds == 0 else ("" if hundreds == 1 else ONES[hundreds]) + "hundert"
    if rest < 20:
        return words + (ONES[rest] if rest else "")
    tens, units = divmod(rest, 10)
    return words + ("" if units == 0 else ("ein" if units == 1 else ONES[units]) + "und") + TENS[tens]


PAD, BOS, EOS = 0, 1, 2  # padding, begin and end of the text
CHARS = "".join(sorted(set("".join(ONES + TENS) + "hundertausend")))
STOI = {c: i + 3 for i, c in enumerate(CHARS)}
VOCAB_SIZE = len(CHARS) + 3
MAX_CHARS = max(len(german(n)) for n in range(LOWEST, HIGHEST + 1)) + 1  # the longest text + EOS
IGNORE = -100  # target id that cross_entropy skips (padding after EOS)


def decode(ids: list[int]) -> str:
    """Characters up to the first EOS (or the end)."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(CHARS[i - 3] if i >= 3 else "?")
    return "".join(out)


def text_batch(numbers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """tgt_in = BOS + words (B, T) padded with PAD, tgt_out = words + EOS (B, T) padded with IGNORE."""
    texts = [[STOI[c] for c in german(n)] for n in numbers]
    T = max(len(t) for t in texts) + 1
    tgt_in = np.full((len(texts), T), PAD, dtype=np.int64)
    tgt_out = np.full((len(texts), T), IGNORE, dtype=np.int64)
    for b, t in enumerate(texts):
        tgt_in[b, : len(t) + 1] = [BOS] + t
        tgt_out[b, : len(t) + 1] = t + [EOS]
    return tgt_in, tgt_out


# ---- images of numbers ---------------------------------------------------------------------------


class Digits:
    """One split of the digit images, kept by class: images[d] holds the (n_d, 8, 8) images of digit d."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = [images[labels == d].astype(np.float32) for d in range(10)]

    def image_of(self, number: int, rng: np.random.Generator, shift: bool = False) -> np.ndarray:
        """number -> an (8, 8k) float32 image of its k digits, each a random image of that digit from this
        split, moved by up to one pixel each way with shift=True."""
        return self.images_of([number], rng, shift)[0]

    def images_of(self, numbers: list[int], rng: np.random.Generator, shift: bool = False) -> list[np.ndarray]:
        """image_of for each number, the shifts drawn for all their digits at once."""
        digits = [[int(c) for c in str(check_number(n))] for n in numbers]
        pick = [self.images[d][rng.integers(len(self.images[d]))] for ds in digits for d in ds]
        cells = np.stack(pick)  # (total digits, 8, 8)
        if shift:
            cells = shifted(cells, rng)
        ends = np.cumsum([len(ds) for ds in digits])
        return [np.concatenate(c, axis=1) for c in np.split(cells, ends[:-1])]  # each (8, 8k)


def shifted(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 8, 8) images, each moved by -1, 0 or +1 pixel in each direction, the border filled with 0."""
    n = len(cells)
    padded = np.pad(cells, ((0, 0), (1, 1), (1, 1)))  # (n, 10, 10)
    rows = rng.integers(0, 3, n)[:, None] + np.arange(8)  # (n, 8)
    cols = rng.integers(0, 3, n)[:, None] + np.arange(8)  # (n, 8)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, 8, 8)


def load_digits_split(seed: int = 0) -> tuple[Digits, Digits]:
    """The 1,797 8x8 digits scaled to [0, 1], split 80/20 stratified by class: (train, test)."""
    datasets = require("sklearn.datasets", FEATURE)
    from sklearn.model_selection import train_test_split

    d = datasets.load_digits()
    x = d.images.astype(np.float32) / 16.0  # pixels 0..16 -> 0..1
    x_train, x_test, y_train, y_test = train_test_split(x, d.target, test_size=0.2, stratify=d.target,
                                                        random_state=seed)
    return Digits(x_train, y_train), Digits(x_test, y_test)


def split_numbers(seed: int, n_held_out: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(held-out numbers, training numbers), both sorted: n_held_out of 1..9999 drawn at random, fixed seed."""
    numbers = np.arange(LOWEST, HIGHEST + 1)
    held = np.zeros(len(numbers), dtype=bool)
    held[np.random.default_rng(seed).choice(len(numbers), n_held_out, replace=False)] = True
    return numbers[held], numbers[~held]


LENGTH_WEIGHTS = (0.05, 0.1, 0.25, 0.6)  # how often training draws a number of 1, 2, 3, 4 digits


def by_length(numbers: np.ndarray) -> list[np.ndarray]:
    """The numbers of 1, 2, 3 and 4 digits, each in an array of its own."""
    lengths = np.char.str_len(numbers.astype(str))
    return [numbers[lengths == k] for k in range(1, MAX_DIGITS + 1)]


def sample_numbers(rng: np.random.Generator, pools: list[np.ndarray], n: int) -> list[int]:
    """n numbers: first a digit count by LENGTH_WEIGHTS, then a number of that many digits from `pools`
    (by_length's arrays)."""
    ks = rng.choice(MAX_DIGITS, size=n, p=LENGTH_WEIGHTS)
    return [int(pools[k][rng.integers(len(pools[k]))]) for k in ks]


# ---- the model ------------------------------------------------------------------------------------


def check_image(image: Any, image_size: int = 8) -> np.ndarray:
    """An (8, 8k) float image, k = 1..4, pixels in [0, 1], or one clear error."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"read_numbers: the image must be a NumPy array, got {type(image).__name__}")
    if image.dtype not in (np.float32, np.float64):
        raise TypeError(f"read_numbers: the image must be float32 or float64 with pixels in [0, 1] (the digits' 0..16 "
                        f"divided by 16), got dtype {image.dtype}")
    if image.ndim != 2 or image.shape[0] != image_size or image.shape[1] % image_size or \
            not 1 <= image.shape[1] // image_size <= MAX_DIGITS:
        raise ValueError(f"read_numbers: the image must be {image_size} x {image_size}k pixels, k = 1..{MAX_DIGITS} "
                         f"digits side by side, got shape {image.shape}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError(f"read_numbers: pixels must be in [0, 1], got [{image.min()}, {image.max()}]")
    return image


def patchify(images: list[np.ndarray], patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """k-digit images (8, 8k) -> patches (B, N, Pp), right-aligned: the units digit's patches always
    come last, so a patch's position says its place (units, tens, ...); and the padding mask (B, N),
    True at the empty slots before a shorter number. Each digit's patches in reading order."""
    P, D = patch_size, MAX_DIGITS
    per_digit = (8 // P) ** 2
    out = np.zeros((len(images), D * per_digit, P * P), dtype=np.float32)  # (B, N, Pp)
    pad = np.ones((len(images), D * per_digit), dtype=bool)  # (B, N)
    for b, img in enumerate(images):
        k = img.shape[1] // 8
        cells = img.reshape(8, k, 8).transpose(1, 0, 2)  # (k, 8, 8) one cell per digit
        p = cells.reshape(k, 8 // P, P, 8 // P, P).transpose(0, 1, 3, 2, 4).reshape(k * per_digit, P * P)
        out[b, (D - k) * per_digit :] = p  # (k * per_digit, Pp) at the right end
        pad[b, (D - k) * per_digit :] = False
    return out, pad


class NumberReader(nn.Module):
    """ViT encoder over the patches, character decoder with cross-attention to them, Linear to V.

        patches (B, N, Pp) -> patch_embed + place positions -> encoder -> memory (B, N, E)
        characters (B, T) -> char_embed + positions -> decoder(., memory) -> head -> logits (B, T, V)

    Both stacks are pre-LN (norm_first=True, as the GPT's and the ViT's blocks)."""

    def __init__(self, patch_size: int = 8, d_model: int = 64, nhead: int = 4, encoder_layers: int = 2,
                 decoder_layers: int = 2, dim_feedforward: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        if patch_size not in (1, 2, 4, 8):
            raise ValueError(f"read_numbers: patch_size must divide the 8x8 digit (1, 2, 4 or 8), got {patch_size}")
        self.patch_size = patch_size
        n_patches = MAX_DIGITS * (8 // patch_size) ** 2
        self.patch_embed = nn.Linear(patch_size * patch_size, d_model)
        self.patch_pos = nn.Parameter(minigrad.randn(1, n_patches, d_model) * 0.02)  # by place: units last
        self.char_embed = nn.Embedding(VOCAB_SIZE, d_model)
        self.char_embed.weight = nn.Parameter(minigrad.randn(VOCAB_SIZE, d_model) * 0.02)
        self.char_pos = nn.Parameter(minigrad.randn(1, MAX_CHARS, d_model) * 0.02)
        enc = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation="relu", batch_first=True,
                                         norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, encoder_layers, norm=nn.LayerNorm(d_model))
        dec = nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation="relu", batch_first=True,
                                         norm_first=True)  # its multihead_attn: the nn.MultiheadAttention that fuses
        self.decoder = nn.TransformerDecoder(dec, decoder_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, VOCAB_SIZE)
        self.digit_head = nn.Linear(d_model, 10)  # the auxiliary loss's: each digit slot's class

    @property
    def device(self) -> str:
        return self.head.weight.device

    def encode(self, images: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """k-digit images -> memory (B, N, E) and its padding mask (B, N), True at empty slots."""
        patches, pad = patchify(images, self.patch_size)  # (B, N, Pp), (B, N)
        x = self.patch_embed(Tensor(patches.astype(self.head.weight.dtype), device=self.device))  # (B, N, E)
        pad_t = Tensor(pad, device=self.device)  # (B, N)
        return self.encoder(x + self.patch_pos, src_key_padding_mask=pad_t), pad_t

    def decode(self, tgt_in: np.ndarray, memory: Tensor, pad: Tensor) -> Tensor:
        """tgt_in (B, T) with memory (B, N, E) -> logits (B, T, V) for the next character at each position.
        No padding mask on the text: the causal mask already keeps every real character from the
        padding after it, and the loss skips the padding's outputs."""
        T = tgt_in.shape[1]
        y = self.char_embed(Tensor(tgt_in, device=self.device)) + self.char_pos[:, :T]  # (B, T, E)
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=self.device)  # (T, T), -inf above
        h = self.decoder(y, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=pad)  # (B, T, E)
        return self.head(h)  # (B, T, V)

    def forward(self, images: list[np.ndarray], tgt_in: np.ndarray) -> Tensor:
        memory, pad = self.encode(images)
        return self.decode(tgt_in, memory, pad)

    def digit_logits(self, memory: Tensor) -> Tensor:
        """memory (B, N, E) -> each digit slot's 10 class scores (B, D, 10), from the mean of its patches."""
        B, N, E = memory.shape
        per_digit = N // MAX_DIGITS
        return self.digit_head(memory.reshape(B, MAX_DIGITS, per_digit, E).mean(axis=2))  # (B, D, 10)

    def loss(self, images: list[np.ndarray], numbers: list[int], digit_loss: float = 0.0) -> Tensor:
        """The words' mean cross-entropy per character, plus digit_loss times the digits' (an auxiliary
        loss on the encoder alone: it names each digit it sees, so the image side learns from every
        digit at once, not only through the characters that ask for it)."""
        memory, pad = self.encode(images)  # (B, N, E), (B, N)
        tgt_in, tgt_out = text_batch(numbers)  # (B, T), (B, T)
        logits = self.decode(tgt_in, memory, pad)  # (B, T, V)
        targets = Tensor(tgt_out.reshape(-1), device=self.device)  # (B*T,)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets)
        if digit_loss:
            labels = np.full((len(numbers), MAX_DIGITS), IGNORE, dtype=np.int64)  # (B, D) right-aligned, as the slots
            for b, n in enumerate(numbers):
                labels[b, MAX_DIGITS - len(str(n)) :] = [int(c) for c in str(n)]
            digit_targets = Tensor(labels.reshape(-1), device=self.device)  # (B*D,)
            loss = loss + digit_loss * F.cross_entropy(self.digit_logits(memory).reshape(-1, 10), digit_targets)
        return loss


# ---- reading --------------------------------------------------------------------------------------


def take(x: Tensor, rows: np.ndarray) -> Tensor:
    """x[rows], with the row ids moved to x's device first."""
    return x[Tensor(rows, device=x.device)]


def greedy_ids(model: NumberReader, images: list[np.ndarray]) -> list[list[int]]:
    """The most likely next character, one at a time; rows that wrote EOS drop out of the batch. No
    KV cache: each step runs the decoder on the whole prefix again. The ids written, EOS included."""
    model.eval()
    with minigrad.no_grad():
        memory, pad = model.encode(images)  # (B, N, E), (B, N)
        out = np.full((len(images), 1), BOS, dtype=np.int64)  # (B, t)
        active = np.arange(len(images))  # rows still without EOS
        for _ in range(MAX_CHARS):
            logits = model.decode(out[active], take(memory, active), take(pad, active))  # (b, t, V)
            nxt = np.full(len(images), PAD, dtype=np.int64)
            nxt[active] = logits.numpy()[:, -1].argmax(-1)
            out = np.concatenate([out, nxt[:, None]], axis=1)
            active = active[nxt[active] != EOS]
            if len(active) == 0:
                break
    rows = [row[1:].tolist() for row in out]
    return [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]


def greedy(model: NumberReader, images: list[np.ndarray]) -> list[str]:
    """The German words greedy decoding reads in each image."""
    return [decode(ids) for ids in greedy_ids(model, images)]


def read(model: NumberReader, image: np.ndarray) -> str:
    """One image of a number (8, 8k) floats in [0, 1] -> its German words."""
    return greedy(model, [check_image(image)])[0]


def teacher_forced_exact(model: NumberReader, images: list[np.ndarray], numbers: list[int],
                         batch_size: int = 500) -> float:
    """Fraction of images whose every character (and EOS) is the argmax given the true prefix: exactly
    the ones greedy decoding reads right, at the cost of one forward pass."""
    model.eval()
    right = 0
    with minigrad.no_grad():
        for i in range(0, len(numbers), batch_size):
            tgt_in, tgt_out = text_batch(numbers[i : i + batch_size])
            pred = model(images[i : i + batch_size], tgt_in).numpy().argmax(-1)  # (B, T)
            right += int(((pred == tgt_out) | (tgt_out == IGNORE)).all(axis=1).sum())
    model.train()
    return right / len(numbers)


# ---- training -------------------------------------------------------------------------------------


def train(model: NumberReader, train_digits: Digits, train_numbers: np.ndarray, eval_set: tuple[list, list],
          args: argparse.Namespace) -> tuple[int, float, list[tuple[float, int, float]]]:
    """Random training numbers on shifted training images until the budget (args.steps, or args.minutes
    of training time, checks excluded) ends; warmup, then a cosine that reaches 0 with the budget.
    Returns the steps, the training seconds and the checks (seconds, step, held-out teacher-forced exact)."""
    rng, pools = np.random.default_rng(args.seed + 1), by_length(train_numbers)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = minigrad.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                               lr=args.lr, betas=(0.9, 0.98))
    budget = 60.0 * args.minutes
    train_s, step, done, next_check = 0.0, 0, 0.0, args.check_every
    checks: list[tuple[float, int, float]] = []
    while done < 1.0:
        t0 = time.perf_counter()
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1.0 + math.cos(math.pi * done))
        for g in opt.param_groups:
            g["lr"] = lr
        numbers = sample_numbers(rng, pools, args.batch_size)
        images = train_digits.images_of(numbers, rng, shift=True)
        loss = model.loss(images, numbers, args.digit_loss)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_s += time.perf_counter() - t0
        done = step / args.steps if args.steps else train_s / budget
        if args.max_steps is not None and step >= args.max_steps:
            done = 1.0
        if train_s >= next_check or done >= 1.0:
            next_check += args.check_every
            exact = teacher_forced_exact(model, *eval_set)
            checks.append((train_s, step, exact))
            print(f"step {step:5d}  {train_s:6.1f} s  loss {loss.item():.4f}  lr {lr:.2e}  "
                  f"held-out exact (teacher-forced) {exact:.4f}", flush=True)
    return step, train_s, checks


# ---- the picture ----------------------------------------------------------------------------------


def cross_attention(model: NumberReader, image: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The last decoder layer's cross-attention (mean over heads) while it reads the image greedily:
    (the characters it wrote, # for EOS; weights (T, n) over the image's n real patches)."""
    ids = greedy_ids(model, [check_image(image)])[0]  # the characters written, EOS included
    tgt_in = np.array([[BOS] + ids[:-1]])  # (1, T): what the decoder saw while writing them
    with minigrad.no_grad():
        memory, pad = model.encode([image])  # (1, N, E), (1, N)
        T = tgt_in.shape[1]
        x = model.char_embed(Tensor(tgt_in, device=model.device)) + model.char_pos[:, :T]  # (1, T, E)
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=model.device)
        layers = list(model.decoder.layers)
        for layer in layers[:-1]:
            x = layer(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=pad)
        last = layers[-1]  # pre-LN: x = x + self_attn(norm1(x)), then cross-attention reads norm2(x)
        h = last.norm1(x)
        x = x + last.self_attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        _, weights = last.multihead_attn(last.norm2(x), memory, memory, key_padding_mask=pad,
                                         need_weights=True)  # (1, T, N)
    n_real = int((~pad.numpy()[0]).sum())
    chars = ["#" if i == EOS else decode([i]) for i in ids]  # "?" for PAD or BOS, "#" for EOS
    return chars, weights.numpy()[0, :, -n_real:]  # (T, n)


def plot_attention(image: np.ndarray, chars: list[str], weights: np.ndarray, patch_size: int, path: str) -> None:
    """The image above, the characters x patches heatmap below, one column block per digit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, per_digit = image.shape[1] // 8, (8 // patch_size) ** 2
    fig, (top, ax) = plt.subplots(2, 1, figsize=(7, 9), gridspec_kw={"height_ratios": [1, 4]})
    top.imshow(image, cmap="gray_r")
    top.set_xticks([8 * i + 3.5 for i in range(k)], [f"digit {i + 1}" for i in range(k)], fontsize=8)
    top.set_yticks([])
    top.set_title(f"the image: {k} handwritten digits from the test split", fontsize=9)
    ax.imshow(weights, cmap="viridis", aspect="auto")  # (T, n)
    ax.set_yticks(range(len(chars)), chars, fontsize=8)
    ax.set_xticks([per_digit * i + (per_digit - 1) / 2 for i in range(k)], [f"digit {i + 1}" for i in range(k)],
                  fontsize=8)
    for i in range(1, k):
        ax.axvline(per_digit * i - 0.5, color="white", lw=1)
    ax.set_xlabel(f"patches ({patch_size}x{patch_size} pixels, {per_digit} per digit, in reading order)", fontsize=8)
    ax.set_ylabel("characters written (# = end)", fontsize=8)
    ax.set_title("cross-attention of the last decoder layer (mean over heads): the text asks, the image answers",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def picture_number(held_out: np.ndarray) -> int:
    """A held-out number whose words say "vier" for its units digit before its tens: 4 digits, ending
    in 24..94 (so "...vierund...zig"), the first such one."""
    return int(next(n for n in held_out if n >= 1000 and n % 10 == 4 and n % 100 >= 20))


# ---- main -----------------------------------------------------------------------------------------

EPILOG = """times on the project's 2-core machine with OPENBLAS_NUM_THREADS=1, most of them measured while it was
shared (load average 2-12); in brackets the CPU time the run used, about its wall time on an idle machine:
  python examples/read_numbers.py --steps 3 --held_out 20          about 3 s (the smallest run; 12 s at load 11)
  python examples/read_numbers.py --steps 800 --held_out 200       about 1 minute (the slow test's run) [38 s]
  python examples/read_numbers.py --steps 2600                     about 5 minutes [116 s]: 95.4% exact
  python examples/read_numbers.py --steps 8000                     about 14 minutes [323 s]: 97.0% exact
  python examples/read_numbers.py --plot PNG                       about 14 minutes (the README's run; at load 11-12
      its 12.5 minutes of training made 2,617 steps [124 s]: 97.0% exact; an idle machine makes many more)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=12.5, help="training time budget; the cosine ends with it")
    ap.add_argument("--steps", type=int, default=None,
                    help="a budget in steps instead of minutes (the cosine ends with them): the same run anywhere")
    ap.add_argument("--max_steps", type=int, default=None, help="stop after this many steps, even within the budget")
    ap.add_argument("--held_out", type=int, default=None,
                    help="read only this many of the held-out numbers, spread over the range (default: all 1,000)")
    ap.add_argument("--check_every", type=float, default=120.0, help="seconds of training between held-out checks")
    ap.add_argument("--patch_size", type=int, default=8, choices=[2, 4, 8], help="patch side in pixels")
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--nhead", type=int, default=4)
    ap.add_argument("--encoder_layers", type=int, default=2)
    ap.add_argument("--decoder_layers", type=int, default=2)
    ap.add_argument("--dim_feedforward", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.0, help="in the encoder's and the decoder's layers")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100, help="steps of linear warmup")
    ap.add_argument("--digit_loss", type=float, default=1.0,
                    help="weight of the auxiliary loss that names each digit from the encoder's output (0: off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--plot", default=None, metavar="PNG", help="draw one held-out number's cross-attention here")
    args = ap.parse_args(argv)
    if args.d_model % args.nhead:
        ap.error(f"--d_model {args.d_model} is not divisible by --nhead {args.nhead}")
    if args.minutes <= 0 or (args.steps is not None and args.steps < 1):
        ap.error("--minutes must be > 0 and --steps >= 1")
    if args.plot:
        require("matplotlib", f"{FEATURE} --plot")  # now, not after the training
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    train_digits, test_digits = load_digits_split(args.seed)
    held_out, train_numbers = split_numbers(args.seed)
    if args.held_out is not None:
        held_out = held_out[np.linspace(0, len(held_out) - 1, args.held_out).astype(int)]  # spread over the range
    eval_rng = np.random.default_rng(args.seed + 2)
    held_images = test_digits.images_of([int(n) for n in held_out], eval_rng)  # test-split images only
    eval_set = (held_images, [int(n) for n in held_out])

    minigrad.manual_seed(args.seed)
    model = NumberReader(args.patch_size, args.d_model, args.nhead, args.encoder_layers, args.decoder_layers,
                         args.dim_feedforward, args.dropout).to(args.device)
    n_params = sum(p.data.size for p in model.parameters())
    print(f"NumberReader: {n_params:,} parameters, patches {args.patch_size}x{args.patch_size}, "
          f"budget {f'{args.steps} steps' if args.steps else f'{args.minutes} min'}, "
          f"{len(train_numbers)} training numbers, {len(held_out)} held-out numbers on test images")
    step, train_s, checks = train(model, train_digits, train_numbers, eval_set, args)

    t0 = time.perf_counter()
    got = greedy(model, held_images)
    truth = [german(int(n)) for n in held_out]
    right = [g == t for g, t in zip(got, truth)]
    exact = sum(right) / len(truth)
    digits = np.array([len(str(n)) for n in held_out])
    print(f"after {step} steps in {train_s:.0f} s: exact match {exact:.4f} on {len(truth)} held-out numbers "
          f"(by digits: " + ", ".join(f"{k}: {sum(r for r, d in zip(right, digits) if d == k)}/{(digits == k).sum()}"
                                      for k in range(1, MAX_DIGITS + 1)) + ")")
    wrong = [(n, g, t) for n, g, t, r in zip(held_out, got, truth, right) if not r]
    numbers_by_words = {german(n): n for n in range(LOWEST, HIGHEST + 1)}
    misread = sum(g in numbers_by_words for _, g, _ in wrong)  # well-formed words of another number
    digits_right = sum(sum(a == b for a, b in zip(str(n), str(numbers_by_words.get(g, ""))))
                       if len(str(numbers_by_words.get(g, ""))) == len(str(n)) else 0 for n, g in zip(held_out, got))
    digit_accuracy = digits_right / sum(len(str(n)) for n in held_out)  # words that are no number: all digits wrong
    print(f"  of the {len(wrong)} wrong: {misread} are the words of another number (a digit misread), "
          f"{len(wrong) - misread} are no number's words; digits read right: {digit_accuracy:.4f}")
    for n, g, t in wrong[:5]:
        print(f"  wrong: {n} -> {g} (should be {t}"
              f"{f', read as {numbers_by_words[g]}' if g in numbers_by_words else ''})")
    result = {"exact_match": round(exact, 4), "held_out": len(truth), "steps": step, "train_seconds": round(train_s, 1),
              "greedy_seconds": round(time.perf_counter() - t0, 1),
              "teacher_forced_exact": checks[-1][2], "misread": misread,
              "digit_accuracy": round(digit_accuracy, 4), "params": n_params, "patch_size": args.patch_size}
    if args.plot:
        n = picture_number(held_out) if args.held_out is None else int(held_out[0])
        image = test_digits.image_of(n, np.random.default_rng(args.seed + 3))  # (8, 8k) from the test split
        chars, weights = cross_attention(model, image)
        plot_attention(image, chars, weights, args.patch_size, args.plot)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    with exit_if_missing():
        main()
