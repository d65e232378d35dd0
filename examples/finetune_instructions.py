"""Instruction fine-tuning: teach a pretrained GPT to follow short instructions in the Alpaca format.

The data is made in code: four kinds of instruction over words of the plays and numbers,

    Write the word in capital letters: crown   ->  CROWN
    Reverse the word: crown                      ->  nworc
    Sort the letters of: crown                   ->  cnorw
    What number comes after 419?                 ->  420

each wrapped in the Alpaca prompt (Taori et al. 2023), the response ended by a newline:

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    Reverse the word: crown

    ### Response:
    nworc

The loss counts only the response: every target inside the prompt is -1, the ignore_index of
GPT's cross-entropy, so the model is not trained to write instructions, only to answer them.
Held out: one word in five and one number in seven never appear in training in any task; the
exact-match accuracy on 100 of them per task (--n_test; greedy decoding up to the newline) is
measured before and after. Each row of a batch draws its task uniformly (there are 857 training
numbers and 3,848 training words).

Every example starts with the same 124 characters (PREAMBLE, up to the instruction), two thirds
of its length. A step computes them once, for one row with gradients, and lets all B rows attend
to their keys and values (the KV cache that sampling uses): the same loss and gradients as B full
sequences (a test checks it) for about half the time.

The start is a pretrained character-level GPT: --ckpt, or BASE pretrained briefly on the plays
(all but gpt.genres.TEST_PLAYS, the four that the classification examples can hold out) by
gpt.pretrained.pretrained_base, which keeps the run in --base_dir and reuses it. Its vocabulary
lacks '#', so the token table grows by the missing characters (new rows drawn as at
initialisation; the head is tied, so it grows with it). Copying letters by their position is
what the model has to learn here, and a 4-layer, 64-wide model needs thousands of steps for it:
the default 3,000 of batch 32 (5 minutes on one CPU core) reach 97% on the held-out
instructions; a few hundred of batch 16 left it at 0%.

    OPENBLAS_NUM_THREADS=1 python examples/finetune_instructions.py [--ckpt out/ckpt.npz] [--steps 3000]

Leaves out: real instruction data sets, chat templates, sampling settings beyond greedy, LoRA here
(finetune_classify.py compares it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from gpt.data import DataError, default_corpus  # noqa: E402
from gpt.genres import TEST_PLAYS  # noqa: E402
from gpt.model import GPT, GPTConfig  # noqa: E402
from gpt.pretrained import pretrained_base  # noqa: E402
from gpt.tokenizer import CharTokenizer  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
TASKS = {
    "capitals": ("Write the word in capital letters: {w}", lambda w: w.upper()),
    "reverse": ("Reverse the word: {w}", lambda w: w[::-1]),
    "sort": ("Sort the letters of: {w}", lambda w: "".join(sorted(w))),
    "next": ("What number comes after {n}?", lambda n: str(n + 1)),
}
PREAMBLE = ALPACA.split("{instruction}")[0]  # the 124 characters every example starts with
# pretrained without --ckpt; block_size leaves room for the longest example (186 characters)
BASE = GPTConfig(block_size=192, n_layer=4, n_head=4, n_embd=64, dropout=0.0)
WARMUP = 100  # steps of linear warmup of the learning rate
Example = tuple[str, str, str]  # (task, prompt, response)


# ---- the data set -----------------------------------------------------------------------------
def make_examples(seed: int, n_test: int = 100) -> tuple[dict[str, list[Example]], list[Example]]:
    """Training examples by task, and n_test held-out ones of each task."""
    words = sorted({w for w in re.findall(r"\b[a-z]{3,5}\b", default_corpus())})
    rng = np.random.default_rng(seed)
    rng.shuffle(words)
    held_words = set(words[::5])
    train: dict[str, list[Example]] = {}
    test: list[Example] = []
    for task, (template, answer) in TASKS.items():
        if task == "next":
            items = [(n, n % 7 == 0) for n in range(1000)]
        else:
            items = [(w, w in held_words) for w in words]
        key = "n" if task == "next" else "w"
        train[task], held_out = [], []
        for item, held in items:
            example = (task, ALPACA.format(instruction=template.format(**{key: item})), answer(item) + "\n")
            (held_out if held else train[task]).append(example)
        test += [held_out[i] for i in rng.permutation(len(held_out))[:n_test]]
    return train, test


def grow_vocab(model: GPT, tok: CharTokenizer, text: str) -> CharTokenizer:
    """Append the characters of `text` the tokenizer lacks, with new rows of the (tied) token table."""
    new = sorted(set(text) - set(tok.chars))
    if not new:
        return tok
    wte = model.transformer.wte.weight
    rows = minigrad.randn(len(new), wte.shape[1], dtype=wte.dtype).data * 0.02  # as GPT's init
    grown = nn.Parameter(minigrad.tensor(np.concatenate([wte.numpy(), rows])))
    model.transformer.wte.weight = grown
    model.transformer.wte.num_embeddings = grown.shape[0]
    model.lm_head.weight = grown  # tied: the head reads the same table
    model.config.vocab_size = grown.shape[0]
    return CharTokenizer(tok.chars + new)


def make_batch(tok: CharTokenizer, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (B, T) of what follows the PREAMBLE: instruction + response, padded on
    the right; targets -1 except on the response."""
    P = len(PREAMBLE)
    seqs = [(tok.encode(prompt[P:]), tok.encode(response)) for _, prompt, response in examples]
    T = max(len(p) + len(r) for p, r in seqs) - 1
    pad = tok.stoi[" "]
    x, y = np.full((len(seqs), T), pad), np.full((len(seqs), T), -1)
    for b, (p, r) in enumerate(seqs):
        s = p + r
        x[b, : len(s) - 1] = s[:-1]
        y[b, len(p) - 1 : len(s) - 1] = r  # position t predicts token t + 1: the response's tokens only
    return x, y


