"""nn.functional as PyTorch: logsigmoid, softplus, silu, one_hot, pad, the losses and cross_entropy's arguments.

Float64 parity with torch (value, gradient, dtype, shape) on every backend, finite differences and
simple twins for the new ops, their numerical stability, and the errors for what is not supported."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad import simple
from helpers import arrays, check_op, make_array, matches_torch, need, shapes
from test_simple import assert_twins

torch = need("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.usefixtures("float64")

_seeds = itertools.count(100)


def x(*shape, values="normal", scale=1.0):
    """A float input: both libraries differentiate it."""
    return make_array(next(_seeds), shape, values) * scale


class Const:
    """An input that neither library differentiates (class weights, pos_weight, integer targets)."""

    def __init__(self, array):
        self.array = np.asarray(array)


def case(name, inputs, mg, th=None):
    return pytest.param(inputs, mg, th or mg, id=name)


def run_both(inputs, mg, th, device):
    """Both libraries on the same inputs: values, dtypes, shapes and the gradients of sum(out * u) for a random u."""
    arrays = [i.array if isinstance(i, Const) else i for i in inputs]
    grads = [not isinstance(i, Const) and i.dtype.kind == "f" for i in inputs]
    out, expected = matches_torch(mg, th, arrays, grads, device)
    assert out.dtype == np.dtype(str(expected.dtype).removeprefix("torch."))


W5 = np.array([0.5, 2.0, 1.0, 0.25, 3.0])  # a weight per class (5 classes)
T4 = np.array([1, -100, 0, 3])  # targets of 4 rows, one ignored
T4_SOME_ZERO = np.array([1, 0, 0, 3])  # with ignore_index=0: two ignored

ACTIVATIONS = [
    case("logsigmoid", [x(3, 4, scale=4)], F.logsigmoid, TF.logsigmoid),
    case("logsigmoid far out", [np.array([-800.0, -40.0, 40.0, 800.0])], F.logsigmoid, TF.logsigmoid),
    case("softplus", [x(3, 4, scale=4)], F.softplus, TF.softplus),
    case("softplus beta threshold", [x(3, 4, scale=4)], lambda a: F.softplus(a, beta=2, threshold=3),
         lambda a: TF.softplus(a, beta=2, threshold=3)),
    case("softplus beta<0", [x(3, 4, scale=4)], lambda a: F.softplus(a, beta=-1.5),
         lambda a: TF.softplus(a, beta=-1.5)),
    case("softplus far out", [np.array([-800.0, -40.0, 15.0, 19.9, 20.1, 800.0])], F.softplus, TF.softplus),
    case("silu", [x(3, 4, scale=4)], F.silu, TF.silu),
    case("silu far out", [np.array([-800.0, -40.0, 40.0, 800.0])], F.silu, TF.silu),
]

SHAPES = [
    case("one_hot", [Const([[0, 2], [1, 4]])], F.one_hot, TF.one_hot),
    case("one_hot num_classes", [Const([3, 0])], lambda t: F.one_hot(t, 6), lambda t: TF.one_hot(t, 6)),
    case("pad last dim", [x(2, 3)], lambda a: F.pad(a, (1, 2)), lambda a: TF.pad(a, (1, 2))),
    case("pad two dims, value", [x(2, 3, 4)], lambda a: F.pad(a, (0, 1, 2, 0), value=-1.5),
         lambda a: TF.pad(a, (0, 1, 2, 0), value=-1.5)),
    case("pad crops with negative sizes", [x(3, 5)], lambda a: F.pad(a, (-1, 2, 1, -2)),
         lambda a: TF.pad(a, (-1, 2, 1, -2))),
    case("pad every dim", [x(2, 2)], lambda a: F.pad(a, (1, 1, 1, 1)), lambda a: TF.pad(a, (1, 1, 1, 1))),
]

LOSSES = [
    *[case(f"mse_loss {r}", [x(3, 4), x(3, 4)], lambda a, b, r=r: F.mse_loss(a, b, reduction=r),
           lambda a, b, r=r: TF.mse_loss(a, b, reduction=r)) for r in ("none", "mean", "sum")],
    *[case(f"bce_with_logits {r}", [x(3, 4, scale=5), x(3, 4, values="positive") / 2],
           lambda a, b, r=r: F.binary_cross_entropy_with_logits(a, b, reduction=r),
           lambda a, b, r=r: TF.binary_cross_entropy_with_logits(a, b, reduction=r)) for r in ("none", "mean", "sum")],
    case("bce_with_logits weight pos_weight", [x(3, 4, scale=5), x(3, 4, values="positive") / 2,
                                               Const(x(3, 1, values="positive")), Const(x(4, values="positive"))],
         lambda a, b, w, pw: F.binary_cross_entropy_with_logits(a, b, w, pos_weight=pw),
         lambda a, b, w, pw: TF.binary_cross_entropy_with_logits(a, b, w, pos_weight=pw)),
    case("bce_with_logits far out", [np.array([-800.0, -30.0, 30.0, 800.0]), np.array([1.0, 0.0, 1.0, 0.0])],
         F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
    *[case(f"nll_loss {r} weight={w is not None} ignore_index={ii}",
           [x(4, 5), Const(T4 if ii == -100 else T4_SOME_ZERO)] + ([Const(w)] if w is not None else []),
           lambda a, t, *w, r=r, ii=ii: F.nll_loss(a, t, *w, ignore_index=ii, reduction=r),
           lambda a, t, *w, r=r, ii=ii: TF.nll_loss(a, t, *w, ignore_index=ii, reduction=r))
      for r, w, ii in itertools.product(("none", "mean", "sum"), (None, W5), (-100, 0))],
    case("nll_loss (N, C, d1, d2)", [x(2, 5, 3, 2), Const([[[0, 1], [4, -100], [2, 2]], [[3, 3], [1, 0], [-100, 4]]]),
                                     Const(W5)],
         lambda a, t, w: F.nll_loss(a, t, w, reduction="none"), lambda a, t, w: TF.nll_loss(a, t, w, reduction="none")),
]


def ce(a, t, *w, lib, **kw):
    return (F if lib == "mg" else TF).cross_entropy(a, t, *w, **kw)


CROSS_ENTROPY = [
    *[case(f"cross_entropy {r} weight={w is not None} ignore_index={ii} label_smoothing={eps}",
           [x(4, 5, scale=2), Const(T4 if ii == -100 else T4_SOME_ZERO)] + ([Const(w)] if w is not None else []),
           lambda a, t, *w, r=r, ii=ii, eps=eps: ce(a, t, *w, lib="mg", reduction=r, ignore_index=ii,
                                                   label_smoothing=eps),
           lambda a, t, *w, r=r, ii=ii, eps=eps: ce(a, t, *w, lib="th", reduction=r, ignore_index=ii,
                                                   label_smoothing=eps))
      for r, w, ii, eps in itertools.product(("none", "mean", "sum"), (None, W5), (-100, 0), (0.0, 0.2))],
    *[case(f"cross_entropy (N, C, d1, d2) {r}",
           [x(2, 5, 3, 2), Const([[[0, 1], [4, -100], [2, 2]], [[3, 3], [1, 0], [-100, 4]]]), Const(W5)],
           lambda a, t, w, r=r: ce(a, t, w, lib="mg", reduction=r, label_smoothing=0.1),
           lambda a, t, w, r=r: ce(a, t, w, lib="th", reduction=r, label_smoothing=0.1)) for r in ("none", "mean")],
    *[case(f"cross_entropy (C,) {r}", [x(5), Const(np.array(3))],
           lambda a, t, r=r: ce(a, t, lib="mg", reduction=r), lambda a, t, r=r: ce(a, t, lib="th", reduction=r))
      for r in ("none", "mean", "sum")],
    *[case(f"cross_entropy probabilities {r} weight label_smoothing",
           [x(4, 5), x(4, 5, values="positive"), Const(W5)],
           lambda a, p, w, r=r: ce(a, p, w, lib="mg", reduction=r, label_smoothing=0.1),
           lambda a, p, w, r=r: ce(a, p, w, lib="th", reduction=r, label_smoothing=0.1))
      for r in ("none", "mean", "sum")],
    case("cross_entropy probabilities (N, C, d1)", [x(2, 5, 3), x(2, 5, 3, values="positive")],
         lambda a, p: ce(a, p, lib="mg"), lambda a, p: ce(a, p, lib="th")),
    case("cross_entropy every target ignored, sum", [x(2, 3), Const([-100, -100])],
         lambda a, t: ce(a, t, lib="mg", reduction="sum"), lambda a, t: ce(a, t, lib="th", reduction="sum")),
]


@pytest.mark.parametrize("inputs, mg, th", ACTIVATIONS + SHAPES + LOSSES + CROSS_ENTROPY)
def test_matches_torch(inputs, mg, th, device):
    run_both(inputs, mg, th, device)


def test_softmax_takes_dim_and_dtype_as_pytorch(device):
    a = x(2, 3, 4)
    run_both([a], lambda t: F.softmax(t, dim=1), lambda t: TF.softmax(t, dim=1), device)
    run_both([a], lambda t: F.log_softmax(t, 0), lambda t: TF.log_softmax(t, 0), device)
    t = minigrad.tensor(a.astype(np.float32), device=device)
    assert F.softmax(t, dim=-1, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(F.softmax(t, axis=0).numpy(), F.softmax(t, dim=0).numpy())
    with pytest.raises(TypeError, match="softmax: got both dim=0 and axis=1"):
        F.softmax(t, dim=0, axis=1)


# ---- the cross_entropy that gave NaN --------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_ignored_row_with_minus_inf_logit(device, label_smoothing):
    """An ignored row whose class 0 logit is -inf (a masked vocabulary): the fused op used to read
    that -inf for the ignored row and multiply it by its weight 0, and return NaN."""
    logits = x(3, 4)
    logits[0, 0] = -np.inf
    targets = Const([-100, 1, 2])
    run_both([logits, targets], lambda a, t: F.cross_entropy(a, t, label_smoothing=label_smoothing),
             lambda a, t: TF.cross_entropy(a, t, label_smoothing=label_smoothing), device)
    twin = simple.cross_entropy(minigrad.tensor(logits, device=device), minigrad.tensor(targets.array, device=device),
                                label_smoothing=label_smoothing)
    fused = F.cross_entropy(minigrad.tensor(logits, device=device), minigrad.tensor(targets.array, device=device),
                            label_smoothing=label_smoothing)
    np.testing.assert_allclose(fused.item(), twin.item(), rtol=1e-12)


# ---- finite differences and the simple twins --------------------------------------------------


def sigmoid_ref(a):
    return 1 / (1 + np.exp(-a))


ELEMENTWISE = {  # name: (op, NumPy reference)
    "logsigmoid": (F.logsigmoid, lambda a: np.log(sigmoid_ref(a))),
    "softplus": (F.softplus, lambda a: np.log1p(np.exp(a))),
    "softplus beta=2 threshold=1": (lambda t: F.softplus(t, 2, 1),
                                    lambda a: np.where(2 * a > 1, a, np.log1p(np.exp(2 * a)) / 2)),
    "silu": (F.silu, lambda a: a * sigmoid_ref(a)),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(shape=shapes(), data=st.data())
def test_activations_against_numpy_and_finite_differences(name, device, shape, data):
    op, ref = ELEMENTWISE[name]
    check_op(op, ref, [data.draw(arrays(shape)) * 3], device)


TWINS = {
    "logsigmoid": (F.logsigmoid, simple.logsigmoid),
    "softplus": (F.softplus, simple.softplus),
    "softplus beta=2 threshold=1": (lambda t: F.softplus(t, 2, 1), lambda t: simple.softplus(t, 2, 1)),
    "silu": (F.silu, simple.silu),
}


@pytest.mark.parametrize("name", TWINS)
def test_activations_equal_their_simple_twins(device, name):
    fused, twin = TWINS[name]
    assert_twins(fused, twin, [make_array(11, (4, 6)) * 4], device)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_backward_with_weights_by_finite_differences(device, reduction, label_smoothing):
    t = minigrad.tensor(np.array([1, -100, 0, 3, 3]), device=device)
    w = minigrad.tensor(W5, device=device)
    logits = minigrad.tensor(x(5, 5), device=device, requires_grad=True)
    assert minigrad.gradcheck(
        lambda a: F.cross_entropy(a, t, w, reduction=reduction, label_smoothing=label_smoothing), [logits])


def test_activations_are_finite_and_exact_far_out(device):
    """e^x would overflow and 1 - sigmoid(x) cancel: the ops never form either."""
    a = minigrad.tensor(np.array([-1000.0, -40.0, 40.0, 1000.0]), device=device, requires_grad=True)
    F.logsigmoid(a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.0, 1.0, np.exp(-40.0) / (1 + np.exp(-40.0)), 0.0], rtol=1e-14)
    a32 = minigrad.tensor(np.array([-200.0, 200.0], dtype=np.float32), device=device)
    assert np.isfinite(F.softplus(a32, threshold=1000).numpy()).all() and np.isfinite(F.silu(a32).numpy()).all()


# ---- what is not supported says so -------------------------------------------------------------


def t(values):
    return minigrad.tensor(np.array(values))


ERRORS = {
    "cross_entropy reduction": (lambda: F.cross_entropy(t([1.0, 2.0]), t(0), reduction="avg"),
                                ValueError, r"cross_entropy: reduction='avg' is not supported"),
    "nll_loss reduction": (lambda: F.nll_loss(t([1.0, 2.0]), t(0), reduction="batchmean"),
                           ValueError, r"nll_loss: reduction='batchmean' is not supported"),
    "mse_loss reduction": (lambda: F.mse_loss(t(1.0), t(2.0), reduction="foo"), ValueError,
                           r"mse_loss: reduction='foo' is not supported"),
    "bce reduction": (lambda: F.binary_cross_entropy_with_logits(t(1.0), t(1.0), reduction=None), ValueError,
                      r"binary_cross_entropy_with_logits: reduction=None is not supported"),
    "cross_entropy weight shape": (lambda: F.cross_entropy(t([1.0, 2.0]), t(0), t([1.0, 2.0, 3.0])), ValueError,
                                   r"cross_entropy: weight must hold one number per class, shape \(2,\), got \(3,\)"),
    "cross_entropy weight requires grad": (
        lambda: F.cross_entropy(t([1.0, 2.0]), t(0), minigrad.tensor([1.0, 1.0], requires_grad=True)),
        ValueError, r"cross_entropy: weight must not require grad"),
    "cross_entropy probabilities ignore_index": (
        lambda: F.cross_entropy(t([1.0, 2.0]), t([0.5, 0.5]), ignore_index=0),
        ValueError, r"cross_entropy: ignore_index applies to class-id targets"),
    "cross_entropy float ids": (lambda: F.cross_entropy(t([1.0, 2.0]), t(0.0)), TypeError,
                                r"cross_entropy: targets must be integer class ids, got float64"),
    "cross_entropy layout": (lambda: F.cross_entropy(t([[1.0, 2.0]] * 2), t([0, 1, 0])), ValueError,
                             r"cross_entropy: expected logits \(N, V\) and targets \(N,\), got \(2, 2\) and \(3,\)"),
    "nll_loss target": (lambda: F.nll_loss(t([[1.0, 2.0]]), t([2])), IndexError,
                        r"nll_loss: target 2 is out of range for 2 classes"),
    "pad mode": (lambda: F.pad(t([1.0, 2.0]), (1, 1), mode="reflect"), ValueError,
                 r"pad: mode='reflect' is not supported \(only 'constant'\)"),
    "pad odd sizes": (lambda: F.pad(t([1.0, 2.0]), (1, 1, 1)), ValueError, r"pad: expected pairs of sizes"),
    "one_hot floats": (lambda: F.one_hot(t(1.0)), TypeError, r"one_hot: expected integer class ids, got float64"),
    "one_hot negative": (lambda: F.one_hot(t([-1, 0])), ValueError, r"one_hot: class ids must be non-negative, got -1"),
    "one_hot too few classes": (lambda: F.one_hot(t([3, 0]), 3), ValueError,
                                r"one_hot: class id 3 is out of range for num_classes=3"),
    "softplus beta 0": (lambda: F.softplus(t(1.0), beta=0), ValueError, r"softplus: beta must not be 0"),
    "silu inplace": (lambda: F.silu(t(1.0), inplace=True), ValueError, r"silu: inplace=True is not supported"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_unsupported_arguments_raise_naming_themselves(name):
    fn, error, match = ERRORS[name]
    with pytest.raises(error, match=match):
        fn()


def test_a_bad_target_on_a_gpu_gives_nan_without_waiting(gpu_device):
    """On a GPU the ids are not read back to check them (that would make the CPU wait): the loss is NaN."""
    logits = minigrad.tensor(x(2, 3), device=gpu_device)
    bad = minigrad.tensor(np.array([0, 7]), device=gpu_device)
    for reduction in ("mean", "sum"):
        assert np.isnan(F.cross_entropy(logits, bad, reduction=reduction).item())
        assert np.isnan(F.nll_loss(logits, bad, reduction=reduction).item())
    per_row = F.cross_entropy(logits, bad, reduction="none").numpy()
    assert np.isfinite(per_row[0]) and np.isnan(per_row[1])


def test_module_forms_match_torch(device):
    from minigrad.nn import layers

    a, b = x(4, 5, scale=3), x(4, 5, values="positive") / 2
    ids = Const(T4)
    w = minigrad.tensor(W5)  # a buffer: .to(device) moves it
    pairs = [
        (layers.SiLU(), torch.nn.SiLU(), [a]),
        (layers.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0), [a]),
        (layers.CrossEntropyLoss(w, label_smoothing=0.1).to(device),
         torch.nn.CrossEntropyLoss(torch.tensor(W5), label_smoothing=0.1), [a, ids]),
        (layers.NLLLoss(w, reduction="sum").to(device), torch.nn.NLLLoss(torch.tensor(W5), reduction="sum"), [a, ids]),
        (layers.MSELoss(reduction="none"), torch.nn.MSELoss(reduction="none"), [a, b]),
        (layers.BCEWithLogitsLoss(pos_weight=minigrad.tensor(W5)).to(device),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(W5)), [a, b]),
    ]
    for ours, theirs, inputs in pairs:
        run_both(inputs, ours, theirs, device)
    assert repr(layers.Softplus(2.0, 5.0)) == repr(torch.nn.Softplus(2.0, 5.0))


def test_nn_functional_is_functional_under_pytorchs_path():
    import minigrad
    import minigrad.nn.functional as nnF
    from minigrad import functional

    assert minigrad.nn.functional.softmax is functional.softmax and nnF.cross_entropy is functional.cross_entropy
    assert set(nnF.__all__) == set(functional.__all__)
