"""PyTorch's names and keywords in minigrad: every Tensor method, torch.X function, creation function,
dtype and device name that code written for PyTorch calls, against PyTorch itself (float64: value,
gradient, dtype and shape), plus finite differences for the ops with new gradients and the rules
PyTorch keeps for Python numbers, NumPy arrays, devices and random generators."""
import itertools
import operator

import numpy as np
import pytest

import minigrad
from helpers import make_array, need

torch = need("torch")

pytestmark = pytest.mark.usefixtures("float64")

_seeds = itertools.count(100)


def x(*shape, values="normal"):
    return make_array(next(_seeds), shape, values)


TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])  # max(dim) at ties: the gradient goes to the first
IDS = np.array([[0, 2, 2], [1, 0, 0]])  # gather: repeated ids, whose gradients add up
MASK = np.array([[True, False, True], [False, False, True]])
SPECIAL = np.array([1.0, np.nan, np.inf, -np.inf])


@pytest.fixture
def torch_float64():
    """torch's default dtype float64 too, so that creation functions agree with minigrad's (float64 fixture)."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(prev)


def case(name, inputs, fn):
    """fn(T, *tensors) runs with T = minigrad on minigrad tensors and T = torch on torch tensors."""
    return pytest.param(inputs, fn, id=name)


CASES = [
    # reductions, with PyTorch's keywords
    case("sum(dim, keepdim)", [x(2, 3, 4)], lambda T, a: a.sum(dim=1, keepdim=True)),
    case("torch.sum dims", [x(2, 3, 4)], lambda T, a: T.sum(a, dim=(0, 2))),
    case("sum of bools is int64", [x(2, 3)], lambda T, a: (a > 0).sum()),
    case("sum(dtype)", [x(2, 3)], lambda T, a: a.sum(-1, dtype=T.float32)),
    case("mean(dim, keepdim)", [x(2, 3, 4)], lambda T, a: a.mean(dim=-1, keepdim=True)),
    case("torch.mean", [x(2, 3)], lambda T, a: T.mean(a)),
    case("max()", [x(2, 3, values="distinct")], lambda T, a: a.max()),
    case("max() at ties", [TIES], lambda T, a: T.max(a)),
    case("max(dim)", [x(2, 3, 4, values="distinct")], lambda T, a: a.max(dim=1)),
    case("max(dim, keepdim) at ties", [TIES], lambda T, a: a.max(dim=1, keepdim=True)),
    case("max(dim).values", [x(3, 4, values="distinct")], lambda T, a: a.max(dim=-1, keepdim=True).values),
    case("torch.min(dim)", [x(3, 4, values="distinct")], lambda T, a: T.min(a, 0)),
    case("min(dim) at ties", [TIES], lambda T, a: a.min(1)),
    case("max(other)", [x(2, 3, values="even"), x(3, values="odd")], lambda T, a, b: T.max(a, b)),
    case("min(other)", [x(2, 3, values="even"), x(3, values="odd")], lambda T, a, b: a.min(b)),
    case("amax", [x(2, 3, 4, values="distinct")], lambda T, a: T.amax(a, (0, 2))),
    case("amin(keepdim)", [x(2, 3, values="distinct")], lambda T, a: a.amin(-1, keepdim=True)),
    case("argmax(dim, keepdim)", [x(2, 3, 4)], lambda T, a: T.argmax(a, dim=-1, keepdim=True)),
    case("argmax()", [x(3, 4)], lambda T, a: a.argmax()),
    case("argmax at ties", [TIES], lambda T, a: a.argmax(1)),
    case("argmin(dim)", [x(3, 4)], lambda T, a: T.argmin(a, 0)),
    case("topk", [x(2, 5, values="distinct")], lambda T, a: T.topk(a, 3)),
    case("topk(largest=False, dim=0)", [x(4, 3, values="distinct")], lambda T, a: a.topk(2, dim=0, largest=False)),
    case("var(dim, unbiased=False, keepdim)", [x(2, 3, 4)], lambda T, a: a.var(dim=-1, keepdim=True, unbiased=False)),
    case("torch.var(dim)", [x(3, 4)], lambda T, a: T.var(a, 1)),
    case("var()", [x(3, 4)], lambda T, a: a.var()),
    case("std(dim)", [x(3, 4)], lambda T, a: a.std(dim=0)),
    case("torch.std(correction=0)", [x(3, 4)], lambda T, a: T.std(a, dim=1, correction=0)),
    # shapes
    case("unsqueeze", [x(2, 3)], lambda T, a: a.unsqueeze(1)),
    case("torch.unsqueeze(-1)", [x(2, 3)], lambda T, a: T.unsqueeze(a, -1)),
    case("squeeze()", [x(2, 1, 3, 1)], lambda T, a: a.squeeze()),
    case("squeeze(dim)", [x(2, 1, 3, 1)], lambda T, a: a.squeeze(1)),
    case("squeeze(dim of size 2)", [x(2, 1, 3)], lambda T, a: a.squeeze(0)),
    case("torch.squeeze(dims)", [x(2, 1, 3, 1)], lambda T, a: T.squeeze(a, (1, 3))),
    case("flatten()", [x(2, 3, 4)], lambda T, a: a.flatten()),
    case("flatten(0, 1)", [x(2, 3, 4)], lambda T, a: a.flatten(0, 1)),
    case("torch.flatten(start_dim=1)", [x(2, 3, 4)], lambda T, a: T.flatten(a, start_dim=1)),
    case("flatten 0-d", [np.array(2.0)], lambda T, a: a.flatten()),
    case("view(-1)", [x(2, 3, 4)], lambda T, a: a.view(-1, 4)),
    case("torch.reshape", [x(2, 3)], lambda T, a: T.reshape(a, (3, -1))),
    case("torch.permute", [x(2, 3, 4)], lambda T, a: T.permute(a, (2, 0, 1))),
    case("torch.transpose", [x(2, 3, 4)], lambda T, a: T.transpose(a, 0, 2)),
    case("contiguous", [x(2, 3, 4)], lambda T, a: a.transpose(0, 1).contiguous().view(3, -1)),
    case("expand", [x(3, 1)], lambda T, a: a.expand(2, -1, 4)),
    case("expand(sizes)", [x(1, 3)], lambda T, a: a.expand((2, 3))),
    case("torch.gather", [x(2, 3), IDS], lambda T, a, i: T.gather(input=a, dim=-1, index=i)),
    case("gather(dim=0), a smaller index", [x(3, 4), IDS[:, :2]], lambda T, a, i: a.gather(0, i)),
    case("clone", [x(2, 3)], lambda T, a: a.clone() * 2),
    case("torch.tril", [x(2, 3, 4)], lambda T, a: T.tril(a)),
    case("triu(diagonal=1)", [x(3, 4)], lambda T, a: a.triu(diagonal=1)),
    case("torch.triu(diagonal=-1)", [x(4, 3)], lambda T, a: T.triu(a, -1)),
    case("tril(diagonal=1)", [x(3, 3)], lambda T, a: a.tril(1)),
    case("torch.cat(dim)", [x(2, 3), x(2, 1)], lambda T, a, b: T.cat([a, b], dim=1)),
    case("torch.concat", [x(2, 3), x(1, 3)], lambda T, a, b: T.concat((a, b))),
    case("torch.stack(dim)", [x(2, 3), x(2, 3)], lambda T, a, b: T.stack([a, b], dim=-1)),
    case("split(dim)", [x(2, 5)], lambda T, a: T.cat(a.split(2, dim=1)[::-1], dim=1)),
    case("torch.split(sizes, dim)", [x(4, 2)], lambda T, a: T.split(a, [1, 3], dim=0)[1]),
    case("torch.nonzero", [IDS], lambda T, i: T.nonzero(i)),
    case("nonzero(as_tuple)", [MASK], lambda T, m: m.nonzero(as_tuple=True)),
    # elementwise
    case("abs", [x(2, 3, values="nonzero")], lambda T, a: a.abs()),
    case("torch.abs at 0", [np.array([-1.0, 0.0, 2.0])], lambda T, a: T.abs(a)),
    case("square", [x(2, 3)], lambda T, a: a.square()),
    case("clamp(min, max)", [x(2, 5, values="even")], lambda T, a: a.clamp(min=-0.3, max=0.5)),
    case("clamp at the bounds", [np.array([-1.0, -0.5, 0.0, 0.5, 1.0])], lambda T, a: T.clamp(a, -0.5, 0.5)),
    case("clamp(min=tensor)", [x(2, 3, values="even"), x(3, values="odd")], lambda T, a, b: a.clamp(min=b)),
    case("torch.clip(max)", [x(2, 3, values="even")], lambda T, a: T.clip(a, max=0.1)),
    case("torch.minimum", [x(2, 3, values="even"), x(3, values="odd")], lambda T, a, b: T.minimum(a, b)),
    case("minimum at ties", [TIES, np.array([[1.0, 0.0, 3.0], [2.0, 5.0, 2.0]])], lambda T, a, b: a.minimum(b)),
    case("torch.maximum", [x(2, 3, values="even"), x(3, values="odd")], lambda T, a, b: T.maximum(a, b)),
    case("torch.pow", [x(2, 3)], lambda T, a: T.pow(a, 3)),
    case("pow", [x(2, 3, values="positive")], lambda T, a: a.pow(0.5)),
    case("torch.exp", [x(2, 3)], lambda T, a: T.exp(a)),
    case("torch.log", [x(2, 3, values="positive")], lambda T, a: T.log(a)),
    case("torch.sqrt", [x(2, 3, values="positive")], lambda T, a: T.sqrt(a)),
    case("torch.tanh", [x(2, 3)], lambda T, a: T.tanh(a)),
    case("torch.sigmoid", [x(2, 3)], lambda T, a: T.sigmoid(a)),
    case("torch.softmax(dim)", [x(2, 3, 4)], lambda T, a: T.softmax(a, dim=1)),
    case("log_softmax(dim)", [x(2, 5)], lambda T, a: a.log_softmax(dim=-1)),
    case("torch.log_softmax", [x(2, 5)], lambda T, a: T.log_softmax(a, 0)),
    case("torch.matmul", [x(2, 3), x(3, 4)], lambda T, a, b: T.matmul(a, b)),
    case("matmul", [x(2, 3), x(3)], lambda T, a, b: a.matmul(b)),
    case("masked_fill", [x(2, 3), MASK], lambda T, a, m: a.masked_fill(m, -T.inf)),
    case("torch.where(cond, x, scalar)", [MASK, x(2, 3)], lambda T, m, a: T.where(m, a, 0.0)),
    case("torch.where(cond, tensor, x)", [x(2, 3)], lambda T, a: T.where(a < 0, T.tensor(float("-inf")), a)),
    case("isnan", [SPECIAL], lambda T, a: T.isnan(a)),
    case("isinf", [SPECIAL], lambda T, a: a.isinf()),
    case("isfinite", [SPECIAL], lambda T, a: T.isfinite(a)),
    # dtypes
    case("float()", [x(2, 3)], lambda T, a: a.float()),
    case("double()", [x(2, 3)], lambda T, a: a.float().double()),
    case("half()", [x(2, 3)], lambda T, a: a.half()),
    case("long()", [x(2, 3)], lambda T, a: (a * 3).long()),
    case("int()", [x(2, 3)], lambda T, a: (a * 3).int()),
    case("bool()", [IDS], lambda T, i: i.bool()),
    case("to(dtype)", [x(2, 3)], lambda T, a: a.to(T.float32)),
    case("to(dtype=)", [IDS], lambda T, i: i.to(dtype=T.float64)),
    case("to(other)", [x(2, 3), IDS], lambda T, a, i: i.to(a)),
    case("to(device, dtype)", [x(2, 3)], lambda T, a: a.to(a.device, T.float32)),
    case("mean over float() of ints", [IDS], lambda T, i: i.float().mean()),
    # creation
    case("zeros", [], lambda T: T.zeros(2, 3)),
    case("ones(dtype)", [], lambda T: T.ones((2, 3), dtype=T.int64)),
    case("full int", [], lambda T: T.full((2,), 7)),
    case("full bool", [], lambda T: T.full((2, 1), True)),
    case("full float", [], lambda T: T.full((2, 2), 1.5)),
    case("eye", [], lambda T: T.eye(3)),
    case("eye(n, m)", [], lambda T: T.eye(2, 3, dtype=T.long)),
    case("arange ints", [], lambda T: T.arange(5)),
    case("arange floats", [], lambda T: T.arange(0, 1, 0.25)),
    case("arange(dtype)", [], lambda T: T.arange(1, 7, 2, dtype=T.float32)),
    case("linspace", [], lambda T: T.linspace(0, 10, 5)),
    case("tensor(dtype=long)", [], lambda T: T.tensor([1, 2], dtype=T.long)),
    case("causal mask", [], lambda T: T.triu(T.ones(4, 4), diagonal=1).bool()),
    case("zeros_like", [x(2, 3)], lambda T, a: T.zeros_like(a)),
    case("ones_like(dtype)", [x(2, 3)], lambda T, a: T.ones_like(a, dtype=T.int32)),
    case("full_like", [IDS], lambda T, i: T.full_like(i, 4)),
    # constants
    case("pi, e, inf, nan", [], lambda T: T.tensor([T.pi, T.e, T.inf, -T.inf])),
]  # fmt: skip


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.fixture
def on_device(device):
    """`device` the default device, where creation functions put new tensors."""
    prev = minigrad.get_default_device()
    minigrad.set_default_device(device)
    yield device
    minigrad.set_default_device(prev)


@pytest.mark.usefixtures("torch_float64")
@pytest.mark.parametrize("inputs, fn", CASES)
def test_matches_torch(inputs, fn, on_device):
    device = on_device
    floats = [a.dtype.kind == "f" for a in inputs]
    ours = [minigrad.tensor(a, device=device, requires_grad=f) for a, f in zip(inputs, floats)]
    theirs = [torch.tensor(a, requires_grad=f) for a, f in zip(inputs, floats)]
    out, expected = fn(minigrad, *ours), fn(torch, *theirs)
    assert isinstance(out, tuple) == isinstance(expected, tuple)
    if isinstance(expected, tuple) and hasattr(expected, "_fields"):  # torch.return_types: named fields
        assert [out.values, out.indices] == list(out)
    for o, e in zip(_outputs(out), _outputs(expected)):
        assert (o.shape, str(o.dtype)) == (tuple(e.shape), str(e.dtype).removeprefix("torch."))
        np.testing.assert_allclose(o.numpy(), e.detach().numpy(), rtol=1e-10, atol=1e-12)
    o, e = _outputs(out)[0], _outputs(expected)[0]
    if e.requires_grad:
        cotangent = np.random.default_rng(0).standard_normal(o.shape)
        o.backward(minigrad.tensor(cotangent, device=o.device, dtype=o.dtype))
        e.backward(torch.tensor(cotangent, dtype=e.dtype))
        for a, b, f in zip(ours, theirs, floats):
            if f:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---- PyTorch's keywords beside NumPy's ---------------------------------------------------

KEYWORDS = {  # name: (call with PyTorch's keywords, the same with NumPy's, both at once)
    "sum": (lambda t: t.sum(dim=1, keepdim=True), lambda t: t.sum(axis=1, keepdims=True), lambda t: t.sum(dim=1, axis=1)),
    "mean": (lambda t: minigrad.mean(t, dim=0), lambda t: minigrad.mean(t, axis=0),
             lambda t: t.mean(keepdim=True, keepdims=True)),
    "amax": (lambda t: t.amax(dim=-1), lambda t: t.amax(axis=-1), lambda t: minigrad.amax(t, 0, axis=0)),
    "max": (lambda t: t.max(dim=1).values, lambda t: t.max(axis=1).values, lambda t: t.max(dim=1, axis=1)),
    "min": (lambda t: t.min(dim=1, keepdim=True).indices, lambda t: t.min(axis=1, keepdims=True).indices,
            lambda t: t.min(1, True, keepdims=True)),
    "var": (lambda t: t.var(dim=0, keepdim=True), lambda t: t.var(axis=0, keepdims=True), lambda t: t.var(0, axis=0)),
    "std": (lambda t: minigrad.std(t, dim=1), lambda t: minigrad.std(t, axis=1), lambda t: t.std(dim=1, axis=1)),
    "argmax": (lambda t: t.argmax(dim=1), lambda t: t.argmax(axis=1), lambda t: t.argmax(dim=1, axis=1)),
    "argmin": (lambda t: minigrad.argmin(t, dim=0, keepdim=True), lambda t: minigrad.argmin(t, axis=0, keepdims=True),
               lambda t: t.argmin(keepdim=True, keepdims=True)),
    "softmax": (lambda t: t.softmax(dim=0), lambda t: t.softmax(axis=0), lambda t: t.softmax(dim=0, axis=0)),
    "log_softmax": (lambda t: minigrad.log_softmax(t, dim=0), lambda t: minigrad.log_softmax(t, axis=0),
                    lambda t: t.log_softmax(dim=0, axis=0)),
    "split": (lambda t: t.split(1, dim=1)[0], lambda t: t.split(1, axis=1)[0], lambda t: t.split(1, dim=1, axis=1)),
    "cat": (lambda t: minigrad.cat([t, t], dim=1), lambda t: minigrad.cat([t, t], axis=1),
            lambda t: minigrad.cat([t, t], dim=1, axis=1)),
    "stack": (lambda t: minigrad.stack([t, t], dim=1), lambda t: minigrad.stack([t, t], axis=1),
              lambda t: minigrad.stack([t, t], dim=1, axis=1)),
}


@pytest.mark.parametrize("name", KEYWORDS)
def test_pytorch_and_numpy_keywords_agree_and_not_both(name):
    torch_style, numpy_style, both = KEYWORDS[name]
    t = minigrad.tensor(x(3, 4))
    a, b = torch_style(t), numpy_style(t)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(TypeError, match=r"got both (dim|keepdim)=.* and (axis|keepdims)=.*; pass one"):
        both(t)


def test_positional_arguments_follow_pytorch():
    t = minigrad.tensor(x(3, 4))
    assert t.sum(1, True).shape == (3, 1)
    assert t.var(1, False, True).shape == (3, 1)  # var(dim, unbiased, keepdim)
    np.testing.assert_allclose(t.var(1, False).numpy(), np.var(t.numpy(), axis=1))
    with pytest.raises(TypeError, match="var: got both unbiased=True and correction=0"):
        t.var(1, True, correction=0)


def test_mean_of_integers_raises_as_pytorch():
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype\. Input dtype must be either "
                                           r"a floating point or complex dtype\. Got: Long"):
        minigrad.arange(3).mean()
    with pytest.raises(RuntimeError, match="Got: Bool"):
        (minigrad.arange(3) > 0).mean()
    assert minigrad.arange(3).mean(dtype=minigrad.float64).item() == 1.0


# ---- Python numbers, sizes, NumPy -----------------------------------------------------------


def test_bool_of_one_element_reads_the_element():
    """The book's bug: without __bool__, Python asked __len__, and every (1, 1) tensor was True."""
    assert not bool(minigrad.tensor([[False]]))
    assert bool(minigrad.tensor(True)) and bool(minigrad.tensor([2])) and not bool(minigrad.tensor(0.0))
    idx_next, eos_id = minigrad.tensor([[17]]), 50256
    stopped = False
    if idx_next == eos_id:  # the book's sampling loop
        stopped = True
    assert not stopped
    assert minigrad.tensor([[eos_id]]) == eos_id


