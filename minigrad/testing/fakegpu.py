"""A test-only backend, device "fakegpu", that fails where code written for NumPy would fail on CuPy.

Its arrays wrap NumPy arrays on the host and behave as strictly as CuPy's:
- They refuse to turn into NumPy arrays implicitly: `np.asarray(a)`, `np.exp(a)`,
  `np.sum(a)`, `a + numpy_array` and indexing with a NumPy array raise TypeError.
- `xp` offers only the names CuPy has, functions take only the keyword arguments (and
  as many positional ones) as CuPy's, arrays and `xp.random.default_rng()` generators
  only CuPy's methods and attributes, and a ufunc only the methods (reduce, accumulate,
  reduceat, outer, at) that CuPy supports for it. All of it is read from cupy_api.json,
  which `python tools/cupy_api.py` (outside the package) writes from an installed CuPy.
- Where CuPy silently differs from NumPy it raises or does as CuPy does: an out-of-bounds
  integer index raises IndexError (CuPy would wrap it around), `add.reduceat` runs CuPy's
  algorithm (differences of a cumulative sum, far less precise in float32), and `ufunc.at`
  takes only the dtypes CuPy's atomic operations take.
- It counts device-to-host synchronisations: reading a value on the host (`bool`, `int`,
  `float`, `.item()`, `.get()`, `.tolist()`, `asnumpy`) and ops whose output size depends
  on the data (`nonzero`, `flatnonzero`, `argwhere`, `unique`, boolean-mask indexing and
  assignment),
  which CuPy can only size by waiting for the GPU. `record()` lists them, and counts the
  array operations that make or write arrays (each a kernel launch, roughly, on a GPU;
  views such as reshapes and slices launch nothing).
So running the test suite on this backend proves the engine takes its array module from
the data everywhere and uses nothing CuPy lacks. It is slower than NumPy and never used
outside tests.

    import minigrad.testing.fakegpu  # registers the device
    x = minigrad.Tensor([1.0, 2.0], device="fakegpu")

Read next: the GPT built on the engine, gpt/model.py.
"""
from __future__ import annotations

import contextlib
import json
import sys
import types
import weakref
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from minigrad.backend import Backend, register_backend
from minigrad.ops.shape import out_of_bounds

API = json.loads(Path(__file__).with_name("cupy_api.json").read_text())
CUPY = f"CuPy {API['cupy_version']}"
_EXPLICIT_COPIES = {"asarray", "array", "ascontiguousarray"}  # host -> "device" is allowed when asked for
_SIZED_BY_DATA = {"nonzero", "flatnonzero", "argwhere", "unique"}  # CuPy waits for the GPU to size the output


# ---- recording synchronisations and operations ------------------------------------------------


class Record:
    """What the code run inside `record()` asked of the "device"."""

    def __init__(self) -> None:
        self.syncs: list[str] = []  # one line per device-to-host synchronisation: what and where
        self.ops: Counter[str] = Counter()  # array operations (kernel launches on a GPU), by name

    def __repr__(self) -> str:
        return f"Record({len(self.syncs)} syncs, {sum(self.ops.values())} ops)"


_records: list[Record] = []


@contextlib.contextmanager
def record() -> Iterator[Record]:
    """Count what the fakegpu arrays do inside the `with` block:

        with fakegpu.record() as rec:
            train_step()
        assert len(rec.syncs) <= 2, rec.syncs
    """
    rec = Record()
    _records.append(rec)
    try:
        yield rec
    finally:
        _records.remove(rec)


