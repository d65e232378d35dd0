"""The original Transformer, encoder and decoder, learns to translate German number words.

    dreihundertvierundzwanzig      ->  324
    siebzehntausendeinundachtzig   ->  17081     (and back: 17081 -> siebzehntausendeinundachtzig)

German says the units before the tens ("vierundzwanzig" is four-and-twenty), so the digits
come out in a different order from the words that name them: cross-attention has to learn
where to look. The numbers 0..999,999 are written by the rules in `number_words`; 2,000 of
them are held out and never trained on. Each direction (words -> digits, digits -> words)
trains its own `minigrad.nn.Transformer` (PyTorch's interface: d_model 64, 4 heads, 2 + 2
layers, feed-forward 256) on characters, with the paper's sinusoidal positions, padding
masks, teacher forcing, label smoothing, and a learning rate that falls along a cosine to 0
at the end of a budget (`--minutes` of training per direction, or `--steps`). It then
decodes the held-out numbers greedily (and with `--beam N`) and prints the exact-match rate;
the last line of output is one JSON object with the metrics.

    python examples/translate_numbers.py [--minutes 5 | --steps N] [--direction both] [--beam 4] [--plot [PNG]]

A shorter budget holds out fewer numbers (see `default_held_out`), so that it also decodes fewer.

Every `--check_every` seconds of training one teacher-forced pass over the held-out numbers
counts how many greedy decoding would get exactly right (greedy decoding is exact if and
only if every teacher-forced argmax is right), and the metrics report the training time at
which that first reached 99%. What it leaves out: dropout (a million numbers are hard to
overfit), a KV cache when decoding (nn.TransformerDecoder has none in PyTorch either),
checkpoints.

Shape legend: B batch, S source length, T target length, E d_model, V vocabulary.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.model import sinusoidal_positions
from minigrad import nn, optim
from minigrad.extras import exit_if_missing, require
from minigrad.nn.utils import clip_grad_norm_

# ---- German number words ------------------------------------------------------------------------
#
# Conventions (German allows both spellings for some): a one before "hundert" or "tausend"
# is not written (100 "hundert", 1000 "tausend", 1100 "tausendhundert"); one is "eins" at the
# end of a number (1 "eins", 101 "hunderteins", 1001 "tausendeins") and "ein" inside one
# (21 "einundzwanzig", 201000 "zweihunderteintausend"); "ß" and umlauts are kept ("dreißig",
# "fünf", "zwölf"); no spaces. 1,000,000 ("eine Million") is not included.

ONES = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
        "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
LARGEST = 999_999


def below_hundred(n: int) -> str:
    """1..99: units before tens, joined by "und" ("vierundzwanzig"), "ein" for the unit one."""
    if n < 20:
        return ONES[n]
    tens, units = divmod(n, 10)
    if units == 0:
        return TENS[tens]
    return ("ein" if units == 1 else ONES[units]) + "und" + TENS[tens]


def below_thousand(n: int) -> str:
    """1..999, ending in "eins" when it ends in one ("hunderteins")."""
    hundreds, rest = divmod(n, 100)
    head = "" if hundreds == 0 else ("" if hundreds == 1 else ONES[hundreds]) + "hundert"
    return head + (below_hundred(rest) if rest else "")


def number_words(n: int) -> str:
    """0..999,999 in German words, one string: 324 -> "dreihundertvierundzwanzig"."""
    if not 0 <= n <= LARGEST:
        raise ValueError(f"number_words: {n} is outside 0..{LARGEST}")
    if n == 0:
        return "null"
    thousands, rest = divmod(n, 1000)
    head = ""
    if thousands > 1:
        head = below_thousand(thousands)
        head = head[:-1] if head.endswith("eins") else head  # "einundzwanzigtausend", "hunderteintausend"
    if thousands:
        head += "tausend"
    return head + (below_thousand(rest) if rest else "")


# ---- characters, directions, batches --------------------------------------------------------------

PAD, BOS, EOS = 0, 1, 2  # padding, begin and end of a target sequence
CHARS = "0123456789" + "".join(sorted(set("".join(ONES + TENS) + "hundertausend")))
STOI = {c: i + 3 for i, c in enumerate(CHARS)}
VOCAB_SIZE = len(CHARS) + 3
IGNORE = -100  # target id that cross_entropy skips (padding after EOS)


@dataclass(frozen=True)
class Direction:
    name: str  # "words2digits" or "digits2words"
    max_target: int  # longest target in characters, plus EOS: the decoding limit

    def pair(self, n: int) -> tuple[str, str]:
        """(source text, target text) of the number n."""
        words, digits = number_words(n), str(n)
        return (words, digits) if self.name == "words2digits" else (digits, words)


DIRECTIONS = {"words2digits": Direction("words2digits", 7), "digits2words": Direction("digits2words", 66)}


def encode(text: str) -> list[int]:
    return [STOI[c] for c in text]


def decode(ids: list[int]) -> str:
    """Characters up to the first EOS (or the end)."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(CHARS[i - 3] if i >= 3 else "?")
    return "".join(out)


