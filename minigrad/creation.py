"""Making tensors, with PyTorch's names and keywords (dtype=, device=, requires_grad=): tensor;
zeros, ones, full, empty, eye, arange, linspace and the *_like twins; random ones: rand, randn,
randint, randperm, and multinomial (draws category ids from probabilities).

Floating tensors take the default dtype (minigrad.set_default_dtype) unless dtype= says otherwise.
Random draws come from the device's seeded generator (minigrad.manual_seed), or from a
minigrad.Generator passed as generator= (CPU only).

Read next: autograd.py.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from minigrad.backend import Generator, get_array_module, get_backend, get_default_device, get_default_dtype
from minigrad.backend import generator as device_generator
from minigrad.tensor import Tensor


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def _place(dtype: Any, device: str | None) -> tuple[Any, Any, str]:
    """(array module, dtype, device) of a new tensor: the default dtype and device unless given."""
    device = device if device is not None else get_default_device()
    return get_backend(device).xp, np.dtype(dtype) if dtype is not None else get_default_dtype(), device


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """The sizes given as ints (zeros(2, 3)) or as one sequence (zeros((2, 3)))."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return tuple(int(n) for n in shape)


def zeros(*size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.zeros(_shape(size), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def ones(*size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.ones(_shape(size), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def empty(*size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Uninitialized: the values are whatever the memory held."""
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.empty(_shape(size), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: str | None = None,
         requires_grad: bool = False) -> Tensor:
    """Every element fill_value; the dtype follows it as in PyTorch: bool, int64, or the default float."""
    if dtype is None and isinstance(fill_value, (bool, int, np.bool_, np.integer)):
        dtype = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else np.int64
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.full(_shape((size,)), fill_value, dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: str | None = None,
        requires_grad: bool = False) -> Tensor:
    """(n, m) (m = n by default) with ones on the diagonal."""
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.eye(n, m, dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def arange(*args: float, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """arange(end), arange(start, end) or arange(start, end, step): int64 for integer arguments,
    else the default float dtype, as in PyTorch."""
    if dtype is None:
        dtype = np.int64 if all(isinstance(a, (int, np.integer)) for a in args) else get_default_dtype()
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.arange(*args, dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: str | None = None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.linspace(start, end, steps, dtype=dtype), requires_grad=requires_grad, dtype=dtype)


# ---- the *_like twins: input's shape, dtype and device unless given ------------------


def zeros_like(input: Tensor, *, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return zeros(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return ones(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return empty(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, device: str | None = None,
              requires_grad: bool = False) -> Tensor:
    return full(input.shape, fill_value, **_like(input, dtype, device), requires_grad=requires_grad)


def rand_like(input: Tensor, *, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return rand(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return randn(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def _like(input: Tensor, dtype: Any, device: str | None) -> dict[str, Any]:
    return {"dtype": input.dtype if dtype is None else dtype, "device": input.device if device is None else device}


# ---- random tensors --------------------------------------------------------------------


def _rng(generator: Generator | None, device: str) -> Any:
    """Where a random tensor's draws come from: `generator` (CPU tensors only), else the device's
    own generator (minigrad.manual_seed)."""
    if generator is None:
        return device_generator(device)
    if get_backend(device).device != generator.device:
        raise ValueError(f"generator is on {generator.device}, the tensor on {device}: a Generator draws for the CPU only")
    return generator.numpy_generator()


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None, device: str | None = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1) (float32 or float64)."""
    _, dtype, device = _place(dtype, device)
    data = _rng(generator, device).random(_shape(size), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None, device: str | None = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32 or float64)."""
    _, dtype, device = _place(dtype, device)
    data = _rng(generator, device).standard_normal(_shape(size), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def randint(low: int = 0, high: int | None = None, size: Sequence[int] | None = None, *,
            generator: Generator | None = None, dtype: Any = None, device: str | None = None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high), as torch.randint: randint(high, size) or randint(low, high, size)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:  # randint(high, size=...)
        low, high = 0, low
    if size is None or high is None:
        raise TypeError("randint: give randint(high, size) or randint(low, high, size)")
    _, dtype, device = _place(np.int64 if dtype is None else dtype, device)
    data = _rng(generator, device).integers(low, high, _shape((size,)), dtype=np.int64)
    return Tensor(data.astype(dtype, copy=False), requires_grad=requires_grad, dtype=dtype)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None, device: str | None = None,
             requires_grad: bool = False) -> Tensor:
    """0, ..., n-1 in a random order (int64), drawn on the host from `generator` or the CPU's
    generator, then moved to `device`."""
    rng = device_generator("cpu") if generator is None else generator.numpy_generator()
    _, dtype, device = _place(np.int64 if dtype is None else dtype, device)
    return Tensor(rng.permutation(int(n)), requires_grad=requires_grad, dtype=dtype, device=device)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Tensor:
    """num_samples category ids drawn from each row of input, as torch.multinomial: input holds
    probabilities or any non-negative weights, (V,) or (B, V); the ids are int64, (num_samples,)
    or (B, num_samples). Without replacement no id is drawn twice in a row of the result.

    Each draw inverts the cumulative distribution: a uniform r in [0, total weight) picks the first
    category whose cumulative weight exceeds r. The weights are checked on the host (on a GPU, one wait)."""
    if input.ndim not in (1, 2) or input.dtype.kind != "f":
        raise ValueError(f"multinomial: expected floating weights of shape (V,) or (B, V), got {input.dtype} {input.shape}")
    xp = get_array_module(input.data)
    w = input.data.reshape(-1, input.shape[-1])  # (B, V)
    (b, v), n = w.shape, int(num_samples)
    if n <= 0 or (not replacement and n > v):
        raise ValueError(f"multinomial: cannot draw {num_samples} samples from {v} categories"
                         + ("" if replacement else " without replacement"))
    invalid = ((w < 0) | ~xp.isfinite(w)).any() | (w.sum(axis=-1) <= 0).any()
    if not replacement:
        invalid = invalid | ((w > 0).sum(axis=-1) < n).any()
    if bool(invalid):
        raise ValueError("multinomial: each row needs finite, non-negative weights with a positive sum"
                         + ("" if replacement else f", {n} of them above 0 (without replacement)"))
    rng = _rng(generator, input.device)
    if not replacement:
        w = w.copy()  # drawn categories are zeroed in it: our copy, never the input
    ids = []
    for _ in range(n):
        cdf = xp.cumsum(w, axis=-1)  # (B, V)
        r = rng.random((b, 1)) * cdf[:, -1:]  # (B, 1), uniform in [0, total)
        pick = xp.minimum((cdf <= r).sum(axis=-1), v - 1)  # (B,) the first category with cdf > r
        ids.append(pick)
        if not replacement:
            w[xp.arange(b), pick] = 0
    out = xp.stack(ids, axis=-1).astype(np.int64)  # (B, num_samples)
    return Tensor._make(out.reshape(input.shape[:-1] + (n,)), False)
