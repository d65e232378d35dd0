"""`python -m gpt plot` draws PNGs from a run (skipped without matplotlib, an optional extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import need

from gpt.cli import main

need("matplotlib")

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


def test_attention_weights_are_each_layers_causal_softmax():
    """plot.attention_weights recomputes the weights the fused op never holds: checked for layer 0
    against softmax(q k^T / sqrt(hs)) from the model's own first layers, causal and normalized."""
    import minigrad
    from gpt.model import GPT, GPTConfig
    from gpt.plot import attention_weights

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).eval()
    ids = [3, 1, 4, 1, 5, 9]
    weights = attention_weights(model, ids)
    assert [w.shape for w in weights] == [(2, 6, 6)] * 2
    t = model.transformer
    x = t.wte(minigrad.tensor([ids])) + t.wpe(minigrad.arange(6))
    q, k, _ = t.h[0].attn.c_attn(t.h[0].ln_1(x)).numpy()[0].reshape(6, 3, 2, 4).transpose(1, 2, 0, 3)  # (H, T, hs) each
    s = q @ k.transpose(0, 2, 1) / 2.0 + np.triu(np.full((6, 6), -np.inf), 1)
    expected = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(weights[0], expected / expected.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert all(np.allclose(w.sum(-1), 1) and not w[:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]].any()
               for w in weights)
    assert not model.transformer.h[0].attn.c_attn.__dict__.get("_forward_hooks")  # hooks removed
