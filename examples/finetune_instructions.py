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
exact-match accuracy on them (greedy decoding up to the newline) is measured before and after.

The start is the pretrained character-level GPT of finetune_classify.py (--ckpt, or its short
pretraining). Its vocabulary lacks '#', so the token table grows by the missing characters (new
rows drawn as at initialisation; the head is tied, so it grows with it).

    python examples/finetune_instructions.py [--ckpt out/ckpt.npz] [--steps 500]

Leaves out: real instruction data sets, chat templates, sampling settings beyond greedy, LoRA here
(finetune_classify.py compares it).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

import numpy as np

import minigrad
from gpt.data import default_corpus
from gpt.model import GPT
from gpt.tokenizer import CharTokenizer
from minigrad import nn
from minigrad.nn.utils import clip_grad_norm_

try:
    from finetune_classify import pretrained_gpt  # run as a script: examples/ is on sys.path
except ImportError:  # imported as examples.finetune_instructions
    from examples.finetune_classify import pretrained_gpt

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
TASKS = {
    "capitals": ("Write the word in capital letters: {w}", lambda w: w.upper()),
    "reverse": ("Reverse the word: {w}", lambda w: w[::-1]),
    "sort": ("Sort the letters of: {w}", lambda w: "".join(sorted(w))),
    "next": ("What number comes after {n}?", lambda n: str(n + 1)),
}


# ---- the data set -----------------------------------------------------------------------------
def make_examples(seed: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(task, prompt, response) lists for training and for the held-out test."""
    words = sorted({w for w in re.findall(r"\b[a-z]{3,5}\b", default_corpus())})
    rng = np.random.default_rng(seed)
    rng.shuffle(words)
    held_words = set(words[::5])
    train, test = [], []
    for task, (template, answer) in TASKS.items():
        if task == "next":
            items = [(n, n % 7 == 0) for n in range(1000)]
        else:
            items = [(w, w in held_words) for w in words]
        for item, held in items:
            key = "n" if task == "next" else "w"
            example = (task, ALPACA.format(instruction=template.format(**{key: item})), answer(item) + "\n")
            (test if held else train).append(example)
    test = [test[i] for i in np.random.default_rng(seed + 1).permutation(len(test))[:400]]  # 400 held out suffice
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


def make_batch(tok: CharTokenizer, examples: list[tuple[str, str, str]], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (B, T): prompt + response, padded on the right; targets -1 except on the response."""
    seqs = [(tok.encode(examples[i][1]), tok.encode(examples[i][2])) for i in rows]
    T = max(len(p) + len(r) for p, r in seqs) - 1
    pad = tok.stoi[" "]
    x, y = np.full((len(rows), T), pad), np.full((len(rows), T), -1)
    for b, (p, r) in enumerate(seqs):
        s = p + r
        x[b, : len(s) - 1] = s[:-1]
        y[b, len(p) - 1 : len(s) - 1] = r  # position t predicts token t + 1: the response's tokens only
    return x, y


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


def exact_match(model: GPT, tok: CharTokenizer, examples: list[tuple[str, str, str]]) -> dict[str, float]:
    got = answers(model, tok, [e[1] for e in examples])
    per_task = {t: [g == e[2] for g, e in zip(got, examples) if e[0] == t] for t in TASKS}
    result = {t: round(float(np.mean(v)), 4) for t, v in per_task.items() if v}
    result["all"] = round(float(np.mean([g == e[2] for g, e in zip(got, examples)])), 4)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` (character tokenizer); default: pretrain one")
    ap.add_argument("--pretrain_iters", type=int, default=150, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/finetune_base", help="where the pretraining run (without --ckpt) is kept")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    model, tok, origin = pretrained_gpt(args.ckpt, args.pretrain_iters, args.base_dir)
    if not isinstance(tok, CharTokenizer):
        raise ValueError("finetune_instructions: the checkpoint must use the character tokenizer (--tokenizer char)")
    train_set, test_set = make_examples(args.seed)
    tok = grow_vocab(model, tok, "".join(p + r for _, p, r in train_set + test_set))
    longest = max(len(p) + len(r) for _, p, r in train_set + test_set)
    if longest > model.config.block_size:
        raise ValueError(f"finetune_instructions: examples of {longest} characters exceed block_size {model.config.block_size}")
    print(f"{len(train_set)} training examples, {len(test_set)} held out; vocabulary {tok.vocab_size}; "
          f"longest example {longest} characters")
    before = exact_match(model, tok, test_set)
    print(f"exact match before fine-tuning: {before}")

    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=args.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        for g in opt.param_groups:  # warmup, then linear decay to a tenth
            warm = min(1.0, (step + 1) / 50)
            g["lr"] = args.lr * warm * (1 - 0.9 * step / args.steps)
        x, y = make_batch(tok, train_set, rng.integers(0, len(train_set), args.batch_size))
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step}: loss on responses {loss.item():.4f}", flush=True)
    seconds = time.perf_counter() - t0
    after = exact_match(model, tok, test_set)
    print(f"exact match after fine-tuning ({args.steps} steps, {seconds:.0f} s): {after}")
    for task, prompt, _ in test_set[:4]:
        instruction = prompt.split("### Instruction:\n")[1].split("\n")[0]
        print(f"  {instruction!r} -> {answers(model, tok, [prompt])[0].strip()!r}")
    result = {**origin, "steps": args.steps, "seconds": round(seconds, 1), "n_train": len(train_set),
              "n_test": len(test_set), "exact_match_before": before["all"], "exact_match_after": after["all"],
              "loss_first_10": round(float(np.mean(losses[:10])), 4), "loss_last_10": round(float(np.mean(losses[-10:])), 4),
              "after_per_task": after}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