def _caller() -> str:
    """file:line of the first frame outside this module (where the sync was asked for)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename == __file__:
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"


def _sync(what: str) -> None:
    if _records:
        where = f"{what} at {_caller()}"
        for r in _records:
            r.syncs.append(where)


def _op(name: str, result: Any = None) -> Any:
    """Count an array operation, unless its result is a view (reshape, slicing: no kernel runs)."""
    if _records and not (isinstance(result, np.ndarray) and result.base is not None):
        for r in _records:
            r.ops[name] += 1
    return result


# ---- checking calls against CuPy's API ----------------------------------------------------------


def _check_call(name: str, rules: dict[str, Any], args: tuple, kwargs: dict) -> None:
    allowed, most = rules.get("keywords"), rules.get("positional")
    if allowed is not None:
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"{name}() in {CUPY} takes no keyword argument {unknown[0]!r} (it takes {allowed})")
    if most is not None and len(args) > most:
        raise TypeError(f"{name}() in {CUPY} takes at most {most} positional arguments, got {len(args)}")


def _check_bounds(shape: tuple[int, ...], key: Any) -> None:
    """IndexError for an integer index outside [-n, n) of its axis: NumPy raises, but CuPy wraps
    it around silently and reads the wrong element, so a test must fail here."""
    bad = out_of_bounds(shape, key if isinstance(key, tuple) else (key,))
    if bad:
        raise IndexError(
            f"index {bad[0]} is out of bounds for axis {bad[1]} with size {bad[2]} "
            f"(fakegpu raises; {CUPY} would wrap it around silently)"
        )


def _cupy_add_reduceat(a: np.ndarray, indices: Any, axis: int = 0, dtype: Any = None, out: Any = None) -> np.ndarray:
    """CuPy's add.reduceat (`_add_reduceat` in cupy/_core/_routines_indexing.pyx): a cumulative
    sum along the axis, then differences of it at the indices. In float32 a segment's sum loses
    the precision of the whole running total before it, where NumPy sums each segment alone."""
    axis = axis % a.ndim
    indices = np.append(indices, a.shape[axis])
    shape = [1 if i == axis else n for i, n in enumerate(a.shape)]
    acc = a.cumsum(axis, dtype)
    acc = np.append(np.zeros(shape, acc.dtype), acc, axis)
    mask = (indices[:-1] >= indices[1:]).reshape(-1, *([1] * (a.ndim - axis - 1)))
    res = np.where(mask, a.take(indices[:-1], axis), acc.take(indices[1:], axis) - acc.take(indices[:-1], axis))
    if out is not None:
        out[...] = res
        return out
    return res


# ---- the array ------------------------------------------------------------------------------------


class FakeGPUArray:
    __slots__ = ("_a", "__weakref__")
    __array_ufunc__ = None  # NumPy ufuncs and ndarray operators give up on us: np.exp(a), x_np + a raise

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fakegpu array); call .get()")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} called on a fakegpu array; take xp from get_array_module(x)")

    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
        """An explicit copy to the host, as cupy.ndarray.get()."""
        _sync("get()")
        return self._a.copy()

    def __getattr__(self, name: str) -> Any:
        if name == "_a":  # during copy/unpickling, before __init__ ran
            raise AttributeError(name)
        if name == "base":  # the same object each time, as CuPy's (the array whose memory this one views)
            return _same_wrapper(self._a.base)
        if name in API["ndarray"]["attributes"] and hasattr(self._a, name):
            return _wrap(getattr(self._a, name))
        rules = API["ndarray"]["methods"].get(name)
        if rules is None or not hasattr(self._a, name):
            why = "fakegpu does not emulate it" if rules is not None else f"{CUPY}'s ndarray has no such attribute"
            raise AttributeError(f"'ndarray' attribute {name!r}: {why}")
        if name in ("item", "tolist"):
            _sync(f".{name}()")
        return _Function(getattr(self._a, name), rules, f"ndarray.{name}")

    def __getitem__(self, key: Any) -> Any:
        key = _unwrap(key, "indexing")
        _check_bounds(self._a.shape, key)
        if any(getattr(p, "dtype", None) == bool for p in (key if isinstance(key, tuple) else (key,))):
            _sync("boolean-mask indexing")
        return _wrap(_op("getitem", self._a[key]))

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _unwrap(key, "indexing")
        _check_bounds(self._a.shape, key)
        if any(getattr(p, "dtype", None) == bool for p in (key if isinstance(key, tuple) else (key,))):
            _sync("boolean-mask assignment")  # CuPy counts the mask's True values on the host first
        _op("setitem")
        self._a[key] = _unwrap(value, "assignment")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(row) for row in self._a)

    def __bool__(self) -> bool:
        _sync("bool()")
        return bool(self._a)

    def __float__(self) -> float:
        _sync("float()")
        return float(self._a)

    def __int__(self) -> int:
        _sync("int()")
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
        return _wrap(_op(name, getattr(self._a, name)(_unwrap(other, name))))

    op.__name__ = name
    return op


def _inplace(name: str) -> Any:
    def op(self: FakeGPUArray, other: Any) -> Any:
        _op(name)
        getattr(self._a, name)(_unwrap(other, name))
        return self  # like NumPy and CuPy, x += y keeps the same array object

    op.__name__ = name
    return op


def _unary(name: str) -> Any:
    def op(self: FakeGPUArray) -> Any:
        return _wrap(_op(name, getattr(self._a, name)()))

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
        return _Generator(x)
    return x


_wrappers: weakref.WeakValueDictionary[int, FakeGPUArray] = weakref.WeakValueDictionary()


def _same_wrapper(a: np.ndarray | None) -> FakeGPUArray | None:
    """One FakeGPUArray per NumPy array while it lives, so that `x.base is y.base` works as in CuPy."""
    if a is None:
        return None
    w = _wrappers.get(id(a))
    if w is None or w._a is not a:
        w = _wrappers[id(a)] = FakeGPUArray(a)
    return w


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


# ---- functions, ufuncs, generators and the module ------------------------------------------------


class _Function:
    """Stands for a NumPy function or array method that CuPy has too: checks the call against
    CuPy's rules, unwraps the arguments, wraps the result."""

    def __init__(self, fn: Any, rules: dict[str, Any], name: str) -> None:
        self.fn, self.rules, self.name = fn, rules, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _check_call(self.name, self.rules, args, kwargs)
        short = self.name.rsplit(".", 1)[-1]
        if short in _EXPLICIT_COPIES:
            args = tuple(a._a if isinstance(a, FakeGPUArray) else a for a in args)
        else:
            args = _unwrap(args, self.name)
        if short in _SIZED_BY_DATA:
            _sync(f"{short}()")
        return _wrap(_op(self.name, self.fn(*args, **_unwrap(kwargs, self.name))))


