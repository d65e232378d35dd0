"""Array backends: which array module (`xp`) holds a tensor's data, and moving data between devices.

A backend is an array type plus the module of functions that work on it:
NumPy on "cpu", CuPy on "cuda". The engine never calls `np.` on data that
may live on a GPU: every op asks `get_array_module(x)` and uses what it gets,
so the same line of code runs on either device. Data is never copied between
host and device behind your back; `to_device` is the only door.

Leaves out: anything done only for speed (allocator settings, cache-sized pieces):
speed.py, the last stop of the tour.

Read next: testing/fakegpu.py, then the GPT: gpt/model.py.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np

from minigrad.extras import install_hint

Array = Any  # an array of some backend: numpy.ndarray on "cpu", cupy.ndarray on "cuda"


class device(str):
    """A device as PyTorch writes it: device("cpu"), device("cuda"), device("cuda:0"), device("cuda", 0).

    It is a str equal to its name ("cuda:0" stays "cuda:0"), so it goes wherever a device name goes,
    and a tensor's .device is one. The index chooses nothing: minigrad computes on one GPU per
    process, CuPy's current one (distributed.py gives each rank its own)."""

    def __new__(cls, type: str, index: int | None = None) -> device:
        name, _, num = str(type).partition(":")
        if num:
            if index is not None or not num.isdigit():
                raise ValueError(f"device: invalid device {type!r}" + (f" with index={index}" if index is not None else ""))
            index = int(num)
        return super().__new__(cls, name if index is None else f"{name}:{index}")

    @property
    def type(self) -> str:
        """The backend: "cpu", "cuda", ..."""
        return self.partition(":")[0]

    @property
    def index(self) -> int | None:  # type: ignore[override]  (hides str.index, which a device has no use for)
        num = self.partition(":")[2]
        return int(num) if num else None


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
    backend = dataclasses.replace(backend, device=device(backend.device))  # tensors report a device object
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


@functools.cache
def cuda_is_available() -> bool:
    """Can minigrad compute on an NVIDIA GPU: CuPy sees one, and a kernel runs there (checked once,
    so that a CuPy built for another CUDA version answers False here rather than failing later)."""
    if "cuda" not in _BACKENDS:
        return False
    try:
        return int((_BACKENDS["cuda"].xp.arange(3) * 2).sum()) == 6
    except Exception:  # any failure of the probe (compiler, driver, library) means "not usable"
        return False


def cuda_device_count() -> int:
    return _BACKENDS["cuda"].xp.cuda.runtime.getDeviceCount() if cuda_is_available() else 0


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
    """The backend of a device name or minigrad.device ("cuda:0" is "cuda")."""
    b = _BACKENDS.get(device)
    if b is not None:
        return b
    name = str(device).partition(":")[0]
    if name not in _BACKENDS:
        hint = f" (it needs an NVIDIA GPU and {install_hint('cupy')})" if name == "cuda" else ""
        raise ValueError(f"unknown or unavailable device {str(device)!r}{hint}; available: {available_devices()}")
    return _BACKENDS[name]


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
    src, dst = backend_of_array(a), get_backend(device)
    if src is dst:
        return a
    return dst.xp.asarray(src.to_host(a))


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
    """The device's `xp.random.Generator`, created lazily from the last manual_seed ("cuda:0" draws from "cuda"'s)."""
    b = get_backend(device)
    if b.device not in _generators:
        _generators[b.device] = b.xp.random.default_rng(_seed)
    return _generators[b.device]


class Generator:
    """A random generator of one's own, as torch.Generator: `g = Generator().manual_seed(123)` makes
    the same draws on every run whatever else draws from the global generators. minigrad's
    rand, randn, randint, randperm and multinomial take it as `generator=`, and so do
    utils.data's DataLoader and random_split for their shuffles.

    It draws on the CPU, from a NumPy np.random.Generator (numpy_generator()), so a seed gives
    other numbers than PyTorch's generator does."""

    def __init__(self, device: str = "cpu") -> None:
        if get_backend(device).device != "cpu":
            raise ValueError(f"Generator: only device='cpu' is supported, got {device!r}")
        self.device = get_backend("cpu").device
        self.manual_seed(67280421310721)  # PyTorch's default seed

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    def numpy_generator(self) -> np.random.Generator:
        """The np.random.Generator it draws from; every draw moves its state on."""
        return self._rng


def get_rng_state() -> dict[str, Any]:
    """The CPU generator's state (a JSON-able dict), for exact resume."""
    return generator("cpu").bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    generator("cpu").bit_generator.state = state


@contextlib.contextmanager
def fork_rng() -> Iterator[None]:
    """As torch.random.fork_rng: inside, reseed and draw at will; on exit the global generators are
    the caller's again, as they were. Draws inside continue the caller's CPU stream (from a copy);
    a GPU generator cannot be copied (CuPy's state cannot be read), so there it starts from the last seed."""
    global _seed, _generators
    callers_seed, callers = _seed, _generators
    _generators = {d: copy.deepcopy(g) for d, g in callers.items() if isinstance(g, np.random.Generator)}
    try:
        yield
    finally:
        _seed, _generators = callers_seed, callers
