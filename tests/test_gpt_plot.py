"""`python -m gpt plot` draws PNGs from a run (skipped without matplotlib, an optional extra)."""
from __future__ import annotations

from pathlib import Path

import pytest

from gpt.cli import main

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_loss_curves_and_attention_maps(tmp_path: Path):
    data = tmp_path / "text.txt"
    data.write_text("To be, or not to be, that is the question.\n" * 40)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out_dir", str(out), "--max_iters", "4", "--eval_interval", "2",
                 "--eval_iters", "1", "--n_layer", "2", "--n_head", "2", "--n_embd", "16", "--block_size", "8",
                 "--batch_size", "2", "--no-progress", "--sample_tokens", "0", "--log_interval", "1"]) == 0
    assert main(["plot", "--out_dir", str(out), "--prompt", "To be"]) == 0
    for name in ("loss.png", "attention.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_plot_without_a_run_says_so(tmp_path: Path, capsys):
    assert main(["plot", "--out_dir", str(tmp_path / "nothing")]) == 1
    assert "log file" in capsys.readouterr().err
