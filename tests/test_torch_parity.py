"""Parity with PyTorch in float64: forward and backward of each op family (not dropout: its random stream differs)."""
import itertools

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from helpers import make_array, matches_torch, need

torch = need("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.usefixtures("float64")

_seeds = itertools.count()


def x(*shape, values="normal"):
    """A float input (both libraries differentiate it); integer and boolean arrays are passed as constants."""
    return make_array(next(_seeds), shape, values)


IDS = np.array([[0, 2, 0], [1, 2, 2]])  # repeated ids: their gradients must add up
TARGETS = np.array([1, -100, 0, 3])  # one row ignored
MASK = np.array([[True, False, False], [False, True, True]])
TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])  # max at ties: both split the gradient evenly
BOTTOM_RIGHT_CAUSAL = np.tril(np.ones((2, 4), dtype=bool), k=2)  # query i sees keys j <= i + (Tk - Tq)


def case(name, inputs, mg, th=None):
    """mg runs on minigrad tensors, th on torch tensors; th defaults to mg where the spelling is the same."""
    return pytest.param(inputs, mg, th or mg, id=name)


CASES = [
    # elementwise
    case("add", [x(2, 3), x(3)], lambda a, b: a + b),
    case("sub", [x(2, 1), x(3)], lambda a, b: a - b),
    case("mul", [x(2, 3), x(2, 1)], lambda a, b: a * b),
    case("div", [x(2, 3), x(3, values="nonzero")], lambda a, b: a / b),
    case("neg", [x(2, 3)], lambda a: -a),
    case("pow", [x(2, 3, values="positive")], lambda a: a**1.5),
    case("exp", [x(2, 3)], lambda a: a.exp()),
    case("log", [x(2, 3, values="positive")], lambda a: a.log()),
    case("sqrt", [x(2, 3, values="positive")], lambda a: a.sqrt()),
    case("tanh", [x(2, 3)], lambda a: a.tanh()),
    case("sigmoid", [x(2, 3)], lambda a: a.sigmoid()),
    case("relu", [x(2, 3, values="nonzero")], lambda a: a.relu()),
    case("gelu", [x(2, 3)], F.gelu, TF.gelu),
    case("gelu tanh", [x(2, 3)], lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh")),
    case("erf", [x(2, 3)], F.erf, torch.erf),
    case("maximum", [x(2, 3, values="even"), x(3, values="odd")], F.maximum, torch.maximum),
    case("maximum at ties", [TIES, np.array([[1.0, 0.0, 3.0], [2.0, 5.0, 2.0]])], F.maximum, torch.maximum),
    case("where", [MASK, x(2, 3), x(3)], F.where, torch.where),
    case("masked_fill", [x(2, 3), MASK], lambda a, m: F.masked_fill(a, m, -1.5), lambda a, m: a.masked_fill(m, -1.5)),
    # reductions
    case("sum", [x(2, 3, 4)], lambda a: F.sum(a, (0, 2), keepdims=True), lambda a: a.sum((0, 2), keepdim=True)),
    case("mean", [x(2, 3, 4)], lambda a: a.mean(-1)),
    case("amax", [x(2, 3, 4, values="distinct")], lambda a: minigrad.amax(a, 1), lambda a: torch.amax(a, 1)),
    case("amax at ties", [TIES], lambda a: minigrad.amax(a, 1), lambda a: torch.amax(a, 1)),
    case("var", [x(3, 4)], lambda a: F.var(a, 0), lambda a: torch.var(a, 0)),
    case("var(correction=0)", [x(2, 3, 4)], lambda a: F.var(a, (0, 1), keepdim=True, correction=0),
         lambda a: torch.var(a, (0, 1), keepdim=True, correction=0)),
    # shape
    case("reshape", [x(2, 3, 2)], lambda a: a.reshape(4, -1)),
    case("permute", [x(2, 3, 4)], lambda a: a.permute(2, 0, 1)),
    case("transpose", [x(2, 3, 4)], lambda a: a.transpose(0, 2)),
    case("getitem slices", [x(3, 4, 2)], lambda a: a[1:, ::2, None, ..., 1]),
    case("getitem repeated ids", [x(3, 4), IDS], lambda a, i: a[i]),
    case("getitem two id arrays", [x(3, 4), IDS, IDS[::-1].copy()], lambda a, i, j: a[i, j]),
    case("concatenate", [x(2, 3), x(2, 1)], lambda a, b: F.concatenate([a, b], 1), lambda a, b: torch.cat([a, b], 1)),
    case("stack", [x(2, 3), x(2, 3)], lambda a, b: F.stack([a, b], -1), lambda a, b: torch.stack([a, b], -1)),
    case("split", [x(2, 5)], lambda a: F.concatenate(F.split(a, 2, 1)[::-1], 1),
         lambda a: torch.cat(torch.split(a, 2, 1)[::-1], 1)),
    case("broadcast_to", [x(3, 1)], lambda a: a.broadcast_to((2, 3, 4))),
    # matmul
    case("matmul batched", [x(2, 1, 3, 4), x(5, 4, 2)], lambda a, b: a @ b),
    case("matmul (k,) @ (b, k, m)", [x(4), x(2, 4, 3)], lambda a, b: a @ b),
    case("matmul (b, n, k) @ (k,)", [x(2, 3, 4), x(4)], lambda a, b: a @ b),
    case("matmul (k,) @ (k,)", [x(4), x(4)], lambda a, b: a @ b),
    case("linear", [x(2, 3, 4), x(5, 4), x(5)], F.linear, TF.linear),
    # nn
    case("softmax", [x(2, 3, 4)], lambda a: F.softmax(a, 1), lambda a: torch.softmax(a, 1)),
    case("log_softmax", [x(2, 5)], F.log_softmax, lambda a: torch.log_softmax(a, -1)),
    case("cross_entropy", [x(4, 5), TARGETS], F.cross_entropy, TF.cross_entropy),
    case("cross_entropy ignore_index=0", [x(4, 5), TARGETS.clip(0)],
         lambda a, t: F.cross_entropy(a, t, ignore_index=0), lambda a, t: TF.cross_entropy(a, t, ignore_index=0)),
    case("cross_entropy label_smoothing=0.1", [x(4, 5), TARGETS],
         lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1), lambda a, t: TF.cross_entropy(a, t, label_smoothing=0.1)),
    case("layer_norm", [x(2, 3, 4)], F.layer_norm, lambda a: TF.layer_norm(a, (4,))),
    case("layer_norm affine", [x(2, 3, 4), x(4), x(4)], F.layer_norm, lambda a, w, b: TF.layer_norm(a, (4,), w, b)),
    case("embedding", [x(3, 4), IDS], lambda w, i: F.embedding(i, w), lambda w, i: TF.embedding(i, w)),
    case("attention", [x(1, 2, 2, 3), x(1, 2, 4, 3), x(1, 2, 4, 2)], F.scaled_dot_product_attention,
         TF.scaled_dot_product_attention),
    case("attention causal", [x(2, 1, 3, 2), x(2, 1, 3, 2), x(2, 1, 3, 4)],
         lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
         lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True)),
    # With Tq < Tk, torch's is_causal aligns the mask top-left; minigrad's is_causal aligns it
    # bottom-right (the last query sees every key, as with a KV cache): torch needs an explicit mask.
    case("attention causal Tq < Tk", [x(1, 2, 2, 3), x(1, 2, 4, 3), x(1, 2, 4, 3), BOTTOM_RIGHT_CAUSAL],
         lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, is_causal=True),
         lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m)),
]  # fmt: skip


@pytest.mark.parametrize("inputs, mg, th", CASES)
def test_matches_torch(inputs, mg, th, device):
    matches_torch(mg, th, inputs, [a.dtype.kind == "f" for a in inputs], device)