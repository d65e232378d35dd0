"""Tokenizers: text <-> integer ids. Character-level, and byte-level BPE you train yourself.

CharTokenizer: one id per distinct character of the training text (nanoGPT's
shakespeare_char). BPETokenizer: GPT-2's idea in miniature: start from the 256
byte values, so any UTF-8 text round-trips exactly, then repeatedly merge the
most frequent adjacent pair into a new token. Text is first split into chunks
(words, numbers, punctuation, spaces) so merges never cross them.

Both save to and load from a JSON-able dict (`to_dict` / `tokenizer_from_dict`),
which checkpoints carry.

Read next: data.py.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(
                f"character {e.args[0]!r} is not in this tokenizer's vocabulary of {self.vocab_size} characters"
            ) from None

    def decode(self, ids: Any) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is out of range for a vocabulary of {self.vocab_size}")
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


# Chunks: contractions, letter runs, digit runs, other symbols, each with an optional leading
# space; whitespace runs. (GPT-2's pattern uses Unicode classes from the `regex` package;
# this ASCII version needs only `re`, and bytes make any text encodable anyway.)
_CHUNK = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def _merge(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    kind = "bpe"

    def __init__(self, merges: list[tuple[int, int]]) -> None:
        self.merges = [tuple(m) for m in merges]  # token 256 + i is merges[i][0] followed by merges[i][1]
        self.ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        self.vocab = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, verbose: bool = False, progress: bool = False) -> BPETokenizer:
        """Learn vocab_size - 256 merges from `text`, most frequent pair first (ties: smallest pair).
        progress: a tqdm bar of merges (on a terminal)."""
        if vocab_size < 256:
            raise ValueError(f"BPE vocab_size must be at least 256 (the byte values), got {vocab_size}")
        from tqdm import tqdm

        words = Counter(_CHUNK.findall(text))
        seqs = [(list(w.encode("utf-8")), n) for w, n in words.items()]
        merges: list[tuple[int, int]] = []
        bar = tqdm(range(256, vocab_size), desc="BPE merges", disable=None if progress else True, dynamic_ncols=True)
        for new in bar:
            counts: Counter[tuple[int, int]] = Counter()
            for ids, n in seqs:
                for pair in zip(ids, ids[1:]):
                    counts[pair] += n
            if not counts:
                break
            best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
            merges.append(best)
            seqs = [(_merge(ids, best, new), n) for ids, n in seqs]
            if verbose:
                print(f"merge {new - 255}: {best} -> {new} ({counts[best]} times)")
        bar.close()
        return cls(merges)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_chunk(self, chunk: str) -> list[int]:
        if chunk in self._cache:
            return self._cache[chunk]
        ids = list(chunk.encode("utf-8"))
        while len(ids) > 1:  # apply the earliest-learned merge present, as training did
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, 1 << 30))
            if pair not in self.ranks:
                break
            ids = _merge(ids, pair, self.ranks[pair])
        if len(self._cache) < 100_000:
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in _CHUNK.findall(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def decode(self, ids: Any) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is out of range for a vocabulary of {self.vocab_size}")
        # A sampled sequence can cut a multi-byte character: show the stray bytes as U+FFFD.
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "merges": [list(m) for m in self.merges]}


Tokenizer = CharTokenizer | BPETokenizer


def bpe_max_vocab_size(text: str) -> int:
    """An upper bound on the vocabulary BPE can learn from text: 256 bytes plus one merge per
    adjacent pair of bytes within each distinct chunk (merges never cross chunks)."""
    return 256 + sum(max(0, len(w.encode("utf-8")) - 1) for w in set(_CHUNK.findall(text)))


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    if d.get("kind") == "char":
        return CharTokenizer(d["chars"])
    if d.get("kind") == "bpe":
        return BPETokenizer([tuple(m) for m in d["merges"]])
    raise ValueError(f"unknown tokenizer kind {d.get('kind')!r} (expected 'char' or 'bpe')")


def encode_array(tok: Tokenizer, text: str) -> np.ndarray:
    """The whole text as one int32 array of ids."""
    return np.asarray(tok.encode(text), dtype=np.int32)
