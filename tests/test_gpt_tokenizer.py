"""Tokenizers: character-level and byte-level BPE round trips, serialization and errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gpt.tokenizer import BPETokenizer, CharTokenizer, encode_array, tokenizer_from_dict

TEXT = (
    "HAMLET:\nTo be, or not to be, that is the question.\n\n"
    "All:\nSpeak, speak. We're resolved; 'tis 1600!\n\n"
    "MENENIUS:\nWhy, masters, my good friends, mine honest neighbours, will you undo yourselves?\n\n"
) * 15  # ~3 KB


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TEXT, vocab_size=300)


# ---- characters --------------------------------------------------------------------------------


def test_char_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"] and tok.vocab_size == 8
    assert tok.encode("hold") == [3, 5, 4, 1]


@given(st.text(alphabet=sorted(set(TEXT))))
def test_char_round_trip(text):
    tok = CharTokenizer.train(TEXT)
    assert tok.decode(tok.encode(text)) == text


def test_char_unknown_character():
    with pytest.raises(ValueError, match="character 'z' is not in this tokenizer's vocabulary of 3"):
        CharTokenizer.train("abc").encode("abz")


# ---- BPE ---------------------------------------------------------------------------------------


def test_bpe_learns_the_requested_number_of_merges(bpe):
    assert bpe.vocab_size == 300 and len(bpe.merges) == 44
    assert len(bpe.encode(TEXT)) < 0.7 * len(TEXT.encode("utf-8"))  # merges compress the training text


def test_bpe_merges_are_most_frequent_pairs_first():
    tok = BPETokenizer.train("aaab aaab aaab", vocab_size=258)
    assert tok.merges[0] == (ord("a"), ord("a"))  # 'aa' occurs 6 times, more than any other pair
    # then 'aa'+'a' and 'a'+'b' tie (3 each): the smaller pair of ids wins
    assert tok.merges[1] == (ord("a"), ord("b")) and tok.vocab[256:] == [b"aa", b"ab"]
    assert tok.encode("aaab") == [256, 257]


@given(st.text())
@example("héllo wörld, naïve café")
@example("emoji 😀👍🏽 and a family 👨‍👩‍👧 ZWJ sequence")
@example("日本語のテキスト, Русский текст, العربية, हिन्दी, 한국어")
@example("tabs\tnew\nlines\r\n\x0b\x0c\u2028\u00a0nbsp  double  spaces   ")
@example("e\u0301 combining, \x00 NUL, \U0010ffff last code point")
@example("We're 'tis don't I'LL ''s")
def test_bpe_round_trips_any_unicode_text_exactly(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


def test_bpe_decode_replaces_a_cut_multibyte_character(bpe):
    ids = bpe.encode("😀")
    assert len(ids) == 4  # four UTF-8 bytes, never merged in the training text
    assert bpe.decode(ids[:2]) == "\ufffd"


def test_bpe_vocab_smaller_than_the_bytes():
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("abc", vocab_size=255)


def test_bpe_stops_when_no_pair_is_left():
    assert BPETokenizer.train("ab", vocab_size=1000).vocab_size == 257


# ---- both ------------------------------------------------------------------------------------


@pytest.fixture(params=["char", "bpe"])
def tok(request, bpe):
    return CharTokenizer.train(TEXT) if request.param == "char" else bpe


def test_to_dict_round_trip_through_json(tok):
    """Checkpoints store tokenizers as JSON: the rebuilt one encodes and decodes the same."""
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    assert again.encode(TEXT) == tok.encode(TEXT)
    assert again.decode(range(tok.vocab_size)) == tok.decode(range(tok.vocab_size))


@pytest.mark.parametrize("bad", [-1, "vocab_size"])
def test_decode_out_of_range_ids(tok, bad):
    bad = tok.vocab_size if bad == "vocab_size" else bad
    with pytest.raises(ValueError, match=f"token id {bad} is out of range for a vocabulary of {tok.vocab_size}"):
        tok.decode([0, bad])


def test_encode_array_is_int32(tok):
    arr = encode_array(tok, TEXT[:100])
    assert arr.dtype == np.int32 and arr.tolist() == tok.encode(TEXT[:100])


def test_unknown_tokenizer_kind():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'word'"):
        tokenizer_from_dict({"kind": "word"})
