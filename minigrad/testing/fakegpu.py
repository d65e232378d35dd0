"""A test-only backend, device "fakegpu", that fails where code written for NumPy would fail on CuPy.

Its arrays wrap NumPy arrays on the host but refuse, like CuPy's, to turn into
NumPy arrays implicitly: `np.asarray(a)`, `np.exp(a)`, `np.sum(a)`,
`a + numpy_array` and indexing with a NumPy array all raise TypeError. These
are exactly the mistakes that pass on CPU and break on a GPU, so running the
whole test suite on this backend proves that the engine takes its array
module from the data (`get_array_module`) everywhere. It cannot tell whether a
NumPy function exists in CuPy too (it offers them all): keep to the common ones.
It is slower than NumPy and never used outside tests.

    import minigrad.testing.fakegpu  # registers the device
    x = minigrad.Tensor([1.0, 2.0], device="fakegpu")
"""
from __future__ import annotations

import types
from typing import Any

import numpy as np

from minigrad.backend import Backend, register_backend

_EXPLICIT_COPIES = {"asarray", "array", "ascontiguousarray"}  # host -> "device" is allowed when asked for


class FakeGPUArray:
    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs and ndarray operators give up on us: np.exp(a), x_np + a raise

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fakegpu array); call .get()")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} called on a fakegpu array; take xp from get_array_module(x)")

    def get(self) -> np.ndarray:
        """An explicit copy to the host, as cupy.ndarray.get()."""
        return self._a.copy()

    def __getattr__(self, name: str) -> Any:
        if name == "_a":  # during copy/unpickling, before __init__ ran
            raise AttributeError(name)
        if name.startswith("__array"):  # __array_interface__/__array_struct__ would let NumPy read the host copy
            raise AttributeError(name)
        return _wrap_attr(getattr(self._a, name))

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key, "indexing")])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(row) for row in self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __repr__(self) -> str:
        return f"fakegpu.{self._a!r}"

    def __copy__(self) -> FakeGPUArray:
        return FakeGPUArray(self._a.copy())

    def __deepcopy__(self, memo: Any) -> FakeGPUArray:
        return FakeGPUArray(self._a.copy())

    __hash__ = None  # type: ignore[assignment]  # arrays are unhashable, as in NumPy and CuPy


def _binary(name: str) -> Any:
    def op(self: FakeGPUArray, other: Any) -> Any:
        return _wrap(getattr(self._a, name)(_unwrap(other, name)))

    op.__name__ = name
    return op


def _inplace(name: str) -> Any:
    def op(self: FakeGPUArray, other: Any) -> Any:
        getattr(self._a, name)(_unwrap(other, name))
        return self  # like NumPy and CuPy, x += y keeps the same array object

    op.__name__ = name
    return op


def _unary(name: str) -> Any:
    def op(self: FakeGPUArray) -> Any:
        return _wrap(getattr(self._a, name)())

    op.__name__ = name
    return op


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    for _form in ("__{}__", "__r{}__"):
        _d = _form.format(_n)
        setattr(FakeGPUArray, _d, _binary(_d))
    setattr(FakeGPUArray, f"__i{_n}__", _inplace(f"__i{_n}__"))
for _d in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(FakeGPUArray, _d, _binary(_d))
for _d in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(FakeGPUArray, _d, _unary(_d))


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return FakeGPUArray(x)
    if isinstance(x, np.generic):  # CuPy reductions return 0-d arrays, not NumPy scalars
        return FakeGPUArray(np.asarray(x))
    if isinstance(x, (tuple, list)):
        return type(x)(_wrap(v) for v in x)
    if isinstance(x, np.random.Generator):  # xp.random.default_rng(): its samples are fakegpu arrays, as in CuPy
        return _Proxy(x, "Generator")
    return x


def _unwrap(x: Any, where: str) -> Any:
    if isinstance(x, FakeGPUArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"a NumPy array was mixed with fakegpu arrays in {where}; move it with .to(device) first")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v, where) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, where) for k, v in x.items()}
    return x


class _Proxy:
    """Stands for a NumPy function, ufunc, module or object: unwraps arguments, wraps results."""

    __slots__ = ("_obj", "_name")

    def __init__(self, obj: Any, name: str) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_name", name)

    def __getattr__(self, name: str) -> Any:
        return _wrap_attr(getattr(self._obj, name), f"{self._name}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._name.rsplit(".", 1)[-1] in _EXPLICIT_COPIES:
            args = tuple(a._a if isinstance(a, FakeGPUArray) else a for a in args)
        else:
            args = _unwrap(args, self._name)
        return _wrap(self._obj(*args, **_unwrap(kwargs, self._name)))


def _wrap_attr(attr: Any, name: str = "method") -> Any:
    if isinstance(attr, type):  # dtypes such as xp.float32 stay NumPy's, as in CuPy
        return attr
    if callable(attr) or isinstance(attr, types.ModuleType) or isinstance(attr, np.random.Generator):
        return _Proxy(attr, name)
    if hasattr(attr, "state") and hasattr(attr, "random_raw"):  # a bit generator
        return _Proxy(attr, name)
    return _wrap(attr)


class _FakeModule(types.ModuleType):
    """`xp` for the fakegpu device: every NumPy name, behind a _Proxy."""

    ndarray = FakeGPUArray

    def __getattr__(self, name: str) -> Any:
        return _wrap_attr(getattr(np, name), name)


xp = _FakeModule("fakegpu")
register_backend(Backend("fakegpu", FakeGPUArray, xp, lambda a: a.get()))

__all__ = ["FakeGPUArray", "xp"]