def loss_on_responses(model: GPT, tok: CharTokenizer, x: np.ndarray, y: np.ndarray) -> minigrad.Tensor:
    """GPT's loss on the full sequences PREAMBLE + x (targets y; the preamble's are all -1).
    The preamble is the same in every row, so its keys and values are computed once, for one row
    with gradients, and broadcast to the B rows (whose backward sums the rows' gradients): the
    same loss and gradients as B full sequences, at a third of the positions."""
    cache: list[dict[str, Any]] = [{} for _ in model.transformer.h]
    model(np.array([tok.encode(PREAMBLE)]), cache=cache)  # fills each layer's k, v: (1, Hkv, P, hs)
    for layer in cache:
        for name in ("k", "v"):
            layer[name] = layer[name].broadcast_to((len(x), *layer[name].shape[1:]))  # (B, Hkv, P, hs)
    _, loss = model(x, y, cache=cache)  # x attends to the preamble's keys and to its own, causally
    return loss


# ---- greedy answers ---------------------------------------------------------------------------
def answers(model: GPT, tok: CharTokenizer, prompts: list[str], max_new: int = 12) -> list[str]:
    """Greedy decoding with the KV cache, prompts of one length batched together, cut at the newline."""
    out: dict[int, str] = {}
    model.eval()
    encoded = [tok.encode(p) for p in prompts]
    with minigrad.no_grad():
        for length in sorted({len(e) for e in encoded}):
            rows = [i for i, e in enumerate(encoded) if len(e) == length]
            cache: list[dict[str, Any]] = [{} for _ in model.transformer.h]
            logits, _ = model(np.array([encoded[i] for i in rows]), cache=cache)  # (G, 1, V)
            steps = []
            for _ in range(max_new):
                nxt = logits.numpy()[:, -1].argmax(-1)  # (G,)
                steps.append(nxt)
                logits, _ = model(nxt[:, None], cache=cache)
            for g, i in enumerate(rows):
                out[i] = tok.decode([int(s[g]) for s in steps]).split("\n")[0] + "\n"
    model.train()
    return [out[i] for i in range(len(prompts))]


def instruction_of(prompt: str) -> str:
    return prompt.split("### Instruction:\n")[1].split("\n")[0]


def exact_match(model: GPT, tok: CharTokenizer, examples: list[Example]) -> tuple[dict[str, float], list[list[str]]]:
    """The fraction of answers exactly right, per task and in all; the misses as [instruction, expected, got]."""
    got = answers(model, tok, [e[1] for e in examples])
    right = [g == e[2] for g, e in zip(got, examples)]
    result = {t: round(float(np.mean([r for r, e in zip(right, examples) if e[0] == t])), 4) for t in TASKS}
    result["all"] = round(float(np.mean(right)), 4)
    misses = [[instruction_of(e[1]), e[2].strip(), g.strip()] for r, g, e in zip(right, got, examples) if not r]
    return result, misses


