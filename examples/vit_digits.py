"""A Vision Transformer on real images: scikit-learn's 8x8 handwritten digits (1,797 images).

Each image is cut into patches (2x2 pixels: 16 patches of 4 values), each patch is embedded by
one Linear layer, a learned [CLS] vector is put in front, learned position vectors are added,
and the sequence of 17 goes through a transformer encoder (minigrad.nn.TransformerEncoder with
norm_first=True: the GPT's block without the causal mask). The [CLS] position's output, after the
encoder, is the image's summary: a Linear head turns it into 10 class scores.

Training runs for a time budget (--minutes) with the learning rate decaying on a cosine to 0
exactly when the budget ends, on random +-1-pixel shifts of the training images. Split: 80/20,
stratified by class, fixed seed; the same split for the two baselines printed beside it
(logistic regression and a small MLP, from scikit-learn). Needs scikit-learn (the digits ship
inside its wheel): pip install -e '.[vit]'.

    python examples/vit_digits.py [--minutes 5 | --steps 1800] [--plot vit_attention.png]

Last line of output: one JSON object with the metrics. Leaves out: colour images, larger
patches' convolutional stem, distillation, and everything timm's ViT adds (see the README).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

# One BLAS thread: this model's products are small (2,176 x 64 rows), and on a shared machine a
# second OpenBLAS thread that waits for a core made a step 10x slower (measured: 0.17 s against 1.6 s).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread setting, which numpy reads at import)

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.extras import exit_if_missing, require  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402

FEATURE = "examples/vit_digits.py"


def patchify(images: np.ndarray, patch_size: int) -> np.ndarray:
    """(B, S, S) images -> (B, N, P*P) patches in reading order, N = (S / P)^2."""
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"ViT: images must be (B, S, S) square grey images, got shape {images.shape}")
    B, S, _ = images.shape
    P = patch_size
    if S % P:
        raise ValueError(f"ViT: image size {S}x{S} is not divisible by patch size {P}")
    x = images.reshape(B, S // P, P, S // P, P).transpose(0, 1, 3, 2, 4)  # (B, rows, cols, P, P)
    return x.reshape(B, (S // P) ** 2, P * P)  # (B, N, P*P)


class ViT(nn.Module):
    def __init__(self, image_size: int = 8, patch_size: int = 2, n_classes: int = 10, d_model: int = 64,
                 n_head: int = 4, n_layer: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT: image size {image_size} is not divisible by patch size {patch_size}")
        self.image_size, self.patch_size, self.n_classes = image_size, patch_size, n_classes
        n_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Linear(patch_size * patch_size, d_model)
        self.cls_token = nn.Parameter(minigrad.randn(1, 1, d_model) * 0.02)
        self.pos_embed = nn.Parameter(minigrad.randn(1, n_patches + 1, d_model) * 0.02)  # [CLS] + patches
        layer = nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)  # pre-LN, as the GPT's blocks
        self.encoder = nn.TransformerEncoder(layer, n_layer, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, n_classes)

    def embed(self, images: np.ndarray) -> Tensor:
        """images (B, S, S) -> [CLS] + patch embeddings + positions, (B, N + 1, C)."""
        if images.ndim == 3 and images.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"ViT: images must be {self.image_size}x{self.image_size} (the model's image_size), "
                             f"got {images.shape[1]}x{images.shape[2]}")
        dev = self.head.weight.device
        patches = Tensor(patchify(images, self.patch_size).astype(self.head.weight.dtype), device=dev)  # (B, N, P*P)
        x = self.patch_embed(patches)  # (B, N, C)
        cls = F.broadcast_to(self.cls_token, (x.shape[0], 1, x.shape[-1]))  # (B, 1, C)
        return F.cat([cls, x], axis=1) + self.pos_embed  # (B, N + 1, C)

    def forward(self, images: np.ndarray, labels: np.ndarray | None = None) -> tuple[Tensor, Tensor | None]:
        """images (B, S, S) float -> (logits (B, n_classes), mean cross-entropy or None)."""
        x = self.encoder(self.embed(images))  # (B, N + 1, C): every position sees every other
        logits = self.head(x[:, 0])  # (B, n_classes): the [CLS] position only
        if labels is None:
            return logits, None
        labels, B = np.asarray(labels), logits.shape[0]
        if labels.shape != (B,) or labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(f"ViT: labels must be {B} class ids in [0, {self.n_classes}), got shape {labels.shape}, "
                             f"range [{labels.min()}, {labels.max()}]")
        return logits, F.cross_entropy(logits, Tensor(labels, device=logits.device))

    def cls_attention(self, images: np.ndarray) -> np.ndarray:
        """The last layer's attention of [CLS] over the patches, averaged over heads: (B, S/P, S/P)."""
        with minigrad.no_grad():
            x = self.embed(images)
            for layer in self.encoder.layers[:-1]:
                x = layer(x)
            last = self.encoder.layers[-1]
            h = last.norm1(x)  # norm_first: attention reads the normalised stream
            _, weights = last.self_attn(h, h, h, need_weights=True)  # (B, N + 1, N + 1), mean over heads
        side = self.image_size // self.patch_size
        return weights.numpy()[:, 0, 1:].reshape(-1, side, side)


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    """The 1,797 8x8 digits scaled to [0, 1], split 80/20 stratified by class."""
    datasets = require("sklearn.datasets", FEATURE)
    from sklearn.model_selection import train_test_split

    d = datasets.load_digits()
    x = d.images.astype(np.float32) / 16.0  # pixels 0..16 -> 0..1
    return tuple(train_test_split(x, d.target, test_size=0.2, stratify=d.target, random_state=seed))