def test_bool_of_several_or_no_elements_is_ambiguous():
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(minigrad.tensor([True, False]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with no values is ambiguous"):
        bool(minigrad.zeros(0))


def test_float_int_and_index():
    assert float(minigrad.tensor([[2.5]])) == 2.5 and int(minigrad.tensor([2.7])) == 2
    assert [10, 20, 30][minigrad.tensor(1)] == 20 and list(range(minigrad.tensor([3]))) == [0, 1, 2]
    assert operator.index(minigrad.tensor(True)) == 1
    for not_an_index in (minigrad.tensor(1.0), minigrad.tensor([1, 2])):
        with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
            operator.index(not_an_index)
    with pytest.raises(ValueError, match="one element"):
        float(minigrad.tensor([1.0, 2.0]))


def test_len_and_iteration():
    t = minigrad.tensor(x(3, 2), requires_grad=True)
    rows = list(t)
    assert len(t) == 3 and [r.shape for r in rows] == [(2,)] * 3
    minigrad.stack(rows).sum().backward()  # the rows are in the graph
    np.testing.assert_array_equal(t.grad.numpy(), np.ones((3, 2)))
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(minigrad.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(minigrad.tensor(1.0))


def test_size_dim_numel():
    t = minigrad.zeros(2, 3, 4)
    assert isinstance(t.shape, minigrad.Size) and isinstance(t.size(), tuple)
    assert t.size() == (2, 3, 4) and t.size(-1) == 4 and t.size(0) == 2
    assert t.dim() == 3 and t.numel() == 24 == minigrad.numel(t)
    assert t.is_floating_point() and not minigrad.is_floating_point(minigrad.arange(3))


def test_tolist_item_and_numpy_arrays():
    t = minigrad.tensor([[1.0, 2.0]], dtype=minigrad.float64)
    assert t.tolist() == [[1.0, 2.0]]
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64
    np.testing.assert_array_equal(a, [[1.0, 2.0]])
    a[0, 0] = 5.0  # a copy: the tensor keeps its value
    assert t[0, 0].item() == 1.0
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    shared = np.asarray(t, copy=False)  # NumPy asks for no copy: the same memory
    assert np.shares_memory(shared, t.data)
    assert isinstance(np.ones(2) + minigrad.tensor([1.0, 2.0]), minigrad.Tensor)  # Tensor.__radd__, as PyTorch


def test_a_gpu_tensor_is_not_an_implicit_numpy_array(gpu_device):
    t = minigrad.tensor([1.0], device=gpu_device)
    with pytest.raises(TypeError, match=f"can't convert {gpu_device} device type tensor to numpy. Use Tensor.cpu()"):
        np.asarray(t)
    np.testing.assert_array_equal(np.asarray(t.cpu()), [1.0])


# ---- max, min and topk along a dim --------------------------------------------------------


def test_max_with_dim_is_a_named_pair():
    t = minigrad.tensor(TIES)
    result = t.max(dim=1)
    values, indices = result
    assert type(result).__name__ == "max" and result._fields == ("values", "indices")
    assert result.values is values and result.indices is indices and result[1] is indices
    np.testing.assert_array_equal(indices.numpy(), [1, 0])  # the first of ties, as PyTorch
    assert indices.dtype == minigrad.int64
    assert type(minigrad.min(t, 0)).__name__ == "min" and type(t.topk(2)).__name__ == "topk"
    assert t.max().shape == ()  # no dim: the value alone
    with pytest.raises(TypeError, match="max: dim must be an int"):
        t.max(dim=(0, 1))


def test_topk_errors():
    t = minigrad.tensor(x(2, 3))
    with pytest.raises(ValueError, match="topk: k=4 is out of range for dim -1 of size 3"):
        t.topk(4)
    assert t.topk(0).values.shape == (2, 0)


# ---- gradients of the new ops, by finite differences ------------------------------------------

GRADCHECKS = {  # name: (function of the tensor(s), input shapes, values: one kind, or one per input)
    "gather": (lambda a: a.gather(1, minigrad.tensor(IDS, device=a.device)), [(2, 3)], "normal"),
    "gather(dim=0)": (lambda a: minigrad.gather(a, 0, minigrad.tensor(IDS[:, :2], device=a.device)), [(3, 4)], "normal"),
    "max(dim)": (lambda a: a.max(dim=0).values, [(3, 4)], "distinct"),
    "min(dim, keepdim)": (lambda a: a.min(1, keepdim=True).values, [(3, 4)], "distinct"),
    "topk": (lambda a: a.topk(2, dim=0).values, [(4, 3)], "distinct"),
    "clamp": (lambda a: a.clamp(-0.3, 0.5), [(3, 4)], "even"),
    "clamp(min=tensor)": (lambda a, b: a.clamp(min=b), [(3, 4), (4,)], ["even", "odd"]),
    "abs": (lambda a: a.abs(), [(3, 4)], "nonzero"),
    "minimum": (lambda a, b: minigrad.minimum(a, b), [(3, 4), (3, 1)], ["even", "odd"]),
    "tril": (lambda a: a.tril(-1), [(2, 3, 3)], "normal"),
    "triu": (lambda a: minigrad.triu(a, 1), [(3, 4)], "normal"),
    "std": (lambda a: a.std(dim=1, keepdim=True), [(3, 4)], "normal"),
    "expand": (lambda a: a.expand(2, 3, -1), [(3, 1)], "normal"),
    "clone": (lambda a: a.clone(), [(3, 4)], "normal"),
    "contiguous": (lambda a: a.T.contiguous(), [(3, 4)], "normal"),
    "squeeze, unsqueeze, flatten": (lambda a: a.unsqueeze(0).squeeze(2).flatten(1), [(2, 1, 3)], "normal"),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_gradcheck(name, device):
    fn, shapes, values = GRADCHECKS[name]
    kinds = values if isinstance(values, list) else [values] * len(shapes)
    xs = [minigrad.tensor(make_array(i + 7, s, v), device=device, requires_grad=True)
          for i, (s, v) in enumerate(zip(shapes, kinds))]
    assert minigrad.gradcheck(fn, xs)


def test_gather_errors():
    t = minigrad.tensor(x(2, 3))
    with pytest.raises(TypeError, match="gather: index must be an integer Tensor"):
        t.gather(1, minigrad.tensor([[0.0]]))
    with pytest.raises(ValueError, match=r"gather: index of shape \(2,\) does not fit input of shape \(2, 3\)"):
        t.gather(1, minigrad.tensor([0, 1]))
    with pytest.raises(IndexError, match="gather: index 3 is out of bounds for dim 1 with size 3"):
        t.gather(1, minigrad.tensor([[0], [3]]))


def test_contiguous_and_clone():
    t = minigrad.tensor(x(2, 3))
    assert t.contiguous() is t
    c = t.T.contiguous()
    assert c is not t and c.data.flags.c_contiguous
    k = t.clone()
    assert k is not t and not np.shares_memory(k.data, t.data)


# ---- dtypes and devices -------------------------------------------------------------------


def test_dtypes_are_numpy_dtypes_with_pytorchs_names():
    assert minigrad.float32 == minigrad.float == np.float32 and minigrad.float64 == minigrad.double == np.float64
    assert minigrad.float16 == minigrad.half and minigrad.int64 == minigrad.long and minigrad.int32 == minigrad.int
    assert minigrad.int16 == minigrad.short and minigrad.bool == np.bool_ and minigrad.uint8 == np.uint8
    assert minigrad.tensor([1.0]).float().dtype == minigrad.float32 and minigrad.tensor([1]).dtype == minigrad.long
    with pytest.raises(AttributeError, match="NumPy has no bfloat16"):
        _ = minigrad.bfloat16
    assert (minigrad.pi, minigrad.e, minigrad.inf) == (np.pi, np.e, np.inf) and np.isnan(minigrad.nan)


def test_device_objects():
    d = minigrad.device("cuda:0")
    assert (d.type, d.index, d) == ("cuda", 0, "cuda:0")
    assert minigrad.device("cuda", 1) == "cuda:1" and minigrad.device("cpu").index is None
    assert minigrad.device(minigrad.device("cpu")) == "cpu" and isinstance(d, str)
    with pytest.raises(ValueError, match="device: invalid device 'cuda:x'"):
        minigrad.device("cuda:x")
    t = minigrad.tensor([1.0], device=minigrad.device("cpu"))
    assert t.device == "cpu" and isinstance(t.device, minigrad.device) and t.device.type == "cpu"
    assert t.to(minigrad.device("cpu:0")) is t and t.to("cpu") is t and t.cpu() is t and not t.is_cuda
    assert minigrad.zeros(2, device=minigrad.device("cpu")).device == "cpu"
    model = minigrad.nn.Linear(2, 3).to(minigrad.device("cpu"))
    assert model.weight.device == "cpu"


def test_to_moves_and_casts(gpu_device):
    t = minigrad.tensor(x(2, 3), requires_grad=True)
    moved = t.to(minigrad.device(gpu_device))
    assert moved.device == gpu_device and not moved.is_leaf and moved.requires_grad  # in the graph, as PyTorch
    both = t.to(gpu_device, minigrad.float32)
    assert (both.device, both.dtype) == (gpu_device, np.float32)
    like = minigrad.tensor([1], device=gpu_device)
    assert (t.to(like).device, t.to(like).dtype) == (gpu_device, np.int64)
    assert t.to(device=gpu_device, dtype=minigrad.float64).device == gpu_device
    assert t.to(gpu_device + ":0").device == gpu_device  # the index picks nothing: one device per process
    assert t.to(minigrad.float64) is t and t.to(minigrad.float64, copy=True) is not t


def test_dtype_change_keeps_the_graph():
    t = minigrad.tensor(x(2, 3), requires_grad=True)
    t.to(minigrad.float32).sum().backward()
    assert t.grad.dtype == np.float64 and np.all(t.grad.numpy() == 1.0)
    assert not t.long().requires_grad  # integers carry no gradient


def test_cuda_and_mps_questions():
    assert minigrad.cuda.is_available() == ("cuda" in minigrad.available_devices())
    assert minigrad.cuda.device_count() == (0 if not minigrad.cuda.is_available() else minigrad.cuda.device_count())
    assert minigrad.backends.mps.is_available() is False
    if not minigrad.cuda.is_available():
        assert minigrad.cuda.device_count() == 0
        with pytest.raises(ValueError, match="unknown or unavailable device 'cuda'.*CuPy"):
            minigrad.tensor([1.0]).cuda()
        with pytest.raises(ValueError, match="unknown or unavailable device 'cuda:0'"):
            minigrad.zeros(1, device=minigrad.device("cuda:0"))


def test_inference_mode_records_no_graph():
    t = minigrad.tensor([1.0], requires_grad=True)
    with minigrad.inference_mode():
        assert not (t * 2).requires_grad


# ---- random numbers ----------------------------------------------------------------------


def test_generator_repeats_its_draws_apart_from_the_global_one():
    g = minigrad.Generator().manual_seed(123)
    assert g.initial_seed() == 123 and isinstance(g.numpy_generator(), np.random.Generator)
    first = minigrad.randperm(10, generator=g)
    minigrad.randn(5)  # the global generator moves; g does not care
    again = minigrad.randperm(10, generator=minigrad.Generator().manual_seed(123))
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert first.dtype == np.int64 and sorted(first.tolist()) == list(range(10))
    assert minigrad.Generator().initial_seed() == torch.Generator().initial_seed()
    with pytest.raises(ValueError, match="Generator: only device='cpu' is supported"):
        minigrad.Generator("fakegpu")


def test_random_tensors(device):
    g = minigrad.Generator().manual_seed(0)
    r = minigrad.rand(2, 3, device=device)
    assert (r.shape, r.dtype, r.device) == ((2, 3), np.float64, device) and 0 <= r.numpy().min() < r.numpy().max() < 1
    i = minigrad.randint(3, 7, (1000,), device=device)
    assert i.dtype == np.int64 and set(i.tolist()) == {3, 4, 5, 6}
    assert set(minigrad.randint(2, (100,)).tolist()) == {0, 1} == set(minigrad.randint(high=2, size=(100,)).tolist())
    assert minigrad.randint(5, size=(2, 2)).shape == (2, 2)
    np.testing.assert_array_equal(minigrad.rand(4, generator=minigrad.Generator().manual_seed(0)).numpy(),
                                  minigrad.rand(4, generator=g).numpy())
    assert minigrad.randn_like(r).shape == r.shape and minigrad.rand_like(r).device == device
    assert minigrad.empty(2, 3, device=device).shape == (2, 3) and minigrad.empty_like(r).dtype == r.dtype


def test_multinomial_samples_the_distribution(device):
    probs = minigrad.tensor([0.2, 0.0, 0.8], device=device)
    draws = minigrad.multinomial(probs, 2000, replacement=True)
    assert (draws.shape, draws.dtype, draws.device) == ((2000,), np.int64, device)
    counts = np.bincount(draws.numpy(), minlength=3) / 2000
    assert counts[1] == 0 and abs(counts[0] - 0.2) < 0.04  # 4 standard deviations
    rows = minigrad.tensor([[1.0, 2.0, 0.0, 3.0], [0.0, 0.0, 5.0, 1.0]], device=device)  # weights, not summing to 1
    one = minigrad.multinomial(rows, num_samples=1)  # the book's call
    assert one.shape == (2, 1) and one[1, 0].item() in (2, 3)
    every = minigrad.multinomial(rows[:1], 3)  # without replacement: each non-zero id once
    assert sorted(every.tolist()[0]) == [0, 1, 3]
    np.testing.assert_array_equal(rows.numpy()[0], [1.0, 2.0, 0.0, 3.0])  # the input is untouched


def test_multinomial_is_seeded():
    p = minigrad.softmax(minigrad.tensor(x(2, 5)), dim=-1)
    a = minigrad.multinomial(p, 3, generator=minigrad.Generator().manual_seed(7))
    b = minigrad.multinomial(p, 3, generator=minigrad.Generator().manual_seed(7))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    minigrad.manual_seed(3)
    c = minigrad.multinomial(p, 3)
    minigrad.manual_seed(3)
    np.testing.assert_array_equal(c.numpy(), minigrad.multinomial(p, 3).numpy())


@pytest.mark.parametrize("probs, n, replacement, message", [
    ([0.5, -0.1, 0.6], 1, True, "finite, non-negative weights with a positive sum"),
    ([0.0, 0.0], 1, True, "positive sum"),
    ([0.5, 0.0, 0.5], 3, False, "3 of them above 0"),
    ([0.5, 0.5], 3, False, "cannot draw 3 samples from 2 categories without replacement"),
    ([[[0.5]]], 1, True, r"expected floating weights of shape \(V,\) or \(B, V\)"),
])  # fmt: skip
def test_multinomial_errors(probs, n, replacement, message):
    with pytest.raises(ValueError, match=message):
        minigrad.multinomial(minigrad.tensor(probs), n, replacement)


def test_to_another_device_is_in_the_graph_as_pytorch():
    """x.to(device) of a tensor that requires grad is a node whose backward moves the gradient back
    (PyTorch's ToCopyBackward): before, it was a new leaf and x never got a gradient, silently."""
    from minigrad.testing import fakegpu  # noqa: F401  (registers the strict test device)

    x = minigrad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.to("fakegpu")
    assert y.device == "fakegpu" and y._ctx is not None
    dout = np.array([0.5, -1.5, 2.0], np.float32)
    (y * y * minigrad.tensor(dout, device="fakegpu")).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * dout)
    with minigrad.no_grad():  # outside the graph: a plain move, a leaf
        assert x.to("fakegpu")._ctx is None
