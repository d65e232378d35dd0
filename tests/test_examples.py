"""The examples run as scripts and reach what they promise."""
from __future__ import annotations

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
