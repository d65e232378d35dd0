"""Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
Network"): train a small student GPT on a big teacher's softened next-token distribution as well
as on the true next tokens. It leaves out distilling hidden states or attention maps (DistilBERT's
cosine loss, TinyBERT), and teachers with another vocabulary.

Shapes: N positions (a GPT batch's B * T, flattened), V vocabulary. In this file T is the
temperature, as in the paper: softmax(z / T) is softer (closer to uniform) for T > 1.

The loss, with p = softmax(z_s / T) the student's and q = softmax(z_t / T) the teacher's
softened distributions at each position, and y the true next token:

    L = alpha * T² * KL(q || p) + (1 - alpha) * CE(softmax(z_s), y)
    KL(q || p) = mean_n sum_v q_v (log q_v - log p_v)                      (per position, as CE)

The soft term's gradient, from log_softmax's (nothing new is derived: the loss is built from
log_softmax, exp, multiply and sum, each with its own backward):

    d KL / d z_s = (p - q) / (T N)          so   d (T² KL) / d z_s = T (p - q) / N

Why T²: for a large T, softmax(z / T) ≈ (1 + (z - mean z) / T) / V, so p - q ≈ (z_s - z_t) / (V T)
(logits of zero mean) and the KL's gradient ≈ (z_s - z_t) / (N V T²): it shrinks as 1 / T². The
factor T² brings it back to a size that does not depend on T, so alpha weighs the two terms alike
at every temperature, and changing T does not silently change the learning rate of the soft term.

Reduction: the KL is averaged over the N positions, as GPT's cross-entropy is, which is PyTorch's
F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") on logits flattened to (N, V)
(on (B, T, V) "batchmean" would divide by B alone; tests/test_distill_prune.py checks the parity).

distill() is the training loop: nanoGPT's (AdamW, warmup then cosine, gradient clipping) with the
teacher's logits, computed without a graph, in the loss. Without a teacher it trains on the true
tokens alone: the same student, steps and batches without the teacher, and the recovery
fine-tuning of a pruned model (prune.py: its masks keep pruned weights at zero).

Read next: prune.py (removing weights), t5.py (T5's text-to-text recipe), then cli.py.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

import minigrad
import minigrad.functional as F
from gpt.data import Batches
from gpt.model import GPT
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import warmup_cosine
from minigrad.tensor import Tensor


def check_temperature_alpha(fn: str, T: float, alpha: float) -> None:
    if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
        raise ValueError(f"{fn}: the temperature T must be a finite number > 0, got {T!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"{fn}: alpha (the weight of the teacher's soft targets) must be in [0, 1], got {alpha!r}")


def soft_target_kl(student_logits: Tensor, teacher_logits: Tensor, T: float = 2.0) -> Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), summed over the vocabulary and averaged over
    the positions: logits (..., V) each, the teacher's taken as constants (detached). A scalar."""
    check_temperature_alpha("soft_target_kl", T, 0.0)
    if student_logits.shape != teacher_logits.shape:
        what = "vocabulary" if student_logits.shape[:-1] == teacher_logits.shape[:-1] else "shape"
        raise ValueError(f"soft_target_kl: the teacher's logits {teacher_logits.shape} and the student's "
                         f"{student_logits.shape} differ in {what}: both must score the same tokens")
    V = student_logits.shape[-1]
    log_p = F.log_softmax(student_logits.reshape(-1, V) / T, dim=-1)  # (N, V), the student's, in the graph
    log_q = F.log_softmax(teacher_logits.detach().reshape(-1, V) / T, dim=-1)  # (N, V), the teacher's: constants
    q = log_q.exp()  # (N, V)
    return (q * (log_q - log_p)).sum(axis=-1).mean()  # (N,) -> ()


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Any, T: float = 2.0,
                      alpha: float = 0.5) -> Tensor:
    """alpha * T² * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, targets):
    logits (..., V), targets (...) token ids; both terms averaged over the positions. A scalar."""
    check_temperature_alpha("distillation_loss", T, alpha)
    V = student_logits.shape[-1]
    t = targets if isinstance(targets, Tensor) else Tensor(targets, device=student_logits.device)
    if t.shape != student_logits.shape[:-1]:
        raise ValueError(f"distillation_loss: targets must have the shape of the logits without their last axis "
                         f"{student_logits.shape[:-1]}, got {t.shape}")
    hard = F.cross_entropy(student_logits.reshape(-1, V), t.reshape(-1))  # ()
    if alpha == 0.0:
        return hard
    soft = soft_target_kl(student_logits, teacher_logits, T)  # ()
    return alpha * T * T * soft + (1.0 - alpha) * hard


def distill(student: GPT, teacher: GPT | None, batches: Batches, steps: int, *, T: float = 2.0,
            alpha: float = 0.5, learning_rate: float = 1e-3, min_lr: float = 1e-4, warmup_iters: int = 100,
            weight_decay: float = 0.1, grad_clip: float = 1.0, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Train `student` for `steps` AdamW steps on batches' train split (drawn from a generator seeded
    by `seed`, so two calls see the same batches), with distillation_loss against `teacher` (frozen,
    in eval mode); teacher None, or alpha 0: the true next tokens alone. Returns the steps, the
    seconds, and the mean training loss of the first and last tenth of the steps."""
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"distill: steps must be a positive integer, got {steps!r}")
    check_temperature_alpha("distill", T, alpha)
    if teacher is not None and teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"distill: the teacher's vocab_size is {teacher.config.vocab_size}, the student's "
                         f"{student.config.vocab_size}: the soft targets must be over the same tokens")
    use_teacher = teacher is not None and alpha > 0
    if use_teacher:
        teacher.eval()
    student.train()
    optimizer = student.configure_optimizer(weight_decay, learning_rate, (0.9, 0.99))
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    for it in range(steps):
        lr = warmup_cosine(it, learning_rate, min(warmup_iters, steps - 1), steps, min_lr)
        for g in optimizer.param_groups:
            g["lr"] = lr
        x, y = batches.sample("train", device, rng)  # (B, T) each
        optimizer.zero_grad(set_to_none=False)
        logits, hard = student(x, y)  # (B, T, V), ()
        if use_teacher:
            with minigrad.no_grad():
                teacher_logits, _ = teacher(x, y)  # (B, T, V), no graph: the teacher never trains
            loss = distillation_loss(logits, teacher_logits, y, T, alpha)
        else:
            loss = hard
        loss.backward()
        clip_grad_norm_([p for p in student.parameters() if p.requires_grad], grad_clip or math.inf)
        optimizer.step()
        losses.append(loss.item())
    tenth = max(1, steps // 10)
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1),
            "loss_first": round(float(np.mean(losses[:tenth])), 4), "loss_last": round(float(np.mean(losses[-tenth:])), 4)}
