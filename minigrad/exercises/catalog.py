"""The exercises: for each op, its inputs, the terms its backward returns (in the order it computes
them), the cases it is checked on, and the solution: the project's own op.

An exercise's stub (stubs/NAME.py) defines a Function subclass `cls` whose forward takes `inputs`
(then the case's params as keywords) and whose `backward_terms(dout)` returns {term name: array}.
`grads` names, per input, the term that is its gradient; `reference` (references.py) gives the
other terms. Cases are small and float64, two per exercise (a second, 3-d one where the op takes
leading axes). None of these ops has a kink (softmax's max shifts the row, it selects nothing), so
normal draws serve as they are; embedding's ids repeat, on purpose.

Read next: references.py, then checker.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from minigrad.exercises import references
from minigrad.ops.attention import scaled_dot_product_attention
from minigrad.ops.elementwise import gelu
from minigrad.ops.embedding import embedding
from minigrad.ops.layernorm import layer_norm
from minigrad.ops.matmul import linear
from minigrad.ops.softmax import cross_entropy, softmax
from minigrad.tensor import Tensor

Rng = np.random.Generator


@dataclass(frozen=True)
class Term:
    name: str
    shape: str  # as the stub writes it, e.g. "(N, C)"
    about: str  # what it is (the stub's words: no answer)
    hint: str = ""  # shown when it is wrong


@dataclass(frozen=True)
class Case:
    label: str
    arrays: tuple[np.ndarray, ...]  # the differentiable inputs, float64
    params: dict[str, Any]  # forward's keywords


@dataclass(frozen=True)
class Exercise:
    name: str
    cls: str  # the Function subclass the stub defines
    summary: str
    chapter: str  # the chapter that derives it: its file, then its topic (file names may change)
    solution: str  # "file, Class.method": where the project's backward is
    inputs: tuple[str, ...]
    terms: tuple[Term, ...]
    grads: tuple[str, ...]  # per input, the term that is its gradient
    project: Callable[..., Tensor]  # the project's op on Tensors, called as forward is
    cases: Callable[[Rng], list[Case]]
    reference: Callable[[list[np.ndarray], dict[str, Any], np.ndarray], dict[str, np.ndarray]] | None = None


def _layer_norm_cases(rng: Rng) -> list[Case]:
    def case(shape: tuple[int, ...]) -> Case:
        c = shape[-1]
        x = 2 * rng.standard_normal(shape) + 0.5
        w, b = 1 + 0.5 * rng.standard_normal(c), rng.standard_normal(c)
        return Case(f"x {shape}, weight ({c},), bias ({c},)", (x, w, b), {"eps": 1e-5})

    return [case((6, 8)), case((2, 3, 5))]


def _softmax_cases(rng: Rng) -> list[Case]:
    return [Case(f"x {s}", (2 * rng.standard_normal(s),), {}) for s in [(4, 7), (2, 3, 5)]]


def _cross_entropy_cases(rng: Rng) -> list[Case]:
    def case(n: int, v: int) -> Case:
        targets = rng.integers(0, v, n)
        return Case(f"logits ({n}, {v}), targets ({n},)", (2 * rng.standard_normal((n, v)),), {"targets": targets})

    return [case(6, 5), case(3, 9)]


def _gelu_cases(rng: Rng) -> list[Case]:
    return [Case(f"x {s}", (2 * rng.standard_normal(s),), {}) for s in [(4, 5), (2, 3, 4)]]


def _linear_cases(rng: Rng) -> list[Case]:
    def case(x_shape: tuple[int, ...], n_out: int) -> Case:
        n_in = x_shape[-1]
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
        return Case(f"x {x_shape}, weight ({n_out}, {n_in}), bias ({n_out},)", (x, w, b), {})

    return [case((5, 4), 3), case((2, 3, 4), 6)]


def _embedding_cases(rng: Rng) -> list[Case]:
    def case(idx: np.ndarray) -> Case:
        return Case(f"weight (7, 3), idx {idx.shape} with repeated ids", (rng.standard_normal((7, 3)),), {"idx": idx})

    return [case(np.array([[1, 4, 1], [6, 1, 0]])), case(rng.integers(0, 7, 10))]  # 10 ids among 7: repeats


def _attention_cases(rng: Rng) -> list[Case]:
    def case(b: int, h: int, tq: int, tk: int, d: int, dv: int, causal: bool) -> Case:
        q, k, v = (rng.standard_normal(s) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)])
        label = f"q {q.shape}, k {k.shape}, v {v.shape}" + (", causal" if causal else "")
        return Case(label, (q, k, v), {"causal": causal, "scale": 1 / math.sqrt(d)})

    return [case(2, 2, 3, 5, 4, 3, False), case(1, 2, 3, 5, 4, 2, True)]  # causal with Tq < Tk: bottom-right


def _all_dims_but_last(name: str) -> str:
    return f"{name} gets one contribution per row: sum over every axis but the last (the checker's x may be 3-d)"


EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise(
        name="linear", cls="Linear", summary="y = x @ weight.T + bias: three matmul-shaped gradients",
        chapter="docs/chapters/03_matmul_linear.md (matmul and the linear layer)", solution="minigrad/ops/matmul.py, Linear.backward",
        inputs=("x", "weight", "bias"),
        terms=(Term("dx", "(N, in)", "x[n, i] meets weight[o, i] for every output o"),
               Term("dweight", "(out, in)", "weight[o, i] meets x[n, i] in every row n",
                    "fold the leading axes of x and dout into one (reshape(-1, ...)), then one matmul"),
               Term("dbias", "(out,)", "bias[o] is in every row n", _all_dims_but_last("dbias"))),
        grads=("dx", "dweight", "dbias"),
        project=lambda x, w, b: linear(x, w, b), cases=_linear_cases),
    Exercise(
        name="softmax", cls="Softmax", summary="y = softmax(x) over the last axis: two ways into x",
        chapter="docs/chapters/04_softmax_cross_entropy.md (softmax and cross-entropy)", solution="minigrad/ops/softmax.py, Softmax.backward",
        inputs=("x",),
        terms=(Term("dx_via_numerator", "(N, V)", "x_i through the numerator e_i, the sum s held fixed"),
               Term("dx_via_sum", "(N, V)", "x_i through the sum s, which is in every y_j",
                    "s is in every y_j: a sum over j along the last axis (keepdims=True), then times y"),
               Term("dx", "(N, V)", "both together")),
        grads=("dx",), project=lambda x: softmax(x, -1), cases=_softmax_cases, reference=references.softmax_terms),
    Exercise(
        name="cross_entropy", cls="CrossEntropy", summary="mean -log softmax(logits)[target]: two parts",
        chapter="docs/chapters/04_softmax_cross_entropy.md (softmax and cross-entropy)", solution="minigrad/ops/softmax.py, CrossEntropy.backward",
        inputs=("logits",),
        terms=(Term("dlogits_via_logsumexp", "(N, V)", "the logsumexp part of the loss",
                    "the derivative of logsumexp is a quantity forward saved; times dout / N"),
               Term("dlogits_via_target", "(N, V)", "the -logits[n, t_n] part of the loss",
                    "one nonzero entry per row, at (n, t_n); times dout / N"),
               Term("dlogits", "(N, V)", "both together")),
        grads=("dlogits",), project=lambda z, targets: cross_entropy(z, targets), cases=_cross_entropy_cases,
        reference=references.cross_entropy_terms),
    Exercise(
        name="layer_norm", cls="LayerNorm", summary="normalize the last axis, then * weight + bias: three ways into x",
        chapter="docs/chapters/05_layer_norm.md (layer norm, term by term)", solution="minigrad/ops/layernorm.py, LayerNorm.backward",
        inputs=("x", "weight", "bias"),
        terms=(Term("dweight", "(C,)", "weight_c multiplies xhat[n, c] in every row n", _all_dims_but_last("dweight")),
               Term("dbias", "(C,)", "bias_c is in every row n", _all_dims_but_last("dbias")),
               Term("dxhat", "(N, C)", "y = xhat * weight + bias, undone"),
               Term("dx_direct", "(N, C)", "x itself, mean and rstd held fixed"),
               Term("dx_via_mean", "(N, 1) or (N, C)", "x through mean = sum_j x_j / C",
                    "mean is in every xhat_i with factor -rstd: sum dxhat over the row, times d mean / d x_j"),
               Term("dx_via_rstd", "(N, C)", "x through rstd = (var + eps)^(-1/2)",
                    "(d loss / d rstd) * (d rstd / d x_j), with x_i - mean = xhat_i / rstd; mind the sign"),
               Term("dx", "(N, C)", "the three together")),
        grads=("dx", "dweight", "dbias"),
        project=lambda x, w, b, eps: layer_norm(x, w, b, eps), cases=_layer_norm_cases,
        reference=references.layer_norm_terms),
    Exercise(
        name="attention", cls="Attention", summary="softmax(q k^T * scale + mask) @ v: dV, dP, dS, dQ, dK",
        chapter="docs/chapters/06_attention.md (attention with masks)",
        solution="minigrad/ops/attention.py, ScaledDotProductAttention.backward",
        inputs=("q", "k", "v"),
        terms=(Term("dV", "(B, H, Tk, Dv)", "O = P @ v, undone for v"),
               Term("dP", "(B, H, Tq, Tk)", "O = P @ v, undone for P"),
               Term("dS", "(B, H, Tq, Tk)", "P = softmax(S), undone row by row",
                    "softmax's backward with dP as its dout and P as its output: P * (dP - (the row sum of ...))"),
               Term("dQ", "(B, H, Tq, D)", "S = q @ k^T * scale, undone for q", "a matmul's backward, times scale"),
               Term("dK", "(B, H, Tk, D)", "S = q @ k^T * scale, undone for k",
                    "a matmul's backward (dS transposed), times scale")),
        grads=("dQ", "dK", "dV"),
        project=lambda q, k, v, causal, scale: scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale),
        cases=_attention_cases, reference=references.attention_terms),
    Exercise(
        name="gelu", cls="GELU", summary="GPT-2's GELU, x/2 (1 + tanh u): two factors",
        chapter="docs/chapters/07_gpt_step.md (one GPT training step)",
        solution="minigrad/ops/elementwise.py, _gelu_tanh_piece (dydx) and GELU.backward",
        inputs=("x",),
        terms=(Term("dx_via_half_x", "(...)", "through the factor x/2, 1 + tanh u held fixed"),
               Term("dx_via_tanh", "(...)", "through the factor 1 + tanh u, x/2 held fixed",
                    "chain rule: dout * x/2 * (1 - t^2) * du/dx"),
               Term("dx", "(...)", "both together")),
        grads=("dx",), project=lambda x: gelu(x, approximate="tanh"), cases=_gelu_cases,
        reference=references.gelu_terms),
    Exercise(
        name="embedding", cls="Embedding", summary="y = weight[idx]: a gather, so backward is a scatter-add",
        chapter="docs/chapters/07_gpt_step.md (one GPT training step)", solution="minigrad/ops/embedding.py, Embedding.backward",
        inputs=("weight",),
        terms=(Term("dweight", "(V, C)", "row v collects dout[n] for every n with idx[n] == v",
                    "ids repeat: an id read k times collects all k rows of dout, and "
                    "dweight[idx] += dout keeps only one of them (look up xp.add.at)"),),
        grads=("dweight",), project=lambda w, idx: embedding(idx, w), cases=_embedding_cases),
]}
