"""Tokenizers: text <-> integer ids. Character-level, and GPT-2's byte-level BPE.

CharTokenizer: one id per distinct character of the training text (nanoGPT's
shakespeare_char). BPETokenizer: GPT-2's tokenizer: start from the 256 byte
values, so any UTF-8 text round-trips exactly, then repeatedly merge the most
frequent adjacent pair into a new token. Text is first split into chunks with
GPT-2's pattern (words, numbers, punctuation, spaces) so merges never cross them.
Train one here, or read GPT-2's `vocab.json` + `merges.txt` (`from_pretrained`,
giving the ids transformers.GPT2Tokenizer gives); `save_pretrained` writes them.

Both save to and load from a JSON-able dict (`to_dict` / `tokenizer_from_dict`),
which checkpoints carry. Leaves out: GPT-2's other special tokens and options
(add_prefix_space, added tokens beyond <|endoftext|>), byte-fallback BPE (Llama).

Read next: data.py.
"""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


EOT = "<|endoftext|>"  # GPT-2's one special token: end of a document
MINIGRAD_FILE = "tokenizer_minigrad.json"  # a character tokenizer in a pretrained directory


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

    def save_pretrained(self, path: str | Path) -> None:
        """GPT-2 has no character-level format: write our own tokenizer_minigrad.json (load_tokenizer reads it)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / MINIGRAD_FILE).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")


# ---- GPT-2's pre-tokenization -------------------------------------------------------------
# Text is cut into chunks before BPE, so merges never cross them: contractions, letter runs,
# number runs, runs of other symbols (each with an optional leading space), whitespace runs.
# GPT-2's pattern, from the `regex` package:
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# The standard `re` module has no \p{L} (letters) or \p{N} (numbers), so the classes are built
# once from unicodedata's categories; \s is Unicode's White_Space list, as `regex` uses.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

_LAST_LETTER = 0x3FFFF  # the end of plane 3, the last plane with letters or numbers


def _category_class(prefix: str) -> str:
    """A regex character class body (ranges) of every code point whose category starts with `prefix`."""
    ranges, start = [], None
    for c in range(_LAST_LETTER + 2):  # beyond: unassigned planes, tags and private use, no letters or numbers
        inside = c <= _LAST_LETTER and unicodedata.category(chr(c)).startswith(prefix)
        if inside and start is None:
            start = c
        elif not inside and start is not None:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(c - 1)) if c - 1 > start else ""))
            start = None
    return "".join(ranges)


@functools.cache
def gpt2_pattern() -> re.Pattern[str]:
    L, N, S = _category_class("L"), _category_class("N"), _WHITESPACE
    return re.compile(
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+"
    )


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: each byte as a printable character, so vocab.json and merges.txt are text.
    Printable Latin-1 bytes stand for themselves; the other 68 are mapped to chr(256 + n)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


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
    """Byte-level BPE. `vocab[i]` is token i's bytes; `merges` are pairs of ids in the order they
    were learned (earliest first, the order encoding applies them). Trained here, ids 0..255 are
    the bytes and merge i makes token 256 + i; read from GPT-2's files, ids are the files'.
    `special_tokens` ("<|endoftext|>" -> id) are cut out of the text before anything else."""

    kind = "bpe"

    def __init__(
        self, merges: list[tuple[int, int]], vocab: list[bytes] | None = None, special_tokens: dict[str, int] | None = None
    ) -> None:
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.trained_here = vocab is None
        if vocab is None:  # ids 0..255 are the bytes, 256 + i is merge i
            vocab = [bytes([b]) for b in range(256)]
            for a, b in self.merges:
                vocab.append(vocab[a] + vocab[b])
        self.vocab = list(vocab)
        self.special_tokens = dict(special_tokens or {})
        for tok, i in self.special_tokens.items():
            if not 0 <= i < len(self.vocab) or self.vocab[i] != tok.encode("utf-8"):
                raise ValueError(f"BPE: special token {tok!r} has id {i}, which is not that token in the vocabulary")
        specials = set(self.special_tokens.values())
        ids = {t: i for i, t in enumerate(self.vocab) if i not in specials}
        if len(ids) != len(self.vocab) - len(specials):
            raise ValueError("BPE: the vocabulary has a token twice")
        missing = [b for b in range(256) if bytes([b]) not in ids]
        if missing:
            raise ValueError(f"BPE: the vocabulary lacks the single bytes {missing[:8]}{'...' if len(missing) > 8 else ''}")
        self.byte_ids = [ids[bytes([b])] for b in range(256)]
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (rank, id of the merged token)
        for rank, (a, b) in enumerate(self.merges):
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)) or self.vocab[a] + self.vocab[b] not in ids:
                raise ValueError(f"BPE: merge {rank} ({a}, {b}) makes a token that is not in the vocabulary")
            self.ranks.setdefault((a, b), (rank, ids[self.vocab[a] + self.vocab[b]]))
        self._special_re = (
            re.compile("(" + "|".join(re.escape(t) for t in sorted(self.special_tokens, key=len, reverse=True)) + ")")
            if self.special_tokens else None
        )
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, verbose: bool = False, progress: bool = False) -> BPETokenizer:
        """Learn vocab_size - 256 merges from `text`, most frequent pair first (ties: smallest pair).
        progress: a tqdm bar of merges (on a terminal)."""
        if vocab_size < 256:
            raise ValueError(f"BPE vocab_size must be at least 256 (the byte values), got {vocab_size}")
        from tqdm import tqdm

        words = Counter(gpt2_pattern().findall(text))
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
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        while len(ids) > 1:  # apply the earliest-learned merge present, as training did
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, (1 << 30, 0))[0])
            if pair not in self.ranks:
                break
            ids = _merge(ids, pair, self.ranks[pair][1])
        if len(self._cache) < 100_000:
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        pieces = self._special_re.split(text) if self._special_re else [text]
        for k, piece in enumerate(pieces):
            if k % 2:  # split() puts the special tokens it cut at odd positions
                out.append(self.special_tokens[piece])
                continue
            for chunk in gpt2_pattern().findall(piece):
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
        d: dict[str, Any] = {"kind": self.kind, "merges": [list(m) for m in self.merges]}
        if not self.trained_here:  # the vocabulary in GPT-2's printable form
            table = bytes_to_unicode()
            d["vocab"] = ["".join(table[b] for b in t) for t in self.vocab]
            d["special_tokens"] = self.special_tokens
        return d

    # ---- GPT-2's files: vocab.json (token -> id) and merges.txt (one "a b" pair per line) ----------
    @classmethod
    def from_pretrained(cls, path: str | Path) -> BPETokenizer:
        """Read `vocab.json` and `merges.txt` (GPT-2's format, as Hugging Face's tokenizers write it).
        "<|endoftext|>" is a special token; if the vocabulary lacks it, it gets the next id (as
        transformers.GPT2Tokenizer adds it)."""
        path = Path(path)
        vfile, mfile = path / "vocab.json", path / "merges.txt"
        for f in (vfile, mfile):
            if not f.is_file():
                raise ValueError(f"tokenizer directory {str(path)!r} has no {f.name}")
        try:
            vocab_json = json.loads(vfile.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{str(vfile)!r} is not valid JSON ({e})") from None
        if not isinstance(vocab_json, dict) or sorted(vocab_json.values()) != list(range(len(vocab_json))):
            raise ValueError(f"{str(vfile)!r}: ids must be 0..n-1, each once")
        decoder = {c: b for b, c in bytes_to_unicode().items()}
        tokens = sorted(vocab_json, key=vocab_json.get)
        specials = {t: vocab_json[t] for t in tokens if t == EOT}
        if EOT not in vocab_json:
            tokens.append(EOT)
            specials[EOT] = len(tokens) - 1
        try:
            vocab = [t.encode("utf-8") if t in specials else bytes(decoder[c] for c in t) for t in tokens]
        except KeyError as e:
            raise ValueError(f"{str(vfile)!r}: character {e.args[0]!r} is not one of GPT-2's byte characters") from None
        merges = []
        for n, line in enumerate(mfile.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("#version") or not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2 or parts[0] not in vocab_json or parts[1] not in vocab_json:
                raise ValueError(f"{str(mfile)!r} line {n}: expected two tokens of vocab.json, got {line!r}")
            merges.append((vocab_json[parts[0]], vocab_json[parts[1]]))
        return cls(merges, vocab, specials)

    def save_pretrained(self, path: str | Path) -> None:
        """Write vocab.json and merges.txt, which from_pretrained and transformers.GPT2Tokenizer read."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        table = bytes_to_unicode()
        specials = {i: t for t, i in self.special_tokens.items()}
        text = ["".join(table[b] for b in t) if i not in specials else specials[i] for i, t in enumerate(self.vocab)]
        (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(text)}, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{text[a]} {text[b]}" for a, b in self.merges]
        (path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


Tokenizer = CharTokenizer | BPETokenizer


def bpe_max_vocab_size(text: str) -> int:
    """An upper bound on the vocabulary BPE can learn from text: 256 bytes plus one merge per
    adjacent pair of bytes within each distinct chunk (merges never cross chunks)."""
    return 256 + sum(max(0, len(w.encode("utf-8")) - 1) for w in set(gpt2_pattern().findall(text)))


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    if d.get("kind") == "char":
        return CharTokenizer(d["chars"])
    if d.get("kind") == "bpe" and "vocab" in d:
        decoder = {c: b for b, c in bytes_to_unicode().items()}
        specials = {t: int(i) for t, i in d.get("special_tokens", {}).items()}
        vocab = [t.encode("utf-8") if i in specials.values() else bytes(decoder[c] for c in t) for i, t in enumerate(d["vocab"])]
        return BPETokenizer([tuple(m) for m in d["merges"]], vocab, specials)
    if d.get("kind") == "bpe":
        return BPETokenizer([tuple(m) for m in d["merges"]])
    raise ValueError(f"unknown tokenizer kind {d.get('kind')!r} (expected 'char' or 'bpe')")


def encode_array(tok: Tokenizer, text: str) -> np.ndarray:
    """The whole text as one int32 array of ids."""
    return np.asarray(tok.encode(text), dtype=np.int32)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a pretrained directory: GPT-2's vocab.json + merges.txt, or our tokenizer_minigrad.json."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"pretrained directory {str(path)!r} does not exist"
                         " (python -m gpt export --to DIR writes one from a checkpoint)")
    if (path / "vocab.json").is_file() or (path / "merges.txt").is_file():
        return BPETokenizer.from_pretrained(path)
    if (path / MINIGRAD_FILE).is_file():
        try:
            return tokenizer_from_dict(json.loads((path / MINIGRAD_FILE).read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{str(path / MINIGRAD_FILE)!r} is not a tokenizer file ({e})") from None
    raise ValueError(f"{str(path)!r} has no tokenizer files (vocab.json + merges.txt, or {MINIGRAD_FILE})")
