"""Tensor: an array (NumPy or CuPy, see backend.py) plus what autograd needs.

    data           the backend array
    requires_grad  whether gradients flow to this tensor
    grad           a Tensor of the same shape, dtype and device, summed over backward calls
    _ctx           the Function that produced this tensor (None for leaves)

Operators and methods are thin wrappers over the ops in minigrad/ops/, where
every forward sits beside its hand-written backward.

Read next: creation.py, then autograd.py (the graph).
"""
from __future__ import annotations

import weakref
from typing import Any, Iterator, Sequence

import numpy as np

from minigrad import autograd
from minigrad.backend import (
    backend_of_array,
    get_backend,
    get_default_device,
    get_default_dtype,
    to_device,
)

class Size(tuple):
    """A tensor's shape, as torch.Size: a tuple of ints (t.shape, t.size())."""


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        device: str | None = None,
    ) -> None:
        """From a Python number or list, a NumPy/CuPy array (or NumPy scalar) or another Tensor.

        As torch.tensor: Python floats take the default dtype (float32 unless set_default_dtype),
        Python ints int64 and bools bool; an array, a NumPy scalar or a Tensor keeps its dtype
        (a float64 array stays float64). `dtype`, if given, wins. An array stays on its device
        unless `device` is given; lists and numbers go to the default device.
        """
        if isinstance(data, Tensor):
            data = data.data
        try:
            src = backend_of_array(data)
        except TypeError:
            src = None
        if src is None:  # Python data: build it on the host, then move it
            arr = np.asarray(data)
            if arr.dtype == object:
                raise TypeError(f"cannot make a Tensor from {type(data).__name__} (ragged or non-numeric data)")
            if arr.dtype.kind == "f" and dtype is None and not isinstance(data, np.generic):
                arr = arr.astype(get_default_dtype(), copy=False)  # NumPy made Python floats float64
            data = to_device(arr, device or get_default_device())
        else:
            given = data
            if type(data) is not src.array_type:  # a subclass such as np.memmap: a plain array
                data = src.xp.asarray(data)
            if device is not None:
                data = to_device(data, device)
        if dtype is not None:
            data = data.astype(np.dtype(dtype), copy=False)
        elif data.dtype.kind not in "fiub":
            raise TypeError(f"unsupported dtype {data.dtype} for a Tensor")
        if src is not None and data is given:
            data = data.copy()  # like torch.tensor: never share the caller's array
        self.data = data
        self.grad: Tensor | None = None
        self._ctx: autograd.Function | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    @classmethod
    def _make(cls, data: Any, requires_grad: bool) -> Tensor:
        """Fast constructor for op outputs: no checks, no conversion."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = None
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, this one is {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    # ---- facts --------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend_of_array(self.data).device

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    def size(self, dim: int | None = None) -> Any:
        """The shape (a Size), or the length of dim."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        """The number of dims (ndim), as PyTorch's method."""
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        """The rows x[0], x[1], ..., each in the graph."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self) -> str:
        """As PyTorch prints a tensor: tensor([0.5000, 0.7311], dtype=..., grad_fn=<Mul>), four decimals."""
        body = np.array2string(self.numpy(), separator=", ", precision=4, floatmode="maxprec_equal", prefix="tensor(")
        extra = [f"device='{self.device}'"] if self.device != "cpu" else []
        if self.dtype not in (get_default_dtype(), np.dtype("int64"), np.dtype("bool")):
            extra.append(f"dtype=minigrad.{self.dtype}")
        if self._ctx is not None:
            extra.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({', '.join([body, *extra])})"

    __hash__ = object.__hash__  # hash by identity, even though == is elementwise

    # ---- host, device, graph ----------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host (NumPy) copy of the data, whatever the device."""
        b = backend_of_array(self.data)
        return self.data.copy() if b.device == "cpu" else b.to_host(self.data)  # to_host copies already

    __array_priority__ = 1000  # so that `numpy_array + tensor` asks Tensor.__radd__ (a Tensor), as in PyTorch

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The data as a NumPy array (a copy unless copy=False), so that np.asarray(t) and matplotlib
        take a tensor. CPU tensors only, as in PyTorch: from a GPU, copy with .cpu() or .numpy()."""
        if self.device != "cpu":
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        return np.array(self.data, dtype=dtype, copy=copy is not False)

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    # One element to a Python number, as PyTorch. Without __bool__, Python would ask __len__, and
    # `if idx_next == eos_id:` on a (1, 1) tensor would be True whatever it held.
    def __bool__(self) -> bool:
        if self.data.size != 1:
            what = "no values" if self.data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self.data.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """An integer tensor of one element where Python wants an int: lst[t], range(t)."""
        if self.data.size != 1 or self.data.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.data.item())

    def to(self, *args: Any, dtype: Any = None, device: Any = None, non_blocking: bool = False,
           copy: bool = False) -> Tensor:
        """This tensor in another dtype and/or on another device, as PyTorch's .to: each positional
        argument is a dtype, a device (a name or a minigrad.device) or a tensor (its dtype and device).
        Both changes are in the graph for a tensor that requires grad (the gradient flows back to this
        device); otherwise the device move gives a leaf, with its grad moved too. Itself if nothing
        changes (a copy with copy=True). non_blocking changes nothing here."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, str):  # a device name, or a minigrad.device (a str too)
                device = a
            else:
                dtype = a
        out = self if dtype is None else elementwise.cast(self, dtype)
        if device is not None and get_backend(device).device != out.device:
            if out.requires_grad and autograd.is_grad_enabled():  # in the graph, as PyTorch: grads flow back
                return elementwise.ToDevice.apply(out, device=get_backend(device).device)
            moved = Tensor._make(to_device(out.data, device), out.requires_grad)
            if out.grad is not None:
                moved.grad = out.grad.to(device)
            out = moved
        return shape_ops.clone(out) if copy and out is self else out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    # dtype conversions, as PyTorch names them (in the graph between floating dtypes)
    def float(self) -> Tensor:
        return elementwise.cast(self, np.float32)

    def double(self) -> Tensor:
        return elementwise.cast(self, np.float64)

    def half(self) -> Tensor:
        return elementwise.cast(self, np.float16)

    def long(self) -> Tensor:
        return elementwise.cast(self, np.int64)

    def int(self) -> Tensor:
        return elementwise.cast(self, np.int32)

    def bool(self) -> Tensor:
        return elementwise.cast(self, np.bool_)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data, False)

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        if self._ctx is not None:  # its Function hands it the grad, if it is still alive then
            self._ctx.retained_output = weakref.ref(self)

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * grad into every leaf's .grad. `grad` defaults to 1 for a scalar."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no input required grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar, this tensor has shape {self.shape}; "
                    "pass grad= of the same shape"
                )
            g = backend_of_array(self.data).xp.ones_like(self.data)
        else:
            g = grad.data if isinstance(grad, Tensor) else grad
            if backend_of_array(g).device != self.device:
                raise RuntimeError(f"backward: grad is on {backend_of_array(g).device}, tensor on {self.device}")
            if tuple(g.shape) != self.shape:
                raise ValueError(f"backward: grad has shape {tuple(g.shape)}, tensor has shape {self.shape}")
            g = g.astype(self.dtype, copy=False)
        autograd.backward(self, g, retain_graph=retain_graph)

    def _accumulate_grad(self, g: Any) -> None:
        if self.grad is None:
            self.grad = Tensor._make(g.copy(), False)  # a copy: g may be shared with other grads
        else:
            self.grad.data += g

    def zero_grad(self) -> None:
        self.grad = None

    # ---- operators ----------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return elementwise.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return elementwise.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return elementwise.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return elementwise.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return elementwise.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return elementwise.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return elementwise.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return elementwise.div(other, self)

    def __neg__(self) -> Tensor:
        return elementwise.neg(self)

    def __pow__(self, exponent: float) -> Tensor:
        return elementwise.pow(self, exponent)

    def __floordiv__(self, other: Any) -> Tensor:
        return elementwise.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return elementwise.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return elementwise.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return elementwise.remainder(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return matmul_ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul_ops.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return shape_ops.getitem(self, index)

    # ---- in-place: write into this tensor itself, as PyTorch (see inplace.py) ----------
    def __iadd__(self, other: Any) -> Tensor:
        return inplace.binary(self, "add_", elementwise.add, other)

    def __isub__(self, other: Any) -> Tensor:
        return inplace.binary(self, "sub_", elementwise.sub, other)

    def __imul__(self, other: Any) -> Tensor:
        return inplace.binary(self, "mul_", elementwise.mul, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return inplace.binary(self, "div_", elementwise.div, other)

    def __ipow__(self, exponent: Any) -> Tensor:
        return inplace.binary(self, "pow_", elementwise.pow, exponent)

    def __ifloordiv__(self, other: Any) -> Tensor:
        return inplace.binary(self, "floor_divide_", elementwise.floor_divide, other)

    def __imod__(self, other: Any) -> Tensor:
        return inplace.binary(self, "remainder_", elementwise.remainder, other)

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        return inplace.binary(self, "add_", elementwise.add, other if alpha == 1 else other * alpha)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        return inplace.binary(self, "sub_", elementwise.sub, other if alpha == 1 else other * alpha)

    def mul_(self, other: Any) -> Tensor:
        return inplace.binary(self, "mul_", elementwise.mul, other)

    def div_(self, other: Any) -> Tensor:
        return inplace.binary(self, "div_", elementwise.div, other)

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        return inplace.update(self, "masked_fill_", lambda: elementwise.masked_fill(self, mask, value))

    def zero_(self) -> Tensor:
        return inplace.fill(self, "zero_", 0)

    def fill_(self, value: Any) -> Tensor:
        return inplace.fill(self, "fill_", value)

    def copy_(self, src: Any) -> Tensor:
        return inplace.copy_(self, src)

    def __setitem__(self, index: Any, value: Any) -> None:
        inplace.setitem(self, index, value)

    # comparisons give boolean tensors outside the graph
    def __lt__(self, other: Any) -> Tensor:
        return elementwise.compare("lt", self, other)

    def __le__(self, other: Any) -> Tensor:
        return elementwise.compare("le", self, other)

    def __gt__(self, other: Any) -> Tensor:
        return elementwise.compare("gt", self, other)

    def __ge__(self, other: Any) -> Tensor:
        return elementwise.compare("ge", self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return elementwise.compare("eq", self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return elementwise.compare("ne", self, other)

    # ---- methods (see the ops modules for the math) ----------------------------
    def exp(self) -> Tensor:
        return elementwise.exp(self)

    def log(self) -> Tensor:
        return elementwise.log(self)

    def sqrt(self) -> Tensor:
        return elementwise.sqrt(self)

    def tanh(self) -> Tensor:
        return elementwise.tanh(self)

    def sigmoid(self) -> Tensor:
        return elementwise.sigmoid(self)

    def relu(self) -> Tensor:
        return elementwise.relu(self)

    def pow(self, exponent: float) -> Tensor:
        return elementwise.pow(self, exponent)

    def square(self) -> Tensor:
        return elementwise.pow(self, 2)

    # abs, clamp and minimum are composed of elementwise ops, whose backwards give their gradients
    def abs(self) -> Tensor:
        # |x| = x * sign(x), sign(x) a constant: the gradient is sign(x), 0 at 0 as in PyTorch
        xp = backend_of_array(self.data).xp
        return self * Tensor._make(xp.asarray(xp.sign(self.data)), False)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """Values below min raised to min, values above max lowered to max (a number or a tensor
        each). The gradient flows where x is kept, at the bounds too, as in PyTorch."""
        if min is None and max is None:
            raise ValueError("clamp: give min, max or both")
        out = self if min is None else elementwise.where(self < min, min, self)
        return out if max is None else elementwise.where(out > max, max, out)

    clip = clamp

    def maximum(self, other: Any) -> Tensor:
        return elementwise.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return -elementwise.maximum(-self, -other)  # min(a, b) = -max(-a, -b); ties share, as torch.minimum

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        return elementwise.masked_fill(self, mask, value)

    def matmul(self, other: Any) -> Tensor:
        return matmul_ops.matmul(self, other)

    def astype(self, dtype: Any) -> Tensor:
        return elementwise.cast(self, dtype)

    # comparisons and tests outside the graph
    def isnan(self) -> Tensor:
        xp = backend_of_array(self.data).xp
        return Tensor._make(xp.asarray(xp.isnan(self.data)), False)  # asarray: NumPy gives a scalar for 0-d

    def isinf(self) -> Tensor:
        xp = backend_of_array(self.data).xp
        return Tensor._make(xp.asarray(xp.isinf(self.data)), False)  # asarray: NumPy gives a scalar for 0-d

    def isfinite(self) -> Tensor:
        xp = backend_of_array(self.data).xp
        return Tensor._make(xp.asarray(xp.isfinite(self.data)), False)  # asarray: NumPy gives a scalar for 0-d

    def equal(self, other: Tensor) -> bool:
        """Same shape and the same values."""
        check_same_device("equal", (self, other))
        return self.shape == other.shape and bool((self.data == other.data).all())

    def allclose(self, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        """|self - other| <= atol + rtol * |other| everywhere."""
        check_same_device("allclose", (self, other))
        return bool(backend_of_array(self.data).xp.allclose(self.data, other.data, rtol, atol, equal_nan))

    # Reductions take PyTorch's arguments (dim, keepdim, ...) or NumPy's (axis, keepdims); see ops/reduce.py
    def sum(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.sum(self, *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.mean(self, *args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        return reduce_ops.max(self, *args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        return reduce_ops.min(self, *args, **kwargs)

    def amax(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.amax(self, *args, **kwargs)

    def amin(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.amin(self, *args, **kwargs)

    def argmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.argmax(self, *args, **kwargs)

    def argmin(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.argmin(self, *args, **kwargs)

    def var(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.var(self, *args, **kwargs)

    def std(self, *args: Any, **kwargs: Any) -> Tensor:
        return reduce_ops.std(self, *args, **kwargs)

    def topk(self, *args: Any, **kwargs: Any) -> Any:
        return reduce_ops.topk(self, *args, **kwargs)

    def reshape(self, *shape: Any) -> Tensor:
        return shape_ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    view = reshape

    def permute(self, *axes: Any) -> Tensor:
        return shape_ops.permute(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        return shape_ops.transpose(self, dim0, dim1)

    @property
    def T(self) -> Tensor:
        return shape_ops.permute(self, tuple(reversed(range(self.ndim))))

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return shape_ops.broadcast_to(self, shape)

    def expand(self, *sizes: Any) -> Tensor:
        return shape_ops.expand(self, *sizes)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return shape_ops.flatten(self, start_dim, end_dim)

    def squeeze(self, dim: Any = None) -> Tensor:
        return shape_ops.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return shape_ops.unsqueeze(self, dim)

    def split(self, split_size_or_sections: Any, dim: int | None = None, *, axis: int | None = None) -> list[Tensor]:
        return shape_ops.split(self, split_size_or_sections, dim, axis=axis)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        return shape_ops.gather(self, dim, index)

    def nonzero(self, *, as_tuple: bool = False) -> Any:
        return shape_ops.nonzero(self, as_tuple=as_tuple)

    def clone(self) -> Tensor:
        return shape_ops.clone(self)

    def contiguous(self) -> Tensor:
        return shape_ops.contiguous(self)

    def tril(self, diagonal: int = 0) -> Tensor:
        return shape_ops.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return shape_ops.triu(self, diagonal)

    def softmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return softmax_ops.softmax(self, *args, **kwargs)

    def log_softmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return softmax_ops.log_softmax(self, *args, **kwargs)


# ---- type promotion: PyTorch's rules ----------------------------------------------

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # bool < integer < floating, by dtype.kind


def promote_types(type1: Any, type2: Any) -> np.dtype:
    """The smallest dtype both fit in, as torch.promote_types: the higher category's dtype
    (int64 with float16 is float16), or within one category the wider (int8 with uint8 is int16)."""
    type1, type2 = np.dtype(type1), np.dtype(type2)
    c1, c2 = _CATEGORY[type1.kind], _CATEGORY[type2.kind]
    if c1 != c2:
        return type1 if c1 > c2 else type2
    return np.promote_types(type1, type2)


def _dtype_and_rank(x: Any) -> tuple[np.dtype, int]:
    """A binary op's operand as (dtype, rank): a tensor with dims ranks 2, a 0-d tensor 1, a number 0.
    A Python (or NumPy) number stands for bool, int64 or the default float dtype, as in PyTorch."""
    if isinstance(x, Tensor):
        return x.data.dtype, 2 if x.data.ndim else 1
    if isinstance(x, (bool, np.bool_)):
        return np.dtype(np.bool_), 0
    if isinstance(x, (int, np.integer)):
        return np.dtype(np.int64), 0
    if isinstance(x, (float, np.floating)):
        return get_default_dtype(), 0
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def result_type(a: Any, b: Any) -> np.dtype:
    """The dtype of a binary op's result (a, b: tensors or numbers), PyTorch's rule (torch.result_type):
    a higher category (bool < integer < floating) always wins; within one category a tensor with
    dims beats a 0-d tensor, which beats a number, whatever their widths (float16 tensor + 0-d float64
    tensor is float16, int32 tensor + 5 is int32); operands of equal rank promote (float32 with float64
    is float64). So an integer tensor joined by a Python float gives the default float dtype."""
    (ta, ra), (tb, rb) = _dtype_and_rank(a), _dtype_and_rank(b)
    if ra != rb and _CATEGORY[ta.kind] == _CATEGORY[tb.kind]:
        return ta if ra > rb else tb
    return promote_types(ta, tb)


def can_cast(from_: Any, to: Any) -> bool:
    """May an in-place op write a result of dtype from_ into a tensor of dtype to? PyTorch's rule
    (torch.can_cast): not into a lower category (bool < integer < floating), so `int_tensor += 0.5`
    is an error; any width within a category is fine (float64 into float16)."""
    return _CATEGORY[np.dtype(from_).kind] <= _CATEGORY[np.dtype(to).kind]


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """`x` as a Tensor beside `like`. A number becomes a 0-d tensor of result_type(like, x): like's
    dtype, unless the number is of a higher category (a float with an integer tensor gives the
    default float dtype). An array keeps its dtype and must already be on like's device."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.generic)):  # Python and NumPy scalars
        dtype = like.data.dtype if like.data.dtype.kind == "f" else result_type(like, x)  # (fast path first)
        if isinstance(x, np.generic):
            x = x.item()  # a Python number again, so NumPy does not widen float32 by x's float64
        return Tensor._make(get_backend(like.device).xp.asarray(x, dtype=dtype), False)
    dev = backend_of_array(x).device  # raises for unsupported types
    if dev != like.device:
        raise RuntimeError(f"expected all tensors on one device, found {like.device} and {dev}")
    return Tensor(x)


def as_operands(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors on one device, in the dtype of the result (result_type, PyTorch's
    promotion). An operand that requires grad is cast in the graph (Cast), so its gradient comes
    back in its own dtype: float32 weights mixed with a float64 tensor get float32 gradients."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: needs at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    a = as_tensor(a, b) if isinstance(b, Tensor) else a
    b = as_tensor(b, a)
    if a.data.dtype == b.data.dtype:  # the common case, and a model's hot path: nothing to do
        return a, b
    dtype = result_type(a, b)
    return _cast_to(a, dtype), _cast_to(b, dtype)


def _cast_to(t: Tensor, dtype: np.dtype) -> Tensor:
    if t.data.dtype == dtype:
        return t
    if t.requires_grad:
        return elementwise.cast(t, dtype)  # recorded: the gradient is cast back to t's dtype
    return Tensor._make(t.data.astype(dtype), False)


def check_same_device(op: str, tensors: Sequence[Tensor]) -> None:
    if len(tensors) > 1:
        t0 = type(tensors[0].data)
        for t in tensors[1:]:
            if type(t.data) is not t0:
                raise RuntimeError(
                    f"{op}: expected all tensors on one device, found {tensors[0].device} and {t.device}"
                )


# The ops need Tensor, defined above, so they are imported last.
from minigrad import inplace  # noqa: E402
from minigrad.ops import elementwise  # noqa: E402
from minigrad.ops import matmul as matmul_ops  # noqa: E402
from minigrad.ops import reduce as reduce_ops  # noqa: E402
from minigrad.ops import shape as shape_ops  # noqa: E402
from minigrad.ops import softmax as softmax_ops  # noqa: E402
