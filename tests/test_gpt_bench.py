"""`python -m gpt bench --json` runs and ends with one JSON line, alone and against PyTorch (when installed)."""
from __future__ import annotations

import json
import re

import pytest
from helpers import need

from gpt.cli import main

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "2",
        "--iters", "2", "--warmup", "1", "--json"]


@pytest.mark.parametrize("extra", [[], ["--pos_encoding", "sinusoidal", "--vs", "torch"]], ids=["alone", "vs-torch"])
def test_bench_prints_a_json_summary(capsys, extra):
    if "torch" in extra:
        need("torch")
    assert main(["bench", *TINY, *extra]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ms_per_iter"] > 0 and result["tokens_per_s"] > 0 and result["peak_mem_mb"] > 0
    assert result["sample_cache_speedup"] > 0 and result["config"]["n_embd"] == 16
    if "torch" in extra:
        assert result["speedup_vs_torch"] > 0 and result["torch_peak_mem_mb"] > 0


def test_gpt2_sampling_reports_speed_and_memory(monkeypatch):
    """`bench --gpt2` on a stand-in of GPT-2's shape (the real 124M takes a minute: see the README)."""
    import gpt.bench
    from gpt.model import GPTConfig

    monkeypatch.setattr(gpt.bench, "GPT2_SMALL", GPTConfig(vocab_size=50, block_size=32, n_layer=1, n_head=2, n_embd=8))
    r = gpt.bench.gpt2_sampling(n_tokens=5, prompt_len=3)
    assert r["parameters"] == gpt.bench.GPT(gpt.bench.GPT2_SMALL).num_parameters()
    assert r["sample_tokens_per_s_cached"] > 0 and r["peak_mem_mb"] > 0 and r["new_tokens"] == 5


def test_profile_on_the_test_device_counts_array_operations(capsys):
    """`--device fakegpu` names the strict test backend (bench.named_test_backend, the one place the
    bench imports it): --profile then also counts the array operations of a step."""
    assert main(["bench", *TINY, "--device", "fakegpu", "--profile", "--no-sample"]) == 0
    counts = re.search(r"array operations per step: ([\d,]+); device-to-host waits: (\d+)", capsys.readouterr().out)
    assert counts and int(counts[1].replace(",", "")) > 100 and int(counts[2]) >= 1