def default_held_out(minutes: float, steps: int | None) -> int:
    """2,000 for a full run (5 minutes, or 4,000 steps, per direction); a shorter one holds out 400
    per minute or one per two steps, at least 20, so that decoding them stays a small part of it: a
    model that has barely trained writes every output to the length limit (greedy digits -> words
    took 66 s of CPU time for 2,000 numbers, 2 s for the 100 of a 15-second run)."""
    return int(min(2000, max(20, steps / 2 if steps else 400 * minutes)))


def split_numbers(n_held_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out numbers, boolean table over 0..LARGEST that is True for held-out ones)."""
    rng = np.random.default_rng(seed)
    held_out = np.sort(rng.choice(LARGEST + 1, size=n_held_out, replace=False))
    is_held_out = np.zeros(LARGEST + 1, dtype=bool)
    is_held_out[held_out] = True
    return held_out, is_held_out


def sample_training_numbers(rng: np.random.Generator, is_held_out: np.ndarray, n: int) -> np.ndarray:
    """n numbers drawn uniformly from those not held out."""
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        draw = rng.integers(0, LARGEST + 1, size=2 * n)
        out = np.concatenate([out, draw[~is_held_out[draw]]])
    return out[:n]


def training_batches(rng: np.random.Generator, is_held_out: np.ndarray, direction: Direction,
                     batch_size: int, pool: int = 16) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Endless batches of training numbers. Each pool of `pool` batches is sorted by the length of
    the words, so that a batch holds numbers of similar length and little padding (the words run
    from 4 to 65 characters, most of them near 50), then served in random order."""
    while True:
        numbers = sample_training_numbers(rng, is_held_out, pool * batch_size)
        numbers = numbers[np.argsort([len(number_words(int(n))) for n in numbers], kind="stable")]
        for i in rng.permutation(pool):
            yield make_batch(numbers[i * batch_size : (i + 1) * batch_size], direction)


