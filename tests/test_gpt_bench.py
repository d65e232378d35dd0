"""`python -m gpt bench --json` runs and ends with one JSON line, alone and against PyTorch (when installed)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from gpt.cli import main

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "2",
        "--iters", "2", "--warmup", "1", "--json"]


@pytest.mark.parametrize("extra", [[], ["--pos_encoding", "sinusoidal", "--vs", "torch"]], ids=["alone", "vs-torch"])
def test_bench_prints_a_json_summary(capsys, extra):
    if "torch" in extra and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    assert main(["bench", *TINY, *extra]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ms_per_iter"] > 0 and result["tokens_per_s"] > 0 and result["peak_mem_mb"] > 0
    assert result["sample_cache_speedup"] > 0 and result["config"]["n_embd"] == 16
    if "torch" in extra:
        assert result["speedup_vs_torch"] > 0 and result["torch_peak_mem_mb"] > 0
