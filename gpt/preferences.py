"""Preference pairs for alignment, labelled by a hidden gold score a program knows exactly.

RLHF (Ouyang et al. 2022, "Training language models to follow instructions with human feedback")
asks people which of two answers they prefer; a reward model learns from those pairs, and PPO or
DPO (reward.py, ppo.py, dpo.py) push the policy towards it. Here the person is replaced by a
program, so how far the policy really got can be measured, not only what the learned reward says
(Gao et al. 2022 measure reward over-optimisation the same way, with a large "gold" reward model).

The gold score: the fraction of a text's words that are real words of the training corpus.
- A character-level Shakespeare GPT, early in training or sampled hot, spells many non-words
  ("thoue", "wherst"); getting better at real words is something it can learn, and a learner can
  check any score by eye.
- It is exact and cheap: a set lookup per word, no fuzzy heuristics (a metre score would need a
  syllable counter, which guesses).
- Counted plainly it can be gamed: "a a a a" scores 1. So with distinct=True (what
  examples/align_shakespeare.py uses) a word counts only the first time it appears: "a a a a"
  scores 1/4, as a reader would judge it. A policy that learns the repetition from a reward
  model that never saw any (the base model does not repeat itself like that) is what reward
  over-optimisation looks like on this toy: the learned reward rises, the gold score falls.

Words, precisely: the text is lower-cased, and a word is a maximal run of letters a-z and
apostrophes holding at least one letter ("'tis", "o'er" and "lord's" are one word each; digits,
hyphens and other punctuation separate words). A text without any word scores 0.

Labels as people give them: Bradley–Terry noise (Bradley and Terry 1952; the model behind the
reward loss of Ouyang et al.). Text a is chosen over b with probability

    P(a preferred) = sigmoid(beta_bt * (gold(a) - gold(b)))

so a clearly better text mostly, not always, wins, and a close pair is nearly a coin flip.
beta_bt sets the noise (large: almost always the gold order).

The file format is TRL's explicit-prompt preference format: one JSON object per line with
"prompt", "chosen" and "rejected" strings, the two answers without the prompt.

Read next: reward.py (the reward model trained on these pairs), then dpo.py.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

WORD = re.compile(r"[a-z']*[a-z][a-z']*")  # letters and apostrophes, at least one letter (text lower-cased first)

FIELDS = ("prompt", "chosen", "rejected")


def words(text: str) -> list[str]:
    """The words of `text`: lower-cased maximal runs of letters and apostrophes with a letter in them."""
    return WORD.findall(text.lower())


class RealWordFraction:
    """The gold score: gold(text) = (number of words of text found in the vocabulary) / (number of
    words of text), 0 for a text without words. The vocabulary is every word of the corpus.
    distinct=True counts a real word only at its first appearance in the text."""

    def __init__(self, corpus: str, distinct: bool = False) -> None:
        self.vocabulary = frozenset(words(corpus))
        self.distinct = distinct
        if not self.vocabulary:
            raise ValueError("RealWordFraction: the corpus has no words (letters and apostrophes), "
                             "so no text could score above 0")

    def __call__(self, text: str) -> float:
        ws = words(text)
        if not ws:
            return 0.0
        if self.distinct:
            return len(set(ws) & self.vocabulary) / len(ws)
        return sum(w in self.vocabulary for w in ws) / len(ws)


@dataclass(frozen=True)
class PreferencePair:
    """Two answers to one prompt, `chosen` preferred over `rejected` (both without the prompt)."""

    prompt: str
    chosen: str
    rejected: str

    def __post_init__(self) -> None:
        for name in FIELDS:
            v = getattr(self, name)
            if not isinstance(v, str):
                raise TypeError(f"PreferencePair: {name} must be a string, got {type(v).__name__}")
        if self.chosen == self.rejected:
            raise ValueError(f"PreferencePair: chosen and rejected are the same text ({self.chosen[:40]!r}): "
                             "a pair must compare two different answers")


def label_pairs(
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    gold: Callable[[str], float],
    beta_bt: float,
    rng: np.random.Generator,
    prompts: Sequence[str] | None = None,
) -> list[PreferencePair]:
    """Label each pair (texts_a[i], texts_b[i]) as a noisy person would: a is chosen with
    probability sigmoid(beta_bt (gold(a) - gold(b))), else b. `prompts[i]` (default "") is the
    prompt both answers continue; texts_a[i] == texts_b[i] is an error (nothing to prefer)."""
    if len(texts_a) != len(texts_b):
        raise ValueError(f"label_pairs: texts_a has {len(texts_a)} texts, texts_b {len(texts_b)}: they are pairs")
    if not beta_bt > 0:
        raise ValueError(f"label_pairs: beta_bt must be > 0 (the labels' sharpness), got {beta_bt}")
    prompts = [""] * len(texts_a) if prompts is None else list(prompts)
    if len(prompts) != len(texts_a):
        raise ValueError(f"label_pairs: {len(prompts)} prompts for {len(texts_a)} pairs")
    pairs = []
    for i, (p, a, b) in enumerate(zip(prompts, texts_a, texts_b)):
        if a == b:
            raise ValueError(f"label_pairs: pair {i} has the same text twice ({a[:40]!r}); drop such pairs first")
        p_a = 1.0 / (1.0 + math.exp(-beta_bt * (gold(a) - gold(b))))  # sigmoid(beta_bt (gold(a) - gold(b)))
        pairs.append(PreferencePair(p, a, b) if rng.random() < p_a else PreferencePair(p, b, a))
    return pairs


def gold_agreement_rate(pairs: Iterable[PreferencePair], gold: Callable[[str], float], beta_bt: float) -> float:
    """The expected fraction of Bradley–Terry labels that agree with the gold ordering:
    mean over pairs of sigmoid(beta_bt |gold(chosen) - gold(rejected)|), a tie counting 1/2.

    It is the accuracy the gold score itself would reach on these noisy labels, so the best a
    reward model can hope for on held-out pairs; compare its pair accuracy with this, not with 1."""
    gaps = [abs(gold(pr.chosen) - gold(pr.rejected)) for pr in pairs]
    if not gaps:
        raise ValueError("gold_agreement_rate: no pairs")
    return float(np.mean([1.0 / (1.0 + math.exp(-beta_bt * g)) for g in gaps]))


def write_preferences(path: str | Path, pairs: Iterable[PreferencePair]) -> None:
    """One JSON object per line: {"prompt": ..., "chosen": ..., "rejected": ...}."""
    with open(path, "w", encoding="utf-8") as f:
        for pr in pairs:
            f.write(json.dumps(asdict(pr), ensure_ascii=False) + "\n")


def read_preferences(path: str | Path) -> list[PreferencePair]:
    """The pairs of a JSONL preference file (blank lines skipped). A line that is not a JSON
    object, lacks a field, holds a non-string or the same chosen and rejected text, and a file
    without pairs, are errors naming the file and line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {n}: not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {n}: expected a JSON object with fields {FIELDS}")
            missing = [k for k in FIELDS if k not in record]
            if missing:
                raise ValueError(f"{path}, line {n}: missing field {missing[0]!r} (a pair needs {FIELDS})")
            try:
                pairs.append(PreferencePair(record["prompt"], record["chosen"], record["rejected"]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {n}: {e}") from None
    if not pairs:
        raise ValueError(f"{path}: no preference pairs (the file is empty)")
    return pairs
