"""Type promotion, as PyTorch: the result dtype of mixed-dtype ops, against torch, value and dtype.

The rule (minigrad.tensor.result_type): bool < integer < floating, the higher category wins; within
a category a tensor with dims beats a 0-d tensor, which beats a Python number; a Python float stands
for the default float dtype. These tests run with float32 as the default (float64 where they say).
"""
import numpy as np
import pytest
from helpers import need
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad.tensor import can_cast, promote_types, result_type

torch = need("torch")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
VALUES = {"b": [True, False, True], "u": [1, 2, 7], "i": [3, -2, 7], "f": [1.5, -2.25, 3.0]}


def T(dtype, dims=True, values=None):
    """An operand spec: a tensor of `dtype` with dims (3,), or 0-d; VALUES unless given."""
    return ("tensor", dtype, dims, values)


def th_dtype(name):
    return getattr(torch, name)


def make(spec, lib, device="cpu"):
    """The operand in minigrad ("mg") or torch ("th"); Python numbers stay numbers."""
    if not isinstance(spec, tuple):
        return spec
    _, dtype, dims, values = spec
    values = values or VALUES[np.dtype(dtype).kind]
    values = values if dims else values[0]
    if lib == "mg":
        return minigrad.tensor(values, dtype=dtype, device=device)
    return torch.tensor(values, dtype=th_dtype(dtype))


def same(mg_out, th_out):
    """Same dtype, shape and values."""
    assert str(mg_out.dtype) == str(th_out.dtype).removeprefix("torch."), (mg_out.dtype, th_out.dtype)
    assert mg_out.shape == tuple(th_out.shape)
    assert not isinstance(mg_out.data, np.generic)  # an array, never a NumPy scalar
    np.testing.assert_allclose(mg_out.numpy().astype(np.float64), th_out.numpy().astype(np.float64), rtol=1e-3)


def case(name, a, b, op, th_op=None):
    return pytest.param(a, b, op, th_op or op, id=name)


