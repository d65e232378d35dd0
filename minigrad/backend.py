"""Array backends: which array module (`xp`) holds a tensor's data, and moving data between devices.

A backend is an array type plus the module of functions that work on it:
NumPy on "cpu", CuPy on "cuda". The engine never calls `np.` on data that
may live on a GPU: every op asks `get_array_module(x)` and uses what it gets,
so the same line of code runs on either device. Data is never copied between
host and device behind your back; `to_device` is the only door.

Leaves out: anything done only for speed (allocator settings, cache-sized pieces):
speed.py, the last stop of the tour.

Read next: testing/fakegpu.py, then speed.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

from minigrad.extras import install_hint

Array = Any  # an array of some backend: numpy.ndarray on "cpu", cupy.ndarray on "cuda"


@dataclass(frozen=True)
class Backend:
    device: str  # the name users pass to .to(...): "cpu", "cuda", ...
    array_type: type  # arrays of this type belong to this backend
    xp: ModuleType  # NumPy-compatible module of functions on those arrays
    to_host: Callable[[Array], np.ndarray]  # array -> numpy.ndarray (an explicit copy for device backends)
    synchronize: Callable[[], None] = lambda: None  # wait for the device's queued work (timing needs it)


_BACKENDS: dict[str, Backend] = {}
_BY_TYPE: dict[type, Backend] = {}


def register_backend(backend: Backend) -> None:
    _BACKENDS[backend.device] = backend
    _BY_TYPE[backend.array_type] = backend


register_backend(Backend("cpu", np.ndarray, np, lambda a: a))


def _try_register_cupy() -> None:
    try:
        import cupy  # type: ignore[import-not-found]

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return
    except Exception:  # no CuPy, no driver or no GPU: CPU only
        return
    register_backend(Backend("cuda", cupy.ndarray, cupy, lambda a: a.get(), cupy.cuda.Device().synchronize))


_try_register_cupy()


def available_devices() -> list[str]:
    return list(_BACKENDS)


def synchronize(device: str) -> None:
    """Wait until `device` has done all the work queued on it (a no-op on the CPU). A GPU runs
    asynchronously: read a clock without this and you time the launches, not the work."""
    get_backend(device).synchronize()


def backend_of_array(a: Array) -> Backend:
    b = _BY_TYPE.get(type(a))
    if b is None:
        for t, cand in _BY_TYPE.items():  # subclasses (e.g. np.memmap)
            if isinstance(a, t):
                return cand
        raise TypeError(f"no minigrad backend holds arrays of type {type(a).__name__}")
    return b


def get_backend(device: str) -> Backend:
    if device not in _BACKENDS:
        hint = f" (it needs an NVIDIA GPU and {install_hint('cupy')})" if device == "cuda" else ""
        raise ValueError(f"unknown or unavailable device {device!r}{hint}; available: {available_devices()}")
    return _BACKENDS[device]


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module of the first argument that is an array (or a Tensor); NumPy if none is."""
    for a in arrays:
        b = _BY_TYPE.get(type(a))
        if b is None and hasattr(a, "requires_grad"):  # a Tensor: look at its data
            b = _BY_TYPE.get(type(a.data))
        if b is not None:
            return b.xp
    return np


def device_of(a: Array) -> str:
    return backend_of_array(a).device


def to_device(a: Array, device: str) -> Array:
    """Copy an array to `device` (a no-op if it is already there): the one explicit host<->device door."""
    src = backend_of_array(a)
    if src.device == device:
        return a
    host = src.to_host(a)
    return get_backend(device).xp.asarray(host)


# ---- defaults -------------------------------------------------------------

_default_device = os.environ.get("MINIGRAD_DEVICE", "cpu")
_default_dtype = np.dtype(np.float32)


def set_default_device(device: str) -> None:
    global _default_device
    get_backend(device)  # validate
    _default_device = device


def get_default_device() -> str:
    return _default_device


def set_default_dtype(dtype: Any) -> None:
    """Floating dtype for new tensors and parameters: float32 (default) or float64 (for gradient checks)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"default dtype must be a floating dtype, got {dt}")
    _default_dtype = dt


def get_default_dtype() -> np.dtype:
    return _default_dtype


# ---- random numbers: one seeded generator per device ------------------------

_generators: dict[str, Any] = {}
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Reseed the random generators of every device (dropout, init via minigrad.randn)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device: str) -> Any:
    """The device's `xp.random.Generator`, created lazily from the last manual_seed."""
    if device not in _generators:
        _generators[device] = get_backend(device).xp.random.default_rng(_seed)
    return _generators[device]


def get_rng_state() -> dict[str, Any]:
    """The CPU generator's state (a JSON-able dict), for exact resume."""
    return generator("cpu").bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    generator("cpu").bit_generator.state = state
