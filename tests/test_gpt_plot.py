"""`python -m gpt plot` draws PNGs from a run, and the figures hold what the run logged: titles, axes,
each curve's points equal to log.jsonl's values, one heatmap per layer and head equal to the model's
attention weights (skipped without matplotlib, an optional extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import need

from gpt.cli import main

need("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 4-step run of 2 layers and 2 heads, its loss logged every step and evaluated every 2."""
    tmp = tmp_path_factory.mktemp("plot")
    data = tmp / "text.txt"
    data.write_text("To be, or not to be, that is the question.\n" * 40)
    out = tmp / "run"
    assert main(["train", "--data", str(data), "--out_dir", str(out), "--max_iters", "4", "--eval_interval", "2",
                 "--eval_iters", "1", "--n_layer", "2", "--n_head", "2", "--n_embd", "16", "--block_size", "8",
                 "--batch_size", "2", "--no-progress", "--sample_tokens", "0", "--log_interval", "1"]) == 0
    return out


def test_plot_writes_both_pngs(run: Path):
    assert main(["plot", "--out_dir", str(run), "--prompt", "To be"]) == 0
    for name in ("loss.png", "attention.png"):
        assert (run / name).read_bytes()[:8] == PNG


def test_loss_figure_draws_the_logged_losses(run: Path):
    import matplotlib.pyplot as plt

    from gpt.plot import loss_figure, read_log

    records = read_log(run / "log.jsonl")
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "val" in r]
    assert len(steps) == 4 and len(evals) >= 2  # both kinds of curve have points to compare
    fig = loss_figure(records, run="run")
    (ax,) = fig.axes
    assert ax.get_title() == f"run 'run': loss to iteration 4, val {evals[-1]['val']:.4f}"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration", "cross-entropy loss")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["train (batch)", "train (eval)", "val (eval)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)
    for label, rows, key in [("train (batch)", steps, "loss"), ("train (eval)", evals, "train"), ("val (eval)", evals, "val")]:
        np.testing.assert_array_equal(lines[label].get_xdata(), [r["iter"] for r in rows], err_msg=label)
        np.testing.assert_array_equal(lines[label].get_ydata(), [r[key] for r in rows], err_msg=label)
    plt.close(fig)


def test_attention_figure_draws_each_layers_and_heads_weights(run: Path):
    import matplotlib.pyplot as plt

    from gpt.plot import attention_figure, attention_weights
    from gpt.train import load_model

    fig = attention_figure(run / "ckpt.npz", "To be")
    heads = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in heads] == ["layer 0 head 0", "layer 0 head 1", "layer 1 head 0", "layer 1 head 1"]
    (colorbar,) = [ax for ax in fig.axes if ax not in heads]
    assert colorbar.get_ylabel() == "attention weight"
    assert fig.get_suptitle() == "attention weights for 'To be' (query down, key across)"
    model, tok, _ = load_model(run / "ckpt.npz")
    ids = tok.encode("To be")
    weights = attention_weights(model.eval(), ids)  # per layer (H, T, T)
    for i, ax in enumerate(heads):
        image = np.asarray(ax.get_images()[0].get_array())
        assert image.shape == (5, 5)  # (T, T): query down, key across
        np.testing.assert_allclose(image, weights[i // 2][i % 2], rtol=1e-6, err_msg=ax.get_title())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["T", "o", "␣", "b", "e"]  # spaces visible
        assert [t.get_text() for t in ax.get_yticklabels()] == ["T", "o", "␣", "b", "e"]
    plt.close(fig)


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
