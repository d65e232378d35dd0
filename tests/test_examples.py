"""The examples run as scripts and reach what they promise."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_mlp_spirals_learns_the_spirals():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "mlp_spirals.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", out.stdout)]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out.stdout).group(1))
    assert losses[-1] < losses[0] / 4, out.stdout
    assert accuracy >= 0.95, out.stdout


@pytest.mark.slow
def test_sort_digits_sorts_every_held_out_list():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "sort_digits.py")], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    accuracy = float(re.search(r"held-out accuracy ([0-9.]+)", out.stdout).group(1))
    assert accuracy == 1.0, out.stdout


def test_torch_baseline_trains_the_twin(tmp_path):
    pytest.importorskip("torch")
    data = tmp_path / "text.txt"
    data.write_text("It is a tale told by an idiot, full of sound and fury.\n" * 60)
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "torch_baseline.py"), "--data", str(data), "--max_iters", "3",
         "--eval_iters", "2"], capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["iter"] == 3 and 0 < result["val_loss"] < 10