def make_batch(numbers: np.ndarray, direction: Direction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded arrays for teacher forcing: src (B, S), tgt_in = BOS + target (B, T), tgt_out =
    target + EOS (B, T). src and tgt_in are padded with PAD, tgt_out with IGNORE; each is only as
    long as the longest sequence in the batch."""
    pairs = [direction.pair(int(n)) for n in numbers]
    S, T = max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs) + 1
    src = np.full((len(pairs), S), PAD, dtype=np.int64)
    tgt_in = np.full((len(pairs), T), PAD, dtype=np.int64)
    tgt_out = np.full((len(pairs), T), IGNORE, dtype=np.int64)
    for b, (s, t) in enumerate(pairs):
        src[b, : len(s)] = encode(s)
        tgt_in[b, : len(t) + 1] = [BOS] + encode(t)
        tgt_out[b, : len(t) + 1] = encode(t) + [EOS]
    return src, tgt_in, tgt_out


# ---- the model ------------------------------------------------------------------------------------


class Translator(nn.Module):
    """Embedding * sqrt(E) + sinusoidal positions -> nn.Transformer -> Linear to the vocabulary.

    One character vocabulary and one embedding serve source and target. The masks follow
    nn.Transformer's conventions: boolean key padding masks are True where a position is
    padding (may not be attended to), the causal mask is float (-inf above the diagonal)."""

    def __init__(self, d_model: int, nhead: int, layers: int, dim_feedforward: int, max_len: int = 128) -> None:
        super().__init__()
        self.d_model = d_model
        # One table for source and target characters and the output layer, as in the paper. Its
        # entries start near 1/sqrt(E) and are multiplied by sqrt(E) on the way in, so they are about
        # as large as the positions' (sin and cos in -1..1); nn.Embedding's N(0, 1) would drown them.
        self.embed = nn.Embedding(VOCAB_SIZE, d_model)
        self.embed.weight = nn.Parameter(minigrad.randn(VOCAB_SIZE, d_model) * d_model**-0.5)
        pe = minigrad.tensor(sinusoidal_positions(max_len, d_model), dtype=self.embed.weight.dtype)  # (float64 table)
        self.register_buffer("pe", pe, persistent=False)
        self.transformer = nn.Transformer(
            d_model=d_model, nhead=nhead, num_encoder_layers=layers, num_decoder_layers=layers,
            dim_feedforward=dim_feedforward, dropout=0.0, batch_first=True,
        )
        self.generator = nn.Linear(d_model, VOCAB_SIZE, bias=False)
        self.generator.weight = self.embed.weight  # logits = h @ embed.weight^T

    def embed_positions(self, ids: np.ndarray) -> minigrad.Tensor:
        x = self.embed(minigrad.tensor(ids, device=self.pe.device)) * math.sqrt(self.d_model)  # (B, L, E)
        return x + self.pe[: ids.shape[1]]  # (B, L, E)

    def encode(self, src: np.ndarray) -> tuple[minigrad.Tensor, minigrad.Tensor]:
        """src (B, S) -> memory (B, S, E) and the source padding mask (B, S), True at padding."""
        src_pad = minigrad.tensor(src == PAD, device=self.pe.device)  # (B, S)
        return self.transformer.encoder(self.embed_positions(src), src_key_padding_mask=src_pad), src_pad

    def decode(self, tgt_in: np.ndarray, memory: minigrad.Tensor, src_pad: minigrad.Tensor) -> minigrad.Tensor:
        """tgt_in (B, T) with memory (B, S, E) -> logits (B, T, V) for the next character at each position."""
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=self.pe.device)  # (T, T), -inf above
        tgt_pad = minigrad.tensor(tgt_in == PAD, device=self.pe.device)  # (B, T)
        h = self.transformer.decoder(
            self.embed_positions(tgt_in), memory, tgt_mask=causal, tgt_is_causal=True,
            tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad,
        )  # (B, T, E)
        return self.generator(h)  # (B, T, V)

    def forward(self, src: np.ndarray, tgt_in: np.ndarray) -> minigrad.Tensor:
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)


# ---- decoding -------------------------------------------------------------------------------------


def take(x: minigrad.Tensor, rows: np.ndarray) -> minigrad.Tensor:
    """x[rows], with the row ids moved to x's device first."""
    return x[minigrad.tensor(rows, device=x.device)]


def greedy_decode(model: Translator, src: np.ndarray, max_len: int) -> list[list[int]]:
    """The most likely next character, one step at a time, for each source row; rows that have
    produced EOS drop out of the batch. Without a KV cache each step reruns the decoder on the
    whole prefix, as nn.TransformerDecoder would."""
    with minigrad.no_grad():
        memory, src_pad = model.encode(src)
        out = np.full((len(src), 1), BOS, dtype=np.int64)  # (B, t)
        active = np.arange(len(src))  # rows still without EOS
        for _ in range(max_len):
            logits = model.decode(out[active], take(memory, active), take(src_pad, active))  # (b, t, V)
            nxt = np.full(len(src), PAD, dtype=np.int64)
            nxt[active] = logits.numpy()[:, -1].argmax(-1)
            out = np.concatenate([out, nxt[:, None]], axis=1)
            active = active[nxt[active] != EOS]
            if len(active) == 0:
                break
    return [row[1:].tolist() for row in out]


def length_penalty(length: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """GNMT's ((5 + length) / 6) ** alpha, by which beam search divides a hypothesis' log-probability
    (the paper: alpha 0.6). Without it, a short wrong output can outscore the right long one: each
    character costs at least log 0.9 under label smoothing 0.1, so stopping early saves more than a
    wrong EOS costs."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model: Translator, src: np.ndarray, max_len: int, beam: int) -> list[list[int]]:
    """Keep the `beam` best prefixes per source row, ranked by their summed log-probabilities divided
    by length_penalty; a prefix that has produced EOS is finished and keeps its score. Returns the
    best one per row. Only the unfinished prefixes go through the decoder."""
    B, K, V = len(src), beam, VOCAB_SIZE
    with minigrad.no_grad():
        memory, src_pad = model.encode(src)  # (B, S, E)
        rows = np.repeat(np.arange(B), K)  # beam b*K + k reads source row b
        memory, src_pad = take(memory, rows), take(src_pad, rows)  # (B*K, S, E), (B*K, S)
        seqs = np.full((B * K, 1), BOS, dtype=np.int64)  # (B*K, t)
        scores = np.zeros(B * K)  # summed log-probabilities
        scores.reshape(B, K)[:, 1:] = -np.inf  # at the start all beams are the same prefix: keep one
        length = np.zeros(B * K)  # characters written, EOS included
        done = np.zeros(B * K, dtype=bool)
        for t in range(1, max_len + 1):
            logp = np.full((B * K, V), -np.inf)
            logp[done, PAD] = 0.0  # a finished beam continues with PAD at no cost
            alive = np.flatnonzero(~done)
            logits = model.decode(seqs[alive], take(memory, alive), take(src_pad, alive)).numpy()[:, -1]  # (alive, V)
            logits -= logits.max(-1, keepdims=True)
            logp[alive] = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # log_softmax
            cand = scores[:, None] + logp  # (B*K, V)
            cand_len = np.where(done, length, t)[:, None]  # (B*K, 1)
            ranked = (cand / length_penalty(cand_len)).reshape(B, K * V)
            best = np.argsort(-ranked, axis=1, kind="stable")[:, :K]  # (B, K) into K*V candidates
            parent = (np.arange(B)[:, None] * K + best // V).reshape(-1)  # (B*K,)
            token = (best % V).reshape(-1)
            scores, length = cand[parent, token], cand_len[parent, 0]
            seqs = np.concatenate([seqs[parent], token[:, None]], axis=1)
            done = done[parent] | (token == EOS)
            if done.all():
                break
        final = (scores / length_penalty(np.maximum(length, 1))).reshape(B, K)
        top = seqs.reshape(B, K, -1)[np.arange(B), final.argmax(1)]  # (B, t)
    return [row[1:].tolist() for row in top]


def translate(model: Translator, numbers: np.ndarray, direction: Direction, beam: int = 1,
              batch_size: int = 500) -> list[str]:
    """Target texts for the given numbers' source texts."""
    out: list[str] = []
    for i in range(0, len(numbers), batch_size):
        src, _, _ = make_batch(numbers[i : i + batch_size], direction)
        if beam > 1:
            ids = beam_search(model, src, direction.max_target, beam)
        else:
            ids = greedy_decode(model, src, direction.max_target)
        out += [decode(row) for row in ids]
    return out


def teacher_forced_exact(model: Translator, numbers: np.ndarray, direction: Direction, batch_size: int = 500) -> float:
    """Fraction of numbers whose every target character (and EOS) is the argmax given the true
    prefix: exactly the numbers greedy decoding gets right, at the cost of one forward pass."""
    right = 0
    with minigrad.no_grad():
        for i in range(0, len(numbers), batch_size):
            src, tgt_in, tgt_out = make_batch(numbers[i : i + batch_size], direction)
            pred = model(src, tgt_in).numpy().argmax(-1)  # (B, T)
            right += int(((pred == tgt_out) | (tgt_out == IGNORE)).all(axis=1).sum())
    return right / len(numbers)


# ---- training -------------------------------------------------------------------------------------


def train_direction(
    direction: Direction, held_out: np.ndarray, is_held_out: np.ndarray, args: argparse.Namespace
) -> tuple[Translator, dict]:
    """Train one model for args.steps steps, or else args.minutes of training time (checks excluded);
    returns it and its metrics."""
    minigrad.manual_seed(args.seed)
    batches = training_batches(np.random.default_rng(args.seed + 1), is_held_out, direction, args.batch_size)
    model = Translator(args.d_model, args.nhead, args.layers, args.dim_feedforward).to(args.device)
    opt = optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    budget = 60.0 * args.minutes
    train_s, step, next_check = 0.0, 0, args.check_every
    done = 0.0  # the fraction of the budget (steps or training seconds) spent
    checks: list[tuple[float, int, float]] = []  # (training seconds, step, teacher-forced exact match)
    print(f"{direction.name}: {model.num_parameters():,} parameters, "
          f"{f'{args.steps} steps' if args.steps else f'{args.minutes} minutes'} of training")
    while done < 1.0:
        t0 = time.perf_counter()
        # warmup over the first steps, then a half cosine from lr to 0 over the budget
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1.0 + math.cos(math.pi * done))
        for g in opt.param_groups:
            g["lr"] = lr
        src, tgt_in, tgt_out = next(batches)
        logits = model(src, tgt_in)  # (B, T, V)
        targets = minigrad.tensor(tgt_out.reshape(-1), device=args.device)  # (B*T,)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets, label_smoothing=args.label_smoothing)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_s += time.perf_counter() - t0
        done = step / args.steps if args.steps else train_s / budget
        if train_s >= next_check or done >= 1.0:
            next_check += args.check_every
            exact = teacher_forced_exact(model, held_out, direction)
            checks.append((train_s, step, exact))
            print(f"  step {step:5d}  {train_s:6.1f} s  loss {loss.item():.4f}  lr {lr:.2e}  "
                  f"held-out exact {exact:.4f}")
    reached = [c for c in checks if c[2] >= 0.99]
    metrics = {
        "steps": step,
        "train_seconds": round(train_s, 1),
        "held_out": len(held_out),
        "seconds_to_99": round(reached[0][0], 1) if reached else None,
        "teacher_forced_exact": checks[-1][2],
    }
    return model, metrics


def evaluate(model: Translator, direction: Direction, held_out: np.ndarray, beam: int) -> dict:
    t0 = time.perf_counter()
    got = translate(model, held_out, direction)
    truth = [direction.pair(int(n))[1] for n in held_out]
    right = [g == t for g, t in zip(got, truth)]
    metrics = {"exact_match": sum(right) / len(truth), "greedy_seconds": round(time.perf_counter() - t0, 1)}
    digits = np.array([len(str(n)) for n in held_out])
    print("  exact match by number of digits: " + ", ".join(
        f"{d}: {sum(r for r, k in zip(right, digits) if k == d)}/{(digits == d).sum()}" for d in range(1, 7)))
    wrong = [(direction.pair(int(n))[0], g, t) for n, g, t, r in zip(held_out, got, truth, right) if not r]
    for i in np.random.default_rng(0).permutation(len(wrong))[:5]:
        print(f"  wrong: {wrong[i][0]} -> {wrong[i][1]} (should be {wrong[i][2]})")
    if beam > 1:
        t0 = time.perf_counter()
        got = translate(model, held_out, direction, beam=beam)
        metrics["beam_exact_match"] = sum(g == t for g, t in zip(got, truth)) / len(truth)
        metrics["beam_seconds"] = round(time.perf_counter() - t0, 1)
    return metrics


# ---- the picture ----------------------------------------------------------------------------------


def cross_attention(model: Translator, n: int, direction: Direction) -> tuple[list[str], list[str], np.ndarray]:
    """The last decoder layer's cross-attention weights (mean over heads) while it writes the
    greedy translation of n: (source characters, output characters, weights (T, S))."""
    src = np.array([encode(direction.pair(n)[0])])  # (1, S)
    out = greedy_decode(model, src, direction.max_target)[0]
    out = out[: out.index(EOS) + 1] if EOS in out else out
    tgt_in = np.array([[BOS] + out[:-1]])  # (1, T): what the decoder saw while writing out
    with minigrad.no_grad():
        memory, src_pad = model.encode(src)
        x = model.embed_positions(tgt_in)  # (1, T, E)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        layers = list(model.transformer.decoder.layers)
        for layer in layers[:-1]:
            x = layer(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=src_pad)
        last = layers[-1]  # post-norm (norm_first=False): x = norm1(x + self_attn(x)), then cross-attention
        x = last.norm1(x + last.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0])
        _, weights = last.multihead_attn(x, memory, memory, key_padding_mask=src_pad, need_weights=True)
    labels = [decode([i]) if i != EOS else "#" for i in out]  # #: end of sequence (EOS)
    return list(direction.pair(n)[0]), labels, weights.numpy()[0]  # (T, S)


