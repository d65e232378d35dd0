"""`python -m gpt plot`: loss curves from a run's log, and attention heatmaps for a prompt (needs matplotlib).

loss.png: the training loss logged every log_interval steps, and the train and
val losses of each evaluation. attention.png: for every layer (rows) and head
(columns), the matrix of attention weights, query position down, key position
across: the alignment pictures of the transformer literature. The causal mask
shows as the empty upper triangle.

This is the last file of the tour.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gpt.train import load_model


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    return plt


def plot_losses(log_path: str | Path, out: str | Path) -> Path:
    path = Path(log_path)
    if not path.is_file():
        raise ValueError(f"log file {str(path)!r} does not exist (train first: python -m gpt train)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [(r["iter"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["iter"], r["train"], r["val"]) for r in records if "val" in r]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if steps:
        ax.plot(*zip(*steps), lw=0.8, alpha=0.6, label="train (batch)")
    if evals:
        it, tr, va = zip(*evals)
        ax.plot(it, tr, "o-", label="train (eval)")
        ax.plot(it, va, "o-", label="val (eval)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def plot_attention(ckpt: str | Path, prompt: str, out: str | Path, device: str = "cpu") -> Path:
    model, tok, _ = load_model(ckpt, device)
    ids = tok.encode(prompt)[-model.config.block_size :]
    if not ids:
        raise ValueError("plot: the prompt is empty")
    blocks = list(model.transformer.h)
    for b in blocks:
        b.attn.record_attention = True
    model.eval()
    model([ids])
    labels = [tok.decode([i]) for i in ids]
    plt = _pyplot()
    L, H = len(blocks), model.config.n_head
    fig, axes = plt.subplots(L, H, figsize=(2.2 * H + 1, 2.2 * L + 0.5), squeeze=False)
    for li, b in enumerate(blocks):
        att = b.attn.attention[0]  # (H, T, T)
        for hi in range(H):
            ax = axes[li][hi]
            ax.imshow(np.asarray(att[hi]), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {li} head {hi}", fontsize=8)
            if len(ids) <= 24:
                ax.set_xticks(range(len(ids)), [repr(c)[1:-1] for c in labels], fontsize=6, rotation=90)
                ax.set_yticks(range(len(ids)), [repr(c)[1:-1] for c in labels], fontsize=6)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"attention weights for {prompt[:40]!r} (query down, key across)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)