EPILOG = """times on a 2-core machine, one BLAS thread (the pretraining is skipped when --base_dir has it):
  python examples/finetune_instructions.py --pretrain_iters 5 --steps 5 --n_test 5  about 5 s (the smallest run)
  python examples/finetune_instructions.py --steps 1000   about 3 minutes (the slow test's run)
  python examples/finetune_instructions.py                about 6 to 9 minutes (the README's run)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` (character tokenizer); default: pretrain one")
    ap.add_argument("--pretrain_iters", type=int, default=150, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/instructions_base",
                    help="where the pretraining run (without --ckpt) is kept")
    ap.add_argument("--steps", type=int, default=3000, help="fine-tuning steps")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3, help="peak learning rate")
    ap.add_argument("--n_test", type=int, default=100, help="held-out instructions of each task, answered before "
                    "and after fine-tuning")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n_test < 1:
        ap.error(f"--n_test must be >= 1, got {args.n_test}")
    return args


def load_data(seed: int, n_test: int) -> tuple[str, dict[str, list[Example]], list[Example]]:
    """The plays to pretrain on (without TEST_PLAYS), the training examples by task and the held-out
    ones; a missing corpus is one line."""
    try:
        return default_corpus(exclude=TEST_PLAYS), *make_examples(seed, n_test)
    except DataError as e:  # the default corpus is not installed: say how to, in one line
        sys.exit(f"error: {e}")


def fit_vocabulary(model: GPT, tok: CharTokenizer, examples: list[Example], seed: int) -> tuple[CharTokenizer, int]:
    """grow_vocab by the examples' new characters (rows drawn with `seed`); the tokenizer and the
    longest example, checked to fit block_size."""
    minigrad.manual_seed(seed)  # the new token rows: the same whether the base was just trained or loaded
    tok = grow_vocab(model, tok, "".join(p + r for _, p, r in examples))
    longest = max(len(p) + len(r) for _, p, r in examples)
    if longest > model.config.block_size:
        raise ValueError(f"finetune_instructions: examples of {longest} characters exceed "
                         f"block_size {model.config.block_size}")
    return tok, longest


def finetune(model: GPT, tok: CharTokenizer, train_set: dict[str, list[Example]], args: argparse.Namespace
             ) -> tuple[list[float], float, float]:
    """args.steps AdamW steps on batches whose rows draw their task uniformly: the losses, and the
    seconds of the loop in wall-clock and CPU time."""
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=args.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(args.seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    losses = []
    for step in range(args.steps):
        for g in opt.param_groups:  # linear warmup, then a cosine down to a tenth
            g["lr"] = args.lr * min(1.0, (step + 1) / WARMUP) * (0.55 + 0.45 * math.cos(math.pi * step / args.steps))
        # each row's task drawn uniformly: "next" has 857 examples, the word tasks 3,848 each
        batch = [train_set[t][rng.integers(len(train_set[t]))] for t in rng.choice(list(TASKS), args.batch_size)]
        x, y = make_batch(tok, batch)
        loss = loss_on_responses(model, tok, x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step}: loss on responses {loss.item():.4f}", flush=True)
    return losses, time.perf_counter() - t0, time.process_time() - cpu0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    plays, train_set, test_set = load_data(args.seed, args.n_test)
    model, tok, origin = pretrained_base(plays, args.base_dir, args.ckpt, model=BASE, max_iters=args.pretrain_iters,
                                         batch_size=8, eval_iters=5, warmup_iters=20, learning_rate=3e-3)
    if not isinstance(tok, CharTokenizer):
        raise ValueError("finetune_instructions: the checkpoint must use the character tokenizer (--tokenizer char)")
    tok, longest = fit_vocabulary(model, tok, [e for ex in train_set.values() for e in ex] + test_set, args.seed)
    n_train = {task: len(examples) for task, examples in train_set.items()}
    print(f"training examples {n_train}, {len(test_set)} held out; vocabulary {tok.vocab_size}; "
          f"longest example {longest} characters")
    before, _ = exact_match(model, tok, test_set)
    print(f"exact match before fine-tuning: {before}")
    losses, seconds, cpu_seconds = finetune(model, tok, train_set, args)
    after, misses = exact_match(model, tok, test_set)
    print(f"exact match after fine-tuning ({args.steps} steps, {seconds:.0f} s): {after}")
    for _, prompt, _ in [next(e for e in test_set if e[0] == task) for task in TASKS]:  # one of each task
        print(f"  {instruction_of(prompt)!r} -> {answers(model, tok, [prompt])[0].strip()!r}")
    print(f"{len(misses)} misses, e.g. {misses[:8]}")
    result = {**origin, "steps": args.steps, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
              "ms_per_step": round(1000 * seconds / args.steps, 1), "n_train": sum(n_train.values()),
              "n_test": len(test_set), "exact_match_before": before["all"], "exact_match_after": after["all"],
              "loss_first_10": round(float(np.mean(losses[:10])), 4),
              "loss_last_10": round(float(np.mean(losses[-10:])), 4),
              "before_per_task": before, "after_per_task": after, "misses": misses[:20]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