def baselines(x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Logistic regression and a one-hidden-layer MLP on the raw 64 pixels, same split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    a, b = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    logreg = LogisticRegression(max_iter=5000).fit(a, y_train)
    mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=1000, random_state=0).fit(a, y_train)
    return {"logreg_accuracy": round(float(logreg.score(b, y_test)), 4),
            "mlp_accuracy": round(float(mlp.score(b, y_test)), 4)}


def shifted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by -1, 0 or +1 pixel in each direction, the border filled with 0."""
    B, S, _ = images.shape
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # (B, S + 2, S + 2)
    dy, dx = rng.integers(0, 3, B), rng.integers(0, 3, B)
    rows = dy[:, None] + np.arange(S)  # (B, S)
    cols = dx[:, None] + np.arange(S)
    return padded[np.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, S, S)


def accuracy(model: ViT, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with minigrad.no_grad():
        logits, _ = model(x)
    model.train()
    return float((logits.numpy().argmax(axis=1) == y).mean())


def plot_attention(model: ViT, x: np.ndarray, y: np.ndarray, path: str, n: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    attn = model.cls_attention(x[:n])  # (n, 4, 4)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4))
    for i in range(n):
        axes[0, i].imshow(x[i], cmap="gray_r")
        axes[0, i].set_title(f"label {y[i]}", fontsize=9)
        axes[1, i].imshow(attn[i], cmap="viridis")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("[CLS] attention", fontsize=9)
    fig.suptitle("ViT on 8x8 digits: the last layer's [CLS] attention over its 2x2 patches")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


EPILOG = """times on a 2-core machine, with OPENBLAS_NUM_THREADS=1 (the baselines, unless --no-baselines: 1.5 s):
  python examples/vit_digits.py --steps 10                       about 4 s (the smallest run)
  python examples/vit_digits.py --steps 900 --no-baselines       about 70 s (the slow test's run)
  python examples/vit_digits.py --steps 1800                     about 2.5 minutes
  python examples/vit_digits.py --minutes 5 --plot PNG           about 5 minutes (the README's run)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="training time budget; the cosine ends with it")
    ap.add_argument("--steps", type=int, default=None,
                    help="a budget in steps instead of minutes (the cosine ends with them): the same run anywhere")
    ap.add_argument("--max_steps", type=int, default=None, help="stop after this many steps, even within the budget")
    ap.add_argument("--batch_size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--patch_size", type=int, default=2)
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--n_head", type=int, default=4)
    ap.add_argument("--n_layer", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                    help="also fit logistic regression and an MLP on the same split (default: yes)")
    ap.add_argument("--plot", default=None, help="write a picture of the [CLS] attention to this path")
    args = ap.parse_args(argv)
    if args.plot:
        require("matplotlib", f"{FEATURE} --plot")  # now, not after the training
    return args


def adamw(model: ViT, lr: float) -> minigrad.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on biases, LayerNorm gains or [CLS])."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return minigrad.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=lr, betas=(0.9, 0.99))


def train(model: ViT, x_train: np.ndarray, y_train: np.ndarray, args: argparse.Namespace,
          rng: np.random.Generator) -> tuple[int, float]:
    """Shuffled batches of shifted images until the budget (args.steps, or args.minutes of wall-clock
    time) or args.max_steps ends; warmup, then a cosine that reaches 0 with the budget. The steps
    taken and the seconds."""
    opt = adamw(model, args.lr)
    budget, warmup = 60.0 * args.minutes, 50
    t0 = time.perf_counter()
    step, order = 0, rng.permutation(len(x_train))
    while True:
        elapsed = time.perf_counter() - t0
        done = step / args.steps if args.steps else elapsed / budget  # fraction of the budget spent
        if done >= 1.0 or (args.max_steps is not None and step >= args.max_steps):
            break
        lr = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * done))
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < args.batch_size:
            order = np.concatenate([order, rng.permutation(len(x_train))])
        idx, order = order[: args.batch_size], order[args.batch_size :]
        _, loss = model(shifted(x_train[idx], rng), y_train[idx])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step:5d}  loss {loss.item():.4f}  lr {lr:.2e}  ({elapsed:.0f} s)", flush=True)
    return step, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    x_train, x_test, y_train, y_test = load_digits_split(args.seed)
    base = baselines(x_train, x_test, y_train, y_test) if args.baselines else {}
    if base:
        print(f"baselines on the same split: logistic regression {base['logreg_accuracy']:.4f}, "
              f"MLP {base['mlp_accuracy']:.4f}")

    minigrad.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = ViT(8, args.patch_size, 10, args.d_model, args.n_head, args.n_layer).to(args.device)
    n_params = sum(p.data.size for p in model.parameters())
    print(f"ViT: {n_params:,} parameters, patches {args.patch_size}x{args.patch_size}, "
          f"budget {f'{args.steps} steps' if args.steps else f'{args.minutes} min'}, "
          f"{len(x_train)} train / {len(x_test)} test images")
    step, train_seconds = train(model, x_train, y_train, args, rng)

    test_acc = accuracy(model, x_test, y_test)
    train_acc = accuracy(model, x_train, y_train)
    print(f"after {step} steps in {train_seconds:.0f} s: test accuracy {test_acc:.4f} (train {train_acc:.4f})")
    if args.plot:
        plot_attention(model, x_test, y_test, args.plot)
        print(f"wrote {args.plot}")
    result = {"test_accuracy": round(test_acc, 4), "train_accuracy": round(train_acc, 4), "steps": step,
              "train_seconds": round(train_seconds, 1), "minutes": None if args.steps else args.minutes,
              "params": n_params, **base}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    with exit_if_missing():
        main()
