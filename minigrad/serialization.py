"""save and load, as torch.save and torch.load, without pickle: a file is data and never runs code.

minigrad.save writes a zip of one .npy file per array plus minigrad.json, a JSON description of
the structure around them (dicts, lists, tuples, numbers, strings, None), so `unzip -p model.pt
minigrad.json` shows what a file holds and np.load(allow_pickle=False) reads each array.
minigrad.load reads those files and also state dicts written by torch.save (a zip holding a
pickle, data.pkl, and one raw file per storage), with an unpickler that knows three globals
only (OrderedDict, torch's tensor rebuilder, its storage types), each mapped to minigrad's own
code: torch need not be installed, and a file naming anything else (os.system, a model class)
is refused before anything in it runs.

Leaves out: whole modules and arbitrary objects (save model.state_dict()), bfloat16, storage
sharing between tensors (a tensor saved twice is written once, loaded as two copies), mmap.

Read next: utils/data.py.
"""
from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

from minigrad.backend import backend_of_array, get_backend, get_default_device, to_device
from minigrad.tensor import Tensor

File = Union[str, "os.PathLike[str]", IO[bytes]]

FORMAT, VERSION = "minigrad.save", 1
HEADER = "minigrad.json"  # the zip member that describes the structure; arrays are arrays/<i>.npy


# ---- save -----------------------------------------------------------------------------


def save(obj: Any, f: File) -> None:
    """Write `obj` (tensors, NumPy/CuPy arrays and scalars, numbers, strings, bools, None, in
    dicts, lists and tuples) to a path or a binary file object. A path is written atomically:
    to a temporary file beside it, then renamed over it, so a failure leaves the old file whole."""
    arrays: list[np.ndarray] = []
    header = {"format": FORMAT, "version": VERSION, "object": _encode(obj, "obj", arrays, {})}
    if not isinstance(f, (str, os.PathLike)):
        _write(f, header, arrays)
        return
    path = Path(f)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(fd, "wb") as out:
            _write(out, header, arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(f: IO[bytes], header: dict[str, Any], arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:  # stored, not deflated: as np.savez, torch.save
        z.writestr(HEADER, json.dumps(header))
        for i, arr in enumerate(arrays):
            with z.open(f"arrays/{i}.npy", "w", force_zip64=True) as member:  # zip64: members over 2 GiB
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _encode(obj: Any, where: str, arrays: list[Any], seen: dict[int, int]) -> Any:
    """obj as JSON: None, bools, numbers and strings as themselves, lists as JSON lists, the rest
    as a one-key object: {"tuple": [...]}, {"dict": [[key, value], ...]} (keys keep their type),
    {"tensor": i, "requires_grad": b}, {"array": i}, {"scalar": i} (a NumPy scalar, as a 0-d array);
    i numbers the arrays. `where` names obj's place in the structure for errors."""
    if isinstance(obj, Tensor):
        return {"tensor": _array_index(obj.data, where, arrays, seen), "requires_grad": obj.requires_grad}
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return {"scalar": _array_index(np.asarray(obj), where, arrays, seen)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [_encode(v, f"{where}[{i}]", arrays, seen) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, f"{where}[{i}]", arrays, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, dict):  # OrderedDict and other dict subclasses come back as plain dicts
        return {"dict": [[_encode_key(k, where), _encode(v, f"{where}[{k!r}]", arrays, seen)] for k, v in obj.items()]}
    try:
        backend_of_array(obj)
    except TypeError:
        hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"save: cannot save an object of type {type(obj).__name__} at {where}: minigrad.save writes "
                        f"tensors, arrays, numbers, strings, bools and None in dicts, lists and tuples{hint}") from None
    return {"array": _array_index(obj, where, arrays, seen)}


def _encode_key(key: Any, where: str) -> Any:
    if isinstance(key, tuple):
        return {"tuple": [_encode_key(k, where) for k in key]}
    if key is None or (isinstance(key, (bool, int, float, str)) and not isinstance(key, np.generic)):
        return key
    raise TypeError(f"save: cannot save a dict key of type {type(key).__name__} ({key!r}) in {where}: "
                    f"keys must be strings, numbers, bools, None or tuples of them")


def _array_index(arr: Any, where: str, arrays: list[Any], seen: dict[int, int]) -> int:
    """The number of arr in the file, each array written once (tied weights share one)."""
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"save: cannot save an array of dtype {arr.dtype} at {where}: only booleans and numbers")
    if id(arr) not in seen:
        seen[id(arr)] = len(arrays)
        arrays.append(backend_of_array(arr).to_host(arr))
    return seen[id(arr)]


# ---- load -----------------------------------------------------------------------------


def load(f: File, map_location: Any = None, weights_only: bool = True) -> Any:
    """Read what minigrad.save wrote, or a state dict that torch.save wrote. Tensors and arrays come
    back on `map_location` (None: the default device; "cpu", "cuda" or a device object), each tensor
    with its dtype. Loading is always weights-only: no code from the file ever runs, whatever
    `weights_only` says (False is accepted for PyTorch code that passes it; it allows nothing more)."""
    if not isinstance(weights_only, bool):
        raise TypeError(f"load: weights_only must be a bool, got {weights_only!r}")
    device = _device(map_location)
    name = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else f"file object {getattr(f, 'name', f)!r}"
    try:
        z = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise ValueError(f"load: {name} is not a file written by minigrad.save or torch.save (not a zip archive; "
                         f"PyTorch's legacy format from before 1.6 is not supported)") from None
    with z:
        names = set(z.namelist())
        if HEADER in names:
            return _MinigradReader(z, name, device).read()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) == 1:
            return _TorchReader(z, name, device, pickles[0][: -len("data.pkl")]).read()
        raise ValueError(f"load: {name} is a zip archive but neither a minigrad.save file (no {HEADER}) "
                         f"nor a torch.save file (no <name>/data.pkl)")


