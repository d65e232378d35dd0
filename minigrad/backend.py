"""Array backends: which array module (`xp`) holds a tensor's data, and moving data between devices.

A backend is an array type plus the module of functions that work on it:
NumPy on "cpu", CuPy on "cuda". The engine never calls `np.` on data that
may live on a GPU: every op asks `get_array_module(x)` and uses what it gets,
so the same line of code runs on either device. Data is never copied between
host and device behind your back; `to_device` is the only door.

Read next: tensor.py.
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Backend:
    device: str  # the name users pass to .to(...): "cpu", "cuda", ...
    array_type: type  # arrays of this type belong to this backend
    xp: ModuleType  # NumPy-compatible module of functions on those arrays
    to_host: Any  # array -> numpy.ndarray (an explicit copy for device backends)


_BACKENDS: dict[str, Backend] = {}
_BY_TYPE: dict[type, Backend] = {}


def register_backend(backend: Backend) -> None:
    _BACKENDS[backend.device] = backend
    _BY_TYPE[backend.array_type] = backend


register_backend(Backend("cpu", np.ndarray, np, lambda a: a))


def _keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same few hundred arrays every time. By default
    glibc serves blocks over ~128 KiB with a fresh mmap and unmaps them on free, so each step
    gets new pages from the kernel, zeroed and faulted in one by one: hundreds of thousands of
    page faults, a third of a small model's step time. Serving blocks up to 32 MiB from the
    heap and never trimming it lets the next step reuse the same pages. Set MINIGRAD_MALLOPT=0
    to leave malloc alone."""
    if os.environ.get("MINIGRAD_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's maximum
    libc.mallopt(m_trim_threshold, 2**30)


_keep_freed_memory()


def _try_register_cupy() -> None:
    try:
        import cupy  # type: ignore[import-not-found]

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return
    except Exception:  # no CuPy, no driver or no GPU: CPU only
        return
    register_backend(Backend("cuda", cupy.ndarray, cupy, lambda a: a.get()))


_try_register_cupy()


def available_devices() -> list[str]:
    return list(_BACKENDS)


def backend_of_array(a: Any) -> Backend:
    b = _BY_TYPE.get(type(a))
    if b is None:
        for t, cand in _BY_TYPE.items():  # subclasses (e.g. np.memmap)
            if isinstance(a, t):
                return cand
        raise TypeError(f"no minigrad backend holds arrays of type {type(a).__name__}")
    return b


def get_backend(device: str) -> Backend:
    if device not in _BACKENDS:
        hint = " (is CuPy installed and a GPU visible?)" if device == "cuda" else ""
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


# ---- elementwise chains in cache-sized pieces --------------------------------

CHUNK_ELEMENTS: dict[str, int] = {"cpu": 1 << 18}  # per device; devices not listed take arrays whole


def chunks(a: Any) -> list[slice]:
    """Slices that cut a flat array into the pieces an elementwise chain should take at a time.

    NumPy runs a chain like GELU's a line at a time, each line one pass over the array. On
    a whole (16, 256, 1536) activation (25 MB) every pass goes to main memory; on pieces of
    256K elements (1 MiB of float32) each line reads what the one before just wrote from
    cache. Measured on 2 cores: GELU 24 -> 12 ms, AdamW on 10.8M parameters 36 -> 20 ms; 64K
    to 512K elements all do about as well, smaller pieces pay more Python per piece. A GPU
    fuses nothing this way and pays a launch per line per piece, so there the chain takes
    the array whole."""
    n = a.size
    step = CHUNK_ELEMENTS.get(backend_of_array(a).device) or n
    return [slice(i, i + step) for i in range(0, n, max(step, 1))] or [slice(0, 0)]


def device_of(a: Any) -> str:
    return backend_of_array(a).device


def to_device(a: Any, device: str) -> Any:
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
