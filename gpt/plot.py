"""`python -m gpt plot`: loss curves from a run's log, and attention heatmaps for a prompt (needs matplotlib).

loss.png: the training loss logged every log_interval steps, and the train and
val losses of each evaluation, titled with the run's folder and last iteration.
attention.png: for every layer (rows) and head (columns), the matrix of
attention weights, query position down, key position across: the alignment
pictures of the transformer literature, with one colour bar. The causal mask
shows as the empty upper triangle; spaces in the tick labels show as ␣.

Read next: minigrad/extras.py (how an optional package such as matplotlib is asked for).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gpt.train import load_model
from minigrad.extras import require


def _pyplot():
    require("matplotlib", "plotting").use("Agg")  # draws to files: no window, no display needed
    return require("matplotlib.pyplot", "plotting")


def read_log(path: str | Path) -> list[dict]:
    """log.jsonl's records. A last line cut short (a run killed while writing it) is skipped;
    any other line that is not JSON is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"log file {str(path)!r} does not exist (train first: python -m gpt train)")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n < len(lines):
                raise ValueError(f"log file {str(path)!r}, line {n}, is not JSON ({e})") from None
    return records


def plot_losses(log_path: str | Path, out: str | Path) -> Path:
    fig = loss_figure(read_log(log_path), run=Path(log_path).resolve().parent.name)
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)
    return Path(out)


def loss_figure(records: list[dict], run: str) -> Any:
    steps = [(r["iter"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["iter"], r["train"], r["val"]) for r in records if "val" in r]
    last = max((r["iter"] for r in records), default=0)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_title(f"run {run!r}: loss to iteration {last}" + (f", val {evals[-1][2]:.4f}" if evals else ""))
    if steps:
        ax.plot(*zip(*steps), lw=0.8, alpha=0.6, label="train (batch)")
    if evals:
        it, tr, va = zip(*evals)
        ax.plot(it, tr, "o-", label="train (eval)")
        ax.plot(it, va, "o-", label="val (eval)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    if steps or evals:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def visible(token: str) -> str:
    """A token as a tick label: spaces as ␣, newlines and other control characters escaped."""
    return repr(token)[1:-1].replace(" ", "␣")


def plot_attention(ckpt: str | Path, prompt: str, out: str | Path, device: str = "cpu") -> Path:
    fig = attention_figure(ckpt, prompt, device)
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)
    return Path(out)


def attention_weights(model: Any, ids: list[int]) -> list[np.ndarray]:
    """Each layer's attention weights (H, T, T) for one sequence. The fused attention op never
    holds them whole, so they are recomputed from q and k, which a forward hook on each layer's
    c_attn catches as the model runs."""
    cfg, weights = model.config, []
    C, H = cfg.n_embd, cfg.n_head
    D, Hkv = C // H, cfg.n_kv_head or H

    def record(c_attn: Any, inputs: Any, qkv: Any) -> None:
        a = qkv.numpy()[0]  # (T, C + 2 Hkv D): q, k, v side by side
        q = a[:, :C].reshape(-1, H, D).transpose(1, 0, 2)  # (H, T, D)
        k = a[:, C : C + Hkv * D].reshape(-1, Hkv, D).transpose(1, 0, 2).repeat(H // Hkv, axis=0)  # (H, T, D)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D)  # (H, T, T)
        s[:, np.triu(np.ones(s.shape[1:], dtype=bool), 1)] = -np.inf  # query i sees keys j <= i
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        weights.append(e / e.sum(axis=-1, keepdims=True))

    hooks = [b.attn.c_attn.register_forward_hook(record) for b in model.transformer.h]
    try:
        model([ids])
    finally:
        for h in hooks:
            h.remove()
    return weights


def attention_figure(ckpt: str | Path, prompt: str, device: str = "cpu") -> Any:
    model, tok, _ = load_model(ckpt, device)
    ids = tok.encode(prompt)[-model.config.block_size :]
    if not ids:
        raise ValueError("plot: the prompt is empty")
    blocks = list(model.transformer.h)
    model.eval()
    weights = attention_weights(model, ids)  # per layer (H, T, T)
    labels = [visible(tok.decode([i])) for i in ids]
    plt = _pyplot()
    L, H = len(blocks), model.config.n_head
    fig, axes = plt.subplots(L, H, figsize=(2.2 * H + 1.5, 2.2 * L + 0.5), squeeze=False, layout="constrained")
    for li, b in enumerate(blocks):
        att = weights[li]  # (H, T, T)
        for hi in range(H):
            ax = axes[li][hi]
            image = ax.imshow(np.asarray(att[hi]), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {li} head {hi}", fontsize=8)
            if len(ids) <= 24:
                ax.set_xticks(range(len(ids)), labels, fontsize=6, rotation=90)
                ax.set_yticks(range(len(ids)), labels, fontsize=6)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    fig.suptitle(f"attention weights for {prompt[:40]!r} (query down, key across)", fontsize=9)
    return fig