def _device(map_location: Any) -> str:
    """map_location as a backend name: "cuda:0" and device("cuda") -> "cuda" (minigrad uses the
    current GPU); dicts and functions, which torch.load also takes, are refused."""
    if map_location is None:
        return get_default_device()
    if not isinstance(map_location, str) and not hasattr(map_location, "type"):
        raise TypeError(f"load: map_location={map_location!r} is not supported: give None, a device name "
                        f"('cpu', 'cuda') or a device object")
    device = str(getattr(map_location, "type", map_location)).partition(":")[0]
    get_backend(device)  # an unknown or unavailable device fails here, naming itself
    return device


def _tensor(arr: np.ndarray, device: str, requires_grad: bool) -> Tensor:
    return Tensor(arr, dtype=arr.dtype, device=device, requires_grad=requires_grad and arr.dtype.kind == "f")


class _MinigradReader:
    """Decodes minigrad.json, reading each array when the structure first asks for it."""

    def __init__(self, z: zipfile.ZipFile, name: str, device: str) -> None:
        self.z, self.name, self.device = z, name, device
        self.names = set(z.namelist())
        self.arrays: dict[int, np.ndarray] = {}

    def bad(self, what: str) -> ValueError:
        return ValueError(f"load: {self.name} is not a valid minigrad.save file: {what}")

    def read(self) -> Any:
        try:
            header = json.loads(self.z.read(HEADER).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self.bad(f"{HEADER} is not JSON ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT or "object" not in header:
            raise self.bad(f"{HEADER} does not describe a {FORMAT} file")
        if header.get("version") != VERSION:
            raise self.bad(f"format version {header.get('version')!r}; this minigrad reads version {VERSION}")
        return self.decode(header["object"])

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or not node:
            raise self.bad(f"unexpected entry {node!r}")
        kind = next(iter(node))
        if kind == "tuple" and isinstance(node[kind], list):
            return tuple(self.decode(v) for v in node[kind])
        pairs = kind == "dict" and isinstance(node[kind], list)
        if pairs and all(isinstance(kv, list) and len(kv) == 2 for kv in node[kind]):
            items = [(self.decode(k), self.decode(v)) for k, v in node[kind]]
            try:
                return dict(items)
            except TypeError:  # an unhashable key
                raise self.bad(f"a dict has an unhashable key in {node!r:.200}") from None
        if kind == "tensor" and isinstance(node.get("requires_grad"), bool):
            return _tensor(self.array(node[kind]), self.device, node["requires_grad"])
        if kind == "array":
            return to_device(self.array(node[kind]), self.device)
        if kind == "scalar":
            return self.array(node[kind])[()]
        raise self.bad(f"unexpected entry {node!r:.200}")

    def array(self, i: Any) -> np.ndarray:
        member = f"arrays/{i}.npy"
        if not isinstance(i, int) or isinstance(i, bool) or member not in self.names:
            raise self.bad(f"array {i!r} is missing")
        if i not in self.arrays:
            try:
                with self.z.open(member) as fp:
                    self.arrays[i] = np.lib.format.read_array(fp, allow_pickle=False)
            except ValueError as e:  # a damaged header, or an object array (would need pickle)
                raise self.bad(f"{member}: {e}") from None
        return self.arrays[i]


# ---- PyTorch's files --------------------------------------------------------------------

# torch.save names each storage's type as a global "torch.<Kind>Storage" (torch 1.6 to 2.13)
_TORCH_STORAGES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}


class _TorchReader(pickle.Unpickler):
    """Reads <prefix>data.pkl, whose storages live in <prefix>data/<key>. Python's unpickler runs
    the functions a pickle names through find_class; this one answers only with minigrad's own
    stand-ins for the globals a plain state dict needs, so nothing else can ever be called."""

    def __init__(self, z: zipfile.ZipFile, name: str, device: str, prefix: str) -> None:
        super().__init__(io.BytesIO(z.read(prefix + "data.pkl")), encoding="utf-8")
        self.z, self.name, self.device, self.prefix = z, name, device, prefix
        self.names = set(z.namelist())
        order = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in self.names else "little"
        if order not in ("little", "big"):
            raise self.bad(f"byteorder {order!r}")
        self.order = "<" if order == "little" else ">"
        self.storages: dict[str, np.ndarray] = {}

    def bad(self, what: str) -> pickle.UnpicklingError:
        return pickle.UnpicklingError(f"load: {self.name} is a torch.save file that minigrad cannot read: {what}")

    def read(self) -> Any:
        try:
            return self.load()
        except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            # a malformed pickle: cut short, a bad opcode, a wrong argument to an allowed global
            raise self.bad(f"{type(e).__name__}: {e}") from None

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGES:
            return np.dtype(_TORCH_STORAGES[name]).newbyteorder(self.order)
        if module == "torch" and name == "BFloat16Storage":
            raise self.bad("it holds a bfloat16 tensor, which NumPy cannot hold (convert it in PyTorch: t.float())")
        raise self.bad(f"it names the global {module}.{name}, which is not allowed (only tensors, OrderedDict, "
                       f"numbers, strings, lists, tuples and dicts load: state dicts); nothing in the file was run")

    def persistent_load(self, pid: Any) -> np.ndarray:
        """('storage', dtype from find_class, key, location, numel) -> the storage's elements."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], np.dtype)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise self.bad(f"unexpected persistent id {pid!r:.200}")
        _, dtype, key, _location, numel = pid
        if key not in self.storages:
            member = f"{self.prefix}data/{key}"
            if member not in self.names:
                raise self.bad(f"storage {member} is missing")
            raw = self.z.read(member)
            if len(raw) < numel * dtype.itemsize:
                raise self.bad(f"storage {member} holds {len(raw)} bytes, {numel} elements of {dtype} "
                               f"need {numel * dtype.itemsize}")
            self.storages[key] = np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="))
        return self.storages[key]

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, metadata: Any = None) -> Tensor:
        """torch._utils._rebuild_tensor_v2: the view of `storage` that starts at element `offset`
        and steps `stride[d]` elements along dim d, after checking that it stays inside."""
        if not (isinstance(storage, np.ndarray) and isinstance(offset, int) and offset >= 0 and _naturals(size)
                and _naturals(stride) and len(size) == len(stride) and isinstance(requires_grad, bool)):
            raise self.bad(f"unexpected tensor arguments {(offset, size, stride, requires_grad)!r:.200}")
        if backward_hooks:
            raise self.bad("a tensor has backward hooks, which would be code")
        if math.prod(size) == 0:
            arr = np.zeros(size, dtype=storage.dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.size:
                raise self.bad(f"a tensor of size {size}, stride {stride} at offset {offset} reaches past its "
                               f"storage of {storage.size} elements")
            arr = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * storage.itemsize for s in stride]).copy()
        return _tensor(arr, self.device, requires_grad)


def _naturals(v: Any) -> bool:
    return isinstance(v, tuple) and all(isinstance(n, int) and n >= 0 for n in v)
