"""gpt/preferences.py: the gold score, Bradley–Terry labels, the gold agreement rate, the JSONL file."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gpt.preferences import (
    PreferencePair,
    RealWordFraction,
    gold_agreement_rate,
    label_pairs,
    read_preferences,
    words,
    write_preferences,
)

CORPUS = "Steward:\nHear me, and then speak.\n'Tis o'er; the lord's men are gone."  # a made-up play line


def test_words_are_lowercased_runs_of_letters_and_apostrophes():
    assert words("'Tis O'er the Lord's-men, 42 times!") == ["'tis", "o'er", "the", "lord's", "men", "times"]
    assert words("... ' 7 --") == []  # an apostrophe alone is no word


def test_gold_is_the_fraction_of_corpus_words():
    gold = RealWordFraction(CORPUS)
    assert gold("hear me speak") == 1.0
    assert gold("Hear ME, thoue wherst!") == 0.5  # case does not matter; two of four are non-words
    assert gold("'tis the lord's") == 1.0
    assert gold("") == 0.0 and gold("?!") == 0.0  # no words: 0
    with pytest.raises(ValueError, match="no words"):
        RealWordFraction("123 ...")


def test_distinct_gold_counts_a_real_word_once():
    plain, distinct = RealWordFraction(CORPUS), RealWordFraction(CORPUS, distinct=True)
    assert plain("me me me me") == 1.0 and distinct("me me me me") == 0.25  # repetition games only the plain count
    assert distinct("hear me speak") == 1.0
    assert distinct("hear xq hear zz") == 0.25  # one distinct real word among four words


def test_labels_follow_gold_order_when_sharp_and_bradley_terry_rate_when_noisy():
    gold = RealWordFraction(CORPUS)
    good, bad = "hear me speak", "hear xq zz"  # gold 1 and 1/3
    sharp = label_pairs([good, bad] * 20, [bad, good] * 20, gold, beta_bt=200.0, rng=np.random.default_rng(0))
    assert all(p.chosen == good and p.rejected == bad for p in sharp)
    n, beta = 4000, 3.0
    noisy = label_pairs([good] * n, [bad] * n, gold, beta, np.random.default_rng(1), prompts=["P"] * n)
    expected = 1 / (1 + math.exp(-beta * (1 - 1 / 3)))  # 0.88
    rate = np.mean([p.chosen == good for p in noisy])
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / n)  # within 4 standard errors
    assert all(p.prompt == "P" for p in noisy)
    assert gold_agreement_rate(noisy, gold, beta) == pytest.approx(expected)


def test_gold_agreement_rate_counts_a_tie_as_a_coin_flip():
    gold = RealWordFraction(CORPUS)
    pairs = [PreferencePair("", "hear me", "speak me"), PreferencePair("", "xq zz", "hear me")]  # gaps 0 and 1
    assert gold_agreement_rate(pairs, gold, 2.0) == pytest.approx((0.5 + 1 / (1 + math.exp(-2.0))) / 2)


def test_label_pairs_errors():
    gold, rng = RealWordFraction(CORPUS), np.random.default_rng(0)
    with pytest.raises(ValueError, match="pair 1 has the same text twice"):
        label_pairs(["a b", "hear"], ["c", "hear"], gold, 1.0, rng)
    with pytest.raises(ValueError, match="beta_bt must be > 0"):
        label_pairs(["a"], ["b"], gold, 0.0, rng)
    with pytest.raises(ValueError, match="texts_a has 2 texts, texts_b 1"):
        label_pairs(["a", "b"], ["c"], gold, 1.0, rng)


def test_file_round_trip(tmp_path):
    pairs = [PreferencePair("ROMEO:", " hear me", " hxar mz"), PreferencePair("", "ü'tis", "o'er\n")]
    path = tmp_path / "prefs.jsonl"
    write_preferences(path, pairs)
    assert [json.loads(line)["chosen"] for line in path.read_text(encoding="utf-8").splitlines()] == [" hear me", "ü'tis"]
    assert read_preferences(path) == pairs


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "", "chosen": "a", "rejected": "b"}', '{"prompt": "", "chosen": "a"}'],
     "line 2: missing field 'rejected'"),
    (['{"prompt": "", "chosen": "same", "rejected": "same"}'], "line 1: .*same text"),
    (['', '{"prompt": "", "chosen": 3, "rejected": "b"}'], "line 2: .*chosen must be a string"),
    (['{"prompt": "", "chosen": "a", "rejected": "b"', ], "line 1: not JSON"),
    (['["a", "b"]'], "line 1: expected a JSON object"),
    (['', '  '], "no preference pairs"),
])
def test_bad_files_raise_one_clear_error(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_preferences(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_preferences(path)
