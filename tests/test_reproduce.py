"""examples/reproduce.py: runs a command, reads its last JSON line, checks it against the README's
figure and writes the table; a run whose needs are absent is skipped, not failed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from examples import reproduce  # noqa: E402


def test_every_run_names_an_existing_script_or_module():
    for run in reproduce.RUNS:
        first = run.argv[1] if run.argv[0] == "-m" else run.argv[0]
        assert first in ("gpt",) or (ROOT / first).is_file(), run.name


def test_a_run_is_checked_against_its_figure(tmp_path):
    ok = reproduce.Run("spirals", ["examples/mlp_spirals.py", "--steps", "30"], {"test_accuracy": (">=", 0.0)}, "x", 0.1)
    bad = reproduce.Run("spirals_bad", ok.argv, {"test_accuracy": (">=", 1.5), "no_such_key": ("<=", 1.0)}, "x", 0.1)
    r_ok, r_bad = reproduce.execute(ok, tmp_path), reproduce.execute(bad, tmp_path)
    assert r_ok["returncode"] == 0 and r_ok["checks"]["test_accuracy"]["ok"]
    assert not r_bad["checks"]["test_accuracy"]["ok"] and r_bad["checks"]["no_such_key"] == {"value": None, "ok": False}
    assert (tmp_path / "spirals.log").read_text().startswith("step")
    md = reproduce.table([r_ok, r_bad], {"spirals": ok, "spirals_bad": bad}, "header")
    assert "| spirals | `python examples/mlp_spirals.py --steps 30` | x | test_accuracy" in md and "FAILED" in md


def test_list_and_a_skipped_run():
    out = subprocess.run([sys.executable, "-m", "examples.reproduce", "--list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "gpt_quality" in out.stdout and "minutes in all" in out.stdout
    run = reproduce.Run("needs", ["-c", "pass"], {}, "x", 0.1, needs=("no/such/file.txt", "no-such-program"))
    assert reproduce.missing(run) == ["no/such/file.txt", "no-such-program"]