class _Ufunc(_Function):
    """A ufunc: callable, with only the methods CuPy supports for this ufunc."""

    def __getattr__(self, name: str) -> Any:
        if name in ("reduce", "accumulate", "reduceat", "outer", "at"):
            if name not in self.rules["methods"]:
                raise NotImplementedError(f"{self.name}.{name} is not supported by {CUPY}")
            if name == "at":
                return _Function(_ufunc_at(self.fn, self.name), {}, f"{self.name}.at")
            fn = _cupy_add_reduceat if (self.name, name) == ("add", "reduceat") else getattr(self.fn, name)
            return _Function(fn, {}, f"{self.name}.{name}")
        return getattr(self.fn, name)  # nin, nout, types, ...


# The dtypes CuPy's ufunc.at takes (atomic operations; `_scatter_op_single` in CuPy's
# _routines_indexing.pyx): add.at refuses int64, for one.
_AT_DTYPES = {
    "add": "int32 float16 float32 float64 uint32 uint64",
    "subtract": "int32 uint32",
    "maximum": "int32 float32 float64 uint32 uint64",
    "minimum": "int32 float32 float64 uint32 uint64",
    "bitwise_and": "int32 int64 uint32 uint64",
    "bitwise_or": "int32 int64 uint32 uint64",
    "bitwise_xor": "int32 int64 uint32 uint64",
}


def _ufunc_at(ufunc: Any, name: str) -> Any:
    def at(a: np.ndarray, indices: Any, b: Any = None) -> None:
        if name in _AT_DTYPES and a.dtype.name not in _AT_DTYPES[name].split():
            raise TypeError(f"{name}.at in {CUPY} takes only {_AT_DTYPES[name]}, got {a.dtype}")
        _check_bounds(a.shape, indices)
        ufunc.at(a, indices, b)

    return at


class _Generator:
    """xp.random.default_rng(seed): only the methods of cupy.random.Generator."""

    def __init__(self, gen: np.random.Generator) -> None:
        self._gen = gen

    def __getattr__(self, name: str) -> Any:
        rules = API["Generator"]["methods"].get(name)
        if rules is None:
            raise AttributeError(f"{CUPY}'s random.Generator has no attribute {name!r}")
        return _Function(getattr(self._gen, name), rules, f"Generator.{name}")


class _Namespace(types.ModuleType):
    """`xp` for the fakegpu device (and its random, linalg, fft): CuPy's names, NumPy's work."""

    def __init__(self, np_module: types.ModuleType, table: str) -> None:
        super().__init__(table.replace("cupy", "fakegpu"))
        self._np, self._table = np_module, table

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        rules = API[self._table].get(name)
        if rules is None:
            raise AttributeError(f"{CUPY} has no {self._table}.{name}")
        if name == "asnumpy" and self._table == "cupy":
            return lambda a, *args, **kwargs: a.get() if isinstance(a, FakeGPUArray) else np.asarray(a)
        if not hasattr(self._np, name) or (rules["kind"] == "module" and f"cupy.{name}" not in API):
            raise AttributeError(f"{self._table}.{name} exists in {CUPY} but fakegpu does not emulate it")
        obj = getattr(self._np, name)
        if rules["kind"] == "module":
            return _Namespace(obj, f"cupy.{name}")
        if rules["kind"] == "ufunc":
            return _Ufunc(obj, rules, name)
        if rules["kind"] == "function":
            return _Function(obj, rules, name)
        return obj  # types (dtypes such as xp.float32 stay NumPy's, as in CuPy) and values (xp.nan)


xp = _Namespace(np, "cupy")
xp.ndarray = FakeGPUArray  # type: ignore[attr-defined]
register_backend(Backend("fakegpu", FakeGPUArray, xp, lambda a: a.get(), lambda: _sync("synchronize()")))

__all__ = ["API", "FakeGPUArray", "Record", "record", "xp"]