def plot_attention(pictures: list[tuple[str, list[str], list[str], np.ndarray]], path: str) -> None:
    """One heatmap per direction: output characters (rows) x source characters (columns), or
    transposed when the output is the longer text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pictures), 1, figsize=(8, 2.0 + 2.4 * (len(pictures) - 1)), squeeze=False)
    for ax, (name, source, output, w) in zip(axes[:, 0], pictures):
        ylabel, xlabel = "output", "source"
        if len(output) > len(source):  # keep the longer text along the x axis
            w, source, output, xlabel, ylabel = w.T, output, source, "output", "source"
        ax.imshow(w, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(source)), source, fontsize=7)
        ax.set_yticks(range(len(output)), output, fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f"{name}: cross-attention of the last decoder layer (mean over heads; # = end)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


# ---- main -----------------------------------------------------------------------------------------

EPILOG = """times on a 2-core machine, with OPENBLAS_NUM_THREADS=1:
  python examples/translate_numbers.py --steps 20            about 3 s (the smallest run)
  python examples/translate_numbers.py --minutes 0.25        about 30 s (40 s with --beam 4)
  python examples/translate_numbers.py --steps 1000          about 2 minutes (the slow test's run)
  python examples/translate_numbers.py                       about 12 minutes (5 per direction, then decoding)
  python examples/translate_numbers.py --beam 4 --plot PNG   about 16 minutes (the README's run, on a busy machine)"""


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--direction", choices=["both", *DIRECTIONS], default="both")
    ap.add_argument("--minutes", type=float, default=5.0, help="training time per direction; lr reaches 0 there")
    ap.add_argument("--steps", type=int, default=None,
                    help="a budget in steps per direction instead of minutes (lr reaches 0 there): the same run "
                         "anywhere")
    ap.add_argument("--beam", type=int, default=1, help="beam width for a second evaluation (1: greedy only)")
    ap.add_argument("--plot", nargs="?", const="translate_numbers_attention.png", default=None, metavar="PNG",
                    help="draw one example's cross-attention (needs matplotlib)")
    ap.add_argument("--held_out", type=int, default=None,
                    help="numbers held out from training and decoded at the end (default: 2000, fewer for a budget "
                         "under 5 minutes or 4000 steps: 400 per minute, 1 per 2 steps, at least 20)")
    ap.add_argument("--check_every", type=float, default=30.0, help="seconds of training between held-out checks")
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--nhead", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2, help="encoder layers, and as many decoder layers")
    ap.add_argument("--dim_feedforward", type=int, default=256)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=200, help="steps of linear warmup")
    ap.add_argument("--label_smoothing", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.beam < 1:
        ap.error(f"--beam must be >= 1, got {args.beam}")
    if args.d_model % args.nhead:
        ap.error(f"--d_model {args.d_model} is not divisible by --nhead {args.nhead}")
    if args.minutes <= 0 or (args.steps is not None and args.steps < 1):
        ap.error("--minutes must be > 0 and --steps >= 1")
    if args.plot:
        require("matplotlib", "examples/translate_numbers.py --plot")  # now, not after the training
    if args.held_out is None:
        args.held_out = default_held_out(args.minutes, args.steps)
    return args


def main() -> None:
    args = parse_args()
    held_out, is_held_out = split_numbers(args.held_out, args.seed)
    results, pictures = {}, []
    names = list(DIRECTIONS) if args.direction == "both" else [args.direction]
    for name in names:
        direction = DIRECTIONS[name]
        model, metrics = train_direction(direction, held_out, is_held_out, args)
        model.eval()
        metrics.update(evaluate(model, direction, held_out, args.beam))
        print(f"{name}: exact match {metrics['exact_match']:.4f} on {len(held_out)} held-out numbers "
              f"after {metrics['train_seconds']} s of training ({metrics['steps']} steps)")
        results[name] = metrics
        if args.plot:
            pictures.append((name, *cross_attention(model, int(held_out[len(held_out) // 3]), direction)))
    if args.plot:
        plot_attention(pictures, args.plot)
    print(json.dumps(results))


if __name__ == "__main__":
    with exit_if_missing():
        main()
