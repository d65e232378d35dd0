"""Making tensors: tensor, zeros, ones, randn, arange, on any device and in the default dtype.

randn draws from the device's seeded generator (minigrad.manual_seed).

Read next: autograd.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.backend import generator, get_backend, get_default_device, get_default_dtype
from minigrad.tensor import Tensor


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def _place(dtype: Any, device: str | None) -> tuple[Any, Any, str]:
    device = device or get_default_device()
    return get_backend(device).xp, dtype or get_default_dtype(), device


def zeros(*shape: int, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def ones(*shape: int, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    xp, dtype, device = _place(dtype, device)
    return Tensor(xp.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def randn(*shape: int, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the device's seeded generator."""
    xp, dtype, device = _place(dtype, device)
    data = generator(device).standard_normal(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def arange(*args: float, device: str | None = None, dtype: Any = None) -> Tensor:
    """As numpy.arange: int64 for integer arguments, else the default float dtype."""
    if dtype is None:
        dtype = "int64" if all(isinstance(a, int) for a in args) else get_default_dtype()
    xp, _, device = _place(dtype, device)
    return Tensor(xp.arange(*args, dtype=dtype), dtype=dtype)


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = tuple(shape[0])
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return tuple(int(n) for n in shape)