KEEP = [True, False, True]  # a mask for where and masked_fill
add, sub, mul, div = (lambda x, y: x + y), (lambda x, y: x - y), (lambda x, y: x * y), (lambda x, y: x / y)
CASES = [
    # true division of integers: the default float dtype
    case("int / int", T("int64"), T("int64"), div),
    case("int / 2", T("int64"), 2, div),
    case("7 / int", 7, T("int64"), div),
    case("bool / bool", T("bool", values=[True, True, True]), T("bool", values=[True, True, True]), div),
    case("int / 0-d float64", T("int64"), T("float64", dims=False), div),
    # floats of two widths
    case("float32 + float64", T("float32"), T("float64"), add),
    case("float64 * float32", T("float64"), T("float32"), mul),
    case("float32 + 0-d float64", T("float32"), T("float64", dims=False), add),
    case("float16 + 0-d float64", T("float16"), T("float64", dims=False), add),
    case("0-d float64 + 0-d float32", T("float64", dims=False), T("float32", dims=False), add),
    case("float16 + 2.5", T("float16"), 2.5, add),
    case("float32 + np.float64", T("float32"), np.float64(2.5), add),
    # integers and Python numbers
    case("int + 2.5", T("int64"), 2.5, add),
    case("int32 + 5", T("int32"), 5, add),
    case("0-d int + 2.5", T("int64", dims=False), 2.5, mul),
    case("int8 - 0-d int64", T("int8"), T("int64", dims=False), sub),
    case("uint8 + int8", T("uint8"), T("int8"), add),
    case("int32 * int64", T("int32"), T("int64"), mul),
    case("int + 0-d float16", T("int64"), T("float16", dims=False), add),
    # bools
    case("bool + int", T("bool"), 3, add),
    case("bool + 0-d int32", T("bool"), T("int32", dims=False), add),
    case("bool + True", T("bool"), True, add),
    case("bool * bool", T("bool"), T("bool"), mul),
    case("bool * 2.5", T("bool"), 2.5, mul),
    case("int32 + bool", T("int32"), T("bool"), add),
    # powers: int ** int stays int, a float exponent gives the default float dtype
    case("int ** 2", T("int64"), 2, lambda x, y: x**y),
    case("int ** 0.5", T("int64", values=[4, 2, 9]), 0.5, lambda x, y: x**y),
    case("bool ** 2", T("bool"), 2, lambda x, y: x**y),
    case("float16 ** 2.0", T("float16"), 2.0, lambda x, y: x**y),
    # maximum, where, masked_fill
    case("maximum int, float32", T("int64"), T("float32"), F.maximum, torch.maximum),
    case("maximum float64, 0-d float32", T("float64"), T("float32", dims=False), F.maximum, torch.maximum),
    case("where int, 0.5", T("int64"), 0.5, lambda x, y: F.where(minigrad.tensor(KEEP, device=x.device), x, y),
         lambda x, y: torch.where(torch.tensor(KEEP), x, y)),
    case("masked_fill: int", T("int64"), 0.5, lambda x, v: x.masked_fill(minigrad.tensor(KEEP, device=x.device), v),
         lambda x, y: x.masked_fill(torch.tensor(KEEP), y)),
    # comparisons: bool results, compared in the promoted dtype
    case("int == 1.5", T("int64"), 1.5, lambda x, y: x == y),
    case("0-d int == 3", T("int64", dims=False), 3, lambda x, y: x == y),
    case("int < float32", T("int64"), T("float32"), lambda x, y: x < y),
    case("float16 >= 0-d float64", T("float16"), T("float64", dims=False), lambda x, y: x >= y),
    # floor division and remainder: Python's rounding and signs
    case("int // int", T("int64"), T("int64"), lambda x, y: x // y),
    case("int // -2", T("int64"), -2, lambda x, y: x // y),
    case("int // 2.5", T("int64"), 2.5, lambda x, y: x // y),
    case("float32 // float64", T("float32"), T("float64"), lambda x, y: x // y),
    case("7 // int", 7, T("int64"), lambda x, y: x // y),
    case("int % -2", T("int64"), -2, lambda x, y: x % y),
    case("float % -2.5", T("float32"), -2.5, lambda x, y: x % y),
    case("7.5 % int", 7.5, T("int64"), lambda x, y: x % y),
    case("int32 % 0-d int64", T("int32"), T("int64", dims=False), lambda x, y: x % y),
]


@pytest.mark.parametrize("a, b, op, th_op", CASES)
def test_binary_ops_give_pytorchs_result_dtype_and_values(device, a, b, op, th_op):
    same(op(make(a, "mg", device), make(b, "mg", device)), th_op(make(a, "th"), make(b, "th")))


UNARY = {  # name: minigrad op, torch op
    "exp": (lambda x: x.exp(), torch.exp),
    "log": (lambda x: x.log(), torch.log),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "erf": (F.erf, torch.erf),
    "relu stays int": (lambda x: x.relu(), torch.relu),
    "neg stays int": (lambda x: -x, torch.neg),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_float_functions_of_integers_give_the_default_float_dtype(device, name, dtype):
    if dtype == "bool" and name in ("relu stays int", "neg stays int"):
        pytest.skip("PyTorch refuses these for bool")
    ours, theirs = UNARY[name]
    values = [1, 4, 9] if dtype != "bool" else [True, True]
    same(ours(minigrad.tensor(values, dtype=dtype, device=device)), theirs(torch.tensor(values, dtype=th_dtype(dtype))))


def test_the_default_dtype_decides_what_python_floats_and_int_division_give():
    prev, prev_th = minigrad.get_default_dtype(), torch.get_default_dtype()
    minigrad.set_default_dtype(np.float64)
    torch.set_default_dtype(torch.float64)
    try:
        ints = [1, 2, 3]
        same(minigrad.tensor(ints) / 2, torch.tensor(ints) / 2)
        same(minigrad.tensor(ints) + 0.5, torch.tensor(ints) + 0.5)
        same(minigrad.tensor(ints).exp(), torch.tensor(ints).exp())
        same(minigrad.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
        same(minigrad.ones(2, dtype=np.float32) + 0.5, torch.ones(2, dtype=torch.float32) + 0.5)  # the tensor's float32
    finally:
        minigrad.set_default_dtype(prev)
        torch.set_default_dtype(prev_th)


@pytest.mark.parametrize("data", [
    pytest.param(np.array([1.5, 2.5]), id="float64 array stays float64"),
    pytest.param(np.array([1.5, 2.5], dtype=np.float16), id="float16 array stays"),
    pytest.param(np.array([1, 2], dtype=np.int32), id="int32 array stays"),
    pytest.param(np.array([True]), id="bool array stays"),
    pytest.param(np.float64(1.5), id="NumPy float64 scalar stays float64"),
    pytest.param([1.5, 2], id="list of floats: the default dtype"),
    pytest.param(1.5, id="Python float: the default dtype"),
    pytest.param([1, 2], id="Python ints: int64"),
    pytest.param([True, False], id="Python bools: bool"),
])
def test_the_constructor_keeps_an_arrays_dtype_and_gives_python_data_pytorchs(device, data):
    ours = minigrad.tensor(data, device=device)
    same(ours, torch.tensor(data))
    same(minigrad.Tensor(ours), torch.tensor(data))  # a Tensor keeps its dtype
    same(minigrad.tensor(data, dtype=np.float16, device=device), torch.tensor(data, dtype=torch.float16))  # dtype wins


def test_comparisons_give_0d_bool_tensors_that_print_and_convert():
    eq = minigrad.tensor(3) == 3
    assert type(eq.data) is np.ndarray and eq.shape == () and eq.dtype == np.bool_
    assert bool(eq) is True and "True" in repr(eq)
    assert bool(minigrad.tensor(3.0) < 2) is False


@pytest.mark.parametrize("small_dims", [True, False], ids=["dims", "0-d"])
def test_a_float32_input_mixed_with_float64_gets_a_float32_gradient_equal_to_torchs(small_dims):
    rng = np.random.default_rng(0)
    a32, b64 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3 if small_dims else ())
    cot = rng.standard_normal(3)  # a random cotangent: loss = sum(out * cot)

    def run(make_tensor, sigmoid):
        a, b = make_tensor(a32, requires_grad=True), make_tensor(b64, requires_grad=True)
        out = sigmoid(a * b) + a / 2.0
        (out * make_tensor(cot)).sum().backward()
        return out, a.grad, b.grad

    ours = run(minigrad.tensor, lambda t: t.sigmoid())
    theirs = run(torch.tensor, torch.sigmoid)
    assert ours[1].dtype == np.float32 and ours[2].dtype == np.float64
    for o, t in zip(ours, theirs):
        assert str(o.dtype) == str(t.dtype).removeprefix("torch.")
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-5)


def test_remainder_has_pytorchs_gradient_and_floor_division_none(float64):
    a = minigrad.tensor([5.3, -5.3, 2.2], requires_grad=True)
    b = minigrad.tensor([3.0, 3.0, -0.9], requires_grad=True)  # a / b off the integers, where q jumps
    assert minigrad.gradcheck(lambda x, y: x % y, [a, b])
    a.grad = b.grad = None
    ta, tb = torch.tensor(a.numpy(), requires_grad=True), torch.tensor(b.numpy(), requires_grad=True)
    (a % b).sum().backward()
    (ta % tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy())
    assert not (a // b).requires_grad and not (a // 2).requires_grad  # piecewise constant: no gradient


@pytest.mark.parametrize("fn, error, match", [
    (lambda: minigrad.tensor([1, 2]) // 0, ZeroDivisionError, "floor_divide: integer division by zero"),
    (lambda: minigrad.tensor([1, 2]) % minigrad.tensor([1, 0]), ZeroDivisionError, "remainder: integer division by"),
    (lambda: minigrad.tensor([True]) // minigrad.tensor([True]), TypeError, "floor_divide: not supported for bool"),
    (lambda: minigrad.tensor([1, 2]) ** -1, ValueError, "Integers to negative integer powers are not allowed"),
    (lambda: F.gelu(minigrad.tensor([1, 2])), TypeError, "gelu: needs a floating tensor, got int64"),
    (lambda: minigrad.ones(2, 2) @ minigrad.ones(2, 2, dtype=np.float64), TypeError,
     "matmul: expected both operands to have the same dtype, got float32 and float64"),
    (lambda: minigrad.ones(2, 2) @ minigrad.tensor([[1, 2], [3, 4]]), TypeError, "matmul: .* float32 and int64"),
])
def test_where_pytorch_raises_minigrad_raises(fn, error, match):
    with pytest.raises(error, match=match):
        fn()


RANKS = ["dd", "d0", "0d", "00", "ds", "0s", "sd"]  # per operand: d = dims, 0 = 0-d, s = a Python number


@given(a=st.sampled_from(DTYPES), b=st.sampled_from(DTYPES), ranks=st.sampled_from(RANKS))
def test_result_type_is_torchs_for_every_pair_of_dtypes_and_ranks(a, b, ranks):
    """ranks: d = a tensor with dims, 0 = a 0-d tensor, s = a Python number of b's (or a's) category."""
    def operand(dtype, rank, lib):
        if rank == "s":
            return {"b": True, "u": 2, "i": 2, "f": 2.5}[np.dtype(dtype).kind]
        return make(T(dtype, dims=rank == "d"), lib)

    ours = result_type(operand(a, ranks[0], "mg"), operand(b, ranks[1], "mg"))
    theirs = torch.result_type(operand(a, ranks[0], "th"), operand(b, ranks[1], "th"))
    assert str(ours) == str(theirs).removeprefix("torch.")
    assert str(promote_types(a, b)) == str(torch.promote_types(th_dtype(a), th_dtype(b))).removeprefix("torch.")


@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("b", DTYPES)
def test_can_cast_is_torchs(a, b):
    assert can_cast(a, b) == torch.can_cast(th_dtype(a), th_dtype(b))


def test_the_same_dtype_takes_the_fast_path_and_a_number_no_cast():
    x = minigrad.ones(3, requires_grad=True)
    y = x * 2.0 + 1  # a number joins in x's dtype: no Cast in the graph
    assert y.dtype == np.float32 and type(y._ctx).__name__ == "Add" and type(y._ctx.edges[0]).__name__ == "Mul"
