"""The README's Python snippets run, and the flags it names exist (STYLE: teaching material must not rot)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpt.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("snippet", re.findall(r"```python\n(.*?)```", README, re.S))
def test_python_snippet_runs(snippet):
    exec(compile(snippet, "README.md", "exec"), {})


def test_train_flags_named_in_the_readme_exist(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    named = set(re.findall(r"gpt train[^\n]*", README)) | set(re.findall(r"`(--[a-z_]+)", README))
    flags = {f for line in named for f in re.findall(r"--[a-z_]+", line)}
    flags -= {"--vs", "--profile", "--iters", "--warmup", "--json", "--prompt", "--ckpt"}  # bench and sample flags
    assert flags and all(f in help_text for f in flags), [f for f in flags if f not in help_text]
