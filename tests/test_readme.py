"""The Python snippets of the README and of the pages in docs/ it links run, and the train flags they name exist
(STYLE: teaching material must not rot). The chapters in docs/chapters/ run in tests/test_chapters.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
README = "\n".join(PAGES.values())
SNIPPETS = [(name, snippet) for name, text in PAGES.items() for snippet in re.findall(r"```python\n(.*?)```", text, re.S)]


@pytest.mark.parametrize("page, snippet", SNIPPETS, ids=[f"{name}-{i}" for i, (name, _) in enumerate(SNIPPETS)])
def test_python_snippet_runs(page, snippet):
    exec(compile(snippet, page, "exec"), {})


def test_train_flags_named_in_the_readme_exist(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    named = set(re.findall(r"gpt train[^\n]*", README)) | set(re.findall(r"`(--[a-z_]+)", README))
    flags = {f for line in named for f in re.findall(r"--[a-z_]+", line)}
    flags -= {"--vs", "--profile", "--iters", "--warmup", "--json", "--prompt", "--ckpt"}  # bench and sample flags
    assert flags and all(f in help_text for f in flags), [f for f in flags if f not in help_text]


def test_readme_snippet_prints_the_first_loss_its_comment_claims(capsys):
    """The "Using it" snippet's comment names the first loss it prints: read from the README here, so the
    number a reader sees and the number the code prints cannot drift apart."""
    snippet = re.search(r"## Using it\n\n```python\n(.*?)```", PAGES["README.md"], re.S)[1]
    claimed = re.search(r"print\(.*\)  # ([0-9.]+), then lower", snippet)[1]
    exec(compile(snippet, "README.md", "exec"), {})
    losses = re.findall(r"loss ([0-9.]+)", capsys.readouterr().out)
    assert losses[0] == claimed, f"the README says {claimed}, the snippet prints {losses[0]}"
    assert len(losses) == 5 and float(losses[-1]) < float(losses[0]) / 2  # "then lower as it fits the 8 points"


def test_readme_names_the_tiny_shakespeare_download():
    assert "raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt" in PAGES["README.md"]
