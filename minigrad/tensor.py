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
from typing import Any, Sequence

import numpy as np

from minigrad import autograd
from minigrad.backend import (
    backend_of_array,
    get_backend,
    get_default_device,
    get_default_dtype,
    to_device,
)

Shape = tuple[int, ...]


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        device: str | None = None,
    ) -> None:
        """From a Python number or list, a NumPy/CuPy array or another Tensor.

        Floating data takes the default dtype (float32 unless set_default_dtype) unless
        `dtype` is given; integers and booleans keep their kind. An array stays on its
        device unless `device` is given; lists and numbers go to the default device.
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
            data = to_device(arr, device or get_default_device())
        else:
            given = data
            if type(data) is not src.array_type:  # a subclass such as np.memmap: a plain array
                data = src.xp.asarray(data)
            if device is not None:
                data = to_device(data, device)
        if dtype is not None:
            data = data.astype(np.dtype(dtype), copy=False)
        elif data.dtype.kind == "f" and data.dtype != get_default_dtype():
            data = data.astype(get_default_dtype())
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
    def shape(self) -> Shape:
        return tuple(self.data.shape)

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

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = f", device={self.device!r}" if self.device != "cpu" else ""
        return f"Tensor({self.numpy()!r}{dev}{grad})"

    __hash__ = object.__hash__  # hash by identity, even though == is elementwise

    # ---- host, device, graph ----------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host (NumPy) copy of the data, whatever the device."""
        b = backend_of_array(self.data)
        return self.data.copy() if b.device == "cpu" else b.to_host(self.data)  # to_host copies already

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: str) -> Tensor:
        """This tensor on `device` (itself if already there): a leaf copy, with its grad moved too."""
        if device == self.device:
            return self
        out = Tensor._make(to_device(self.data, device), self.requires_grad)
        if self.grad is not None:
            out.grad = self.grad.to(device)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

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

    def __matmul__(self, other: Any) -> Tensor:
        return matmul_ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul_ops.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return shape_ops.getitem(self, index)

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

    def astype(self, dtype: Any) -> Tensor:
        return elementwise.cast(self, dtype)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return reduce_ops.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return reduce_ops.mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return reduce_ops.max(self, axis, keepdims)

    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return reduce_ops.var(self, axis, keepdims, correction)

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

    def split(self, split_size_or_sections: Any, axis: int = 0) -> list[Tensor]:
        return shape_ops.split(self, split_size_or_sections, axis)

    def softmax(self, axis: int = -1) -> Tensor:
        return softmax_ops.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return softmax_ops.log_softmax(self, axis)


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """`x` as a Tensor beside `like`: Python numbers take like's dtype (a float with an int tensor
    gives the default float dtype); arrays must already be on like's device."""
    if isinstance(x, Tensor):
        return x
    xp = get_backend(like.device).xp
    if isinstance(x, (bool, int, float, np.generic)):  # Python and NumPy scalars
        if isinstance(x, (float, np.floating)) and like.dtype.kind != "f":
            return Tensor._make(xp.asarray(x, dtype=get_default_dtype()), False)
        return Tensor._make(xp.asarray(x, dtype=like.dtype), False)
    dev = backend_of_array(x).device  # raises for unsupported types
    if dev != like.device:
        raise RuntimeError(f"expected all tensors on one device, found {like.device} and {dev}")
    return Tensor(x)


def as_operands(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors on one device with one dtype. Integers join a float operand's dtype;
    two different float dtypes are an error rather than a silent (slow) float64 upcast."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: needs at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    a = as_tensor(a, b) if isinstance(b, Tensor) else a
    b = as_tensor(b, a)
    if a.dtype != b.dtype:
        fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
        if fa and fb:
            raise TypeError(f"{op}: dtype mismatch, {a.dtype} and {b.dtype}; cast one with .astype()")
        if fa:
            b = Tensor._make(b.data.astype(a.dtype), False)
        elif fb:
            a = Tensor._make(a.data.astype(b.dtype), False)
    return a, b


def check_same_device(op: str, tensors: Sequence[Tensor]) -> None:
    if len(tensors) > 1:
        t0 = type(tensors[0].data)
        for t in tensors[1:]:
            if type(t.data) is not t0:
                raise RuntimeError(
                    f"{op}: expected all tensors on one device, found {tensors[0].device} and {t.device}"
                )


# The ops need Tensor, defined above, so they are imported last.
from minigrad.ops import elementwise  # noqa: E402
from minigrad.ops import matmul as matmul_ops  # noqa: E402
from minigrad.ops import reduce as reduce_ops  # noqa: E402
from minigrad.ops import shape as shape_ops  # noqa: E402
from minigrad.ops import softmax as softmax_ops  # noqa: E402
