"""Each example's smallest run, the one its --help times, runs and ends with its JSON metrics;
no example takes an abbreviated flag; a missing optional package is one line naming its install."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One thread for OpenBLAS and PyTorch, as the times in --help were measured: on a busy machine two
# threads wait on each other (torch_baseline's smallest run took 5 s with one, 14 s with two).
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

# example -> (a package it needs, the keys of its metrics: of each direction for translate_numbers)
EXAMPLES = {
    "translate_numbers": (None, {"steps", "train_seconds", "held_out", "seconds_to_99", "teacher_forced_exact",
                                 "exact_match", "greedy_seconds"}),
    "vit_digits": ("sklearn", {"test_accuracy", "train_accuracy", "steps", "train_seconds", "minutes", "params",
                               "logreg_accuracy", "mlp_accuracy"}),
    "sort_digits": (None, {"held_out_accuracy", "sorted", "held_out", "iters", "train_seconds"}),
    "mlp_spirals": (None, {"final_loss", "test_accuracy", "steps", "seconds"}),
    "torch_baseline": ("torch", {"iter", "val_loss", "train_seconds"}),
}


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def smallest_run(name: str) -> list[str]:
    """The flags of the run that --help names 'the smallest run' (and times)."""
    help_text = run(f"examples/{name}.py", "--help").stdout
    line = next(line for line in help_text.splitlines() if "(the smallest run" in line)
    return shlex.split(line.split(f"examples/{name}.py", 1)[1].split(" about ")[0])


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_smallest_run_that_help_times_ends_with_its_metrics(name):
    package, keys = EXAMPLES[name]
    if package:
        pytest.importorskip(package)
    out = run(f"examples/{name}.py", *smallest_run(name))
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    if name == "translate_numbers":  # one model, and its metrics, per direction
        assert set(metrics) == {"words2digits", "digits2words"}
        assert all(set(m) == keys for m in metrics.values()), metrics
    else:
        assert set(metrics) == keys, metrics


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_abbreviated_flag_is_an_error(name):
    flag = {"torch_baseline": "--max_iter", "sort_digits": "--iter"}.get(name, "--step")
    out = run(f"examples/{name}.py", flag, "1")
    assert out.returncode == 2 and f"unrecognized arguments: {flag}" in out.stderr


@pytest.mark.parametrize("name, missing, argv, message", [
    ("vit_digits", "sklearn", ["--steps", "1"], "examples/vit_digits.py needs scikit-learn: pip install -e '.[vit]'"),
    ("translate_numbers", "matplotlib", ["--steps", "1", "--plot"],
     "examples/translate_numbers.py --plot needs matplotlib: pip install -e '.[plot]'"),
    ("torch_baseline", "torch", ["--max_iters", "1"], "examples/torch_baseline.py needs PyTorch: pip install torch=="),
])  # fmt: skip
def test_a_missing_package_is_one_line_with_its_install(name, missing, argv, message):
    """The package is made unimportable (None in sys.modules) before the script runs."""
    code = (f"import runpy, sys; sys.modules[{missing!r}] = None; sys.argv = ['{name}.py', *{argv!r}]; "
            f"runpy.run_path('examples/{name}.py', run_name='__main__')")
    out = run("-c", code)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"error: {message}") and len(out.stderr.strip().splitlines()) == 1, out.stderr
