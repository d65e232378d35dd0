"""minigrad.save / minigrad.load: round trips, atomic writes, refused input, and files written by
torch.save (read without torch and without running anything from the file)."""
from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minigrad
from helpers import need
from minigrad import nn, optim
from minigrad.serialization import load, save

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"]
SHAPES = [(), (0,), (0, 3), (5,), (2, 3, 4)]


def _values(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(shape) * 5).astype(dtype)


def _same(a: minigrad.Tensor, b: np.ndarray) -> None:
    assert isinstance(a, minigrad.Tensor)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(), b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tensor_round_trip(tmp_path: Path, device: str, dtype: str, shape: tuple[int, ...]) -> None:
    values = _values(shape, dtype)
    t = minigrad.tensor(values, dtype=dtype, device=device)
    save({"t": t}, tmp_path / "t.pt")
    back = load(tmp_path / "t.pt", map_location=device)["t"]
    _same(back, values)
    assert back.device == device and not back.requires_grad


def test_nested_structure_round_trip(tmp_path: Path) -> None:
    obj = {
        "tensors": [minigrad.randn(2, 3, requires_grad=True), minigrad.tensor(7), minigrad.zeros(0, 4)],
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalars": (np.float32(1.5), np.int64(-3), np.bool_(True)),
        "numbers": [1, -2**70, 2.5, float("inf"), True, False, None, "text", ""],
        0: {"a": (1, (2, [3])), (1, "k"): None},  # int and tuple keys keep their type
        2.5: [],
        None: {},
    }
    save(obj, tmp_path / "o.pt")
    back = load(tmp_path / "o.pt")
    assert back.keys() == obj.keys() and list(back) == list(obj)
    for a, b in zip(back["tensors"], obj["tensors"]):
        _same(a, b.numpy())
        assert a.requires_grad == b.requires_grad
    assert type(back["array"]) is np.ndarray and back["array"].dtype == np.int16
    np.testing.assert_array_equal(back["array"], obj["array"])
    for a, b in zip(back["scalars"], obj["scalars"]):
        assert type(a) is type(b) and a == b
    assert back["numbers"] == obj["numbers"] and type(back["numbers"][1]) is int
    assert back[0] == obj[0] and back[2.5] == [] and back[None] == {}
    assert isinstance(back["scalars"], tuple) and isinstance(back[0]["a"][1][1], list)
    assert np.isnan(load_one(tmp_path, float("nan")))


def load_one(tmp_path: Path, value: object) -> object:
    save(value, tmp_path / "one.pt")
    return load(tmp_path / "one.pt")


def test_tied_tensor_written_once(tmp_path: Path) -> None:
    w = minigrad.randn(100, 100)
    save({"a": w, "b": w.detach()}, tmp_path / "tied.pt")
    with zipfile.ZipFile(tmp_path / "tied.pt") as z:
        assert [n for n in z.namelist() if n.startswith("arrays/")] == ["arrays/0.npy"]
    back = load(tmp_path / "tied.pt")
    _same(back["a"], w.numpy())
    _same(back["b"], w.numpy())


def test_book_checkpoint_resumes_training(tmp_path: Path, device: str) -> None:
    """The book's `torch.save({"model_state_dict": ..., "optimizer_state_dict": ...})`: a fresh
    model and optimizer loaded from it take the same next step as the originals."""

    def make() -> tuple[nn.Module, optim.Optimizer]:
        model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)).to(device)
        return model, optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)

    def step(model: nn.Module, opt: optim.Optimizer) -> None:
        loss = (model(x) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    x = minigrad.randn(5, 3, device=device)
    model, opt = make()
    step(model, opt)
    save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict()}, tmp_path / "ckpt.pth")
    minigrad.manual_seed(1)
    model2, opt2 = make()
    ckpt = load(tmp_path / "ckpt.pth", map_location=device, weights_only=True)
    model2.load_state_dict(ckpt["model_state_dict"])
    opt2.load_state_dict(ckpt["optimizer_state_dict"])
    step(model, opt)
    step(model2, opt2)
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_map_location(tmp_path: Path, gpu_device: str) -> None:
    t = minigrad.arange(4)
    save(t, tmp_path / "t.pt")
    assert load(tmp_path / "t.pt").device == minigrad.get_default_device()
    assert load(tmp_path / "t.pt", map_location="cpu").device == "cpu"
    assert load(tmp_path / "t.pt", map_location=minigrad.device("cpu")).device == "cpu"
    assert load(tmp_path / "t.pt", map_location=f"{gpu_device}:0").device == gpu_device

    class Device:  # what torch.device and minigrad.device offer: .type
        type = gpu_device

    moved = load(tmp_path / "t.pt", map_location=Device())
    assert moved.device == gpu_device and moved.dtype == np.int64
    save({"m": np.ones(3)}, tmp_path / "a.pt")
    assert minigrad.backend.device_of(load(tmp_path / "a.pt", map_location=gpu_device)["m"]) == gpu_device


def test_map_location_refused(tmp_path: Path) -> None:
    save(1, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="unknown or unavailable device 'tpu'"):
        load(tmp_path / "x.pt", map_location="tpu")
    with pytest.raises(TypeError, match=r"load: map_location=\{'cuda:0': 'cpu'\} is not supported"):
        load(tmp_path / "x.pt", map_location={"cuda:0": "cpu"})
    with pytest.raises(TypeError, match="weights_only must be a bool"):
        load(tmp_path / "x.pt", weights_only="yes")
    with pytest.raises(TypeError, match="mmap"):
        load(tmp_path / "x.pt", mmap=True)  # type: ignore[call-arg]


def test_file_objects(tmp_path: Path) -> None:
    buf = io.BytesIO()
    save({"w": minigrad.randn(3)}, buf)
    buf.seek(0)
    assert load(buf)["w"].shape == (3,)
    with open(tmp_path / "f.pt", "wb") as f:
        save([1, 2], f)
    with open(tmp_path / "f.pt", "rb") as f:
        assert load(f) == [1, 2]
    assert load(str(tmp_path / "f.pt")) == [1, 2]


def test_atomic_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    save({"w": minigrad.ones(3)}, path)
    before = path.read_bytes()
    real = np.lib.format.write_array
    calls = []

    def failing(fp, array, **kw):  # writes the first array, then the disk is "full"
        if calls:
            raise OSError(28, "No space left on device")
        calls.append(1)
        real(fp, array, **kw)

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    with pytest.raises(OSError, match="No space left"):
        save({"w": minigrad.zeros(3), "v": minigrad.zeros(2)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)["w"].numpy(), np.ones(3, dtype=np.float32))


def test_save_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    with pytest.raises(TypeError, match=r"type object at obj\['a'\]\[1\]"):
        save({"a": [1, object()]}, path)
    with pytest.raises(TypeError, match=r"type Linear at obj\['model'\].*save its state_dict\(\) instead"):
        save({"model": nn.Linear(2, 2)}, path)
    with pytest.raises(TypeError, match=r"dtype <U1 at obj\[0\]"):
        save([np.array(["a"])], path)
    with pytest.raises(TypeError, match=r"dtype object at obj"):
        save(np.array([None]), path)
    with pytest.raises(TypeError, match=r"dict key of type Tensor .* in obj\['d'\]"):
        save({"d": {minigrad.ones(1): 1}}, path)
    with pytest.raises(TypeError, match="type bytes at obj"):
        save(b"raw", path)
    assert not path.exists() and os.listdir(tmp_path) == []  # refused before anything was written


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


class _Boom:
    """Unpickling it would run `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match=r"text.pt' is not a file written by minigrad.save or torch.save \(not a zip"):
        load(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load(tmp_path / "missing.pt")
    other = _zip(tmp_path / "other.zip", {"readme.txt": b"hi"})
    with pytest.raises(ValueError, match="neither a minigrad.save file .* nor a torch.save file"):
        load(other)
    cases = {
        b"{not json": "minigrad.json is not JSON",
        b'{"format": "other", "object": 1}': "does not describe a minigrad.save file",
        b'{"format": "minigrad.save", "version": 2, "object": 1}': "format version 2; this minigrad reads version 1",
        b'{"format": "minigrad.save", "version": 1, "object": {"tensor": 0, "requires_grad": false}}':
            "array 0 is missing",
        b'{"format": "minigrad.save", "version": 1, "object": {"eval": "1"}}': "unexpected entry",
        b'{"format": "minigrad.save", "version": 1, "object": {"dict": [[[1], 2]]}}': "unhashable key",
    }
    for i, (header, message) in enumerate(cases.items()):
        with pytest.raises(ValueError, match=message):
            load(_zip(tmp_path / f"bad{i}.pt", {"minigrad.json": header}))


def test_load_never_unpickles_an_array(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    npy = io.BytesIO()
    np.save(npy, np.array([_Boom(marker)], dtype=object), allow_pickle=True)
    header = b'{"format": "minigrad.save", "version": 1, "object": {"array": 0}}'
    path = _zip(tmp_path / "evil.pt", {"minigrad.json": header, "arrays/0.npy": npy.getvalue()})
    with pytest.raises(ValueError, match="arrays/0.npy"):
        load(path)
    assert not marker.exists()


def test_malicious_torch_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _zip(tmp_path / "evil.pt", {"archive/data.pkl": pickle.dumps({"w": _Boom(marker)}, protocol=2)})
    refused = r"names the global posix.system, which is not allowed.*nothing in the file was run"
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load(path)
    assert not marker.exists()


# ---- files written by PyTorch -------------------------------------------------------------


def _torch_round_trip(tmp_path: Path, obj: object) -> object:
    torch = need("torch")
    torch.save(obj, tmp_path / "t.pth")
    return load(tmp_path / "t.pth")


def _same_as_torch(a: minigrad.Tensor, t: object) -> None:
    _same(a, t.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"])
def test_torch_tensors(tmp_path: Path, dtype: str) -> None:
    torch = need("torch")
    t = torch.from_numpy(_values((3, 4), dtype))
    back = _torch_round_trip(tmp_path, {"t": t, "scalar": t[1, 2], "empty": t[:0]})
    for name in ("t", "scalar", "empty"):
        _same_as_torch(back[name], {"t": t, "scalar": t[1, 2], "empty": t[:0]}[name])


def test_torch_views(tmp_path: Path) -> None:
    """Views keep their storage: an offset, strides, a transpose, a step."""
    torch = need("torch")
    base = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5)
    views = {"slice": base[:, 1:3], "offset": base[2], "transposed": base.transpose(0, 2), "step": base[::2, :, 1::2],
             "expanded": torch.arange(3.0).expand(4, 3)}
    assert views["offset"].storage_offset() == 40 and not views["transposed"].is_contiguous()
    back = _torch_round_trip(tmp_path, views)
    for name, v in views.items():
        _same_as_torch(back[name], v)


def test_torch_model_state_dict(tmp_path: Path) -> None:
    """A PyTorch model's state dict loads into the same minigrad model and gives the same outputs."""
    torch = need("torch")
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    back = _torch_round_trip(tmp_path, tmodel.state_dict())
    assert isinstance(back, collections.OrderedDict) and list(back) == list(tmodel.state_dict())
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model.load_state_dict(back)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    expected = tmodel(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model(minigrad.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_torch_nested_dict_and_optimizer(tmp_path: Path) -> None:
    torch = need("torch")
    model = torch.nn.Linear(2, 3)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    obj = {"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
           "epoch": 3, "names": ["a", "b"], "pair": (1.5, None), "flag": True}
    back = _torch_round_trip(tmp_path, obj)
    assert (back["epoch"], back["names"], back["pair"], back["flag"]) == (3, ["a", "b"], (1.5, None), True)
    _same_as_torch(back["model_state_dict"]["weight"], model.weight.detach())
    state = back["optimizer_state_dict"]["state"][0]
    _same_as_torch(state["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    _same_as_torch(state["step"], opt.state_dict()["state"][0]["step"])
    assert back["optimizer_state_dict"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_torch_file_object_and_map_location(tmp_path: Path, gpu_device: str) -> None:
    torch = need("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2, 2)}, buf)  # a file object: the archive's folder is "archive"
    buf.seek(0)
    w = load(buf, map_location=gpu_device)["w"]
    assert w.device == gpu_device and w.dtype == np.float32


def test_torch_files_that_need_more_than_a_state_dict_are_refused(tmp_path: Path) -> None:
    torch = need("torch")
    cases = {"torch.nn.modules.linear.Linear": torch.nn.Linear(2, 2),
             "torch._utils._rebuild_parameter": {"p": torch.nn.Parameter(torch.ones(2))},
             "bfloat16": torch.ones(2, dtype=torch.bfloat16)}
    for message, obj in cases.items():
        torch.save(obj, tmp_path / "x.pth")
        with pytest.raises(pickle.UnpicklingError, match=message):
            load(tmp_path / "x.pth")


def test_torch_tensor_outside_its_storage_is_refused(tmp_path: Path) -> None:
    """A crafted file whose view reaches past its storage would read foreign memory."""
    torch = need("torch")
    storage = torch.arange(4.0).untyped_storage()

    class Oversized:
        def __reduce__(self):
            typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)
            return torch._utils._rebuild_tensor_v2, (typed, 2, (1000,), (1,), False, collections.OrderedDict())

    torch.save({"w": Oversized()}, tmp_path / "x.pth")
    past = r"size \(1000,\), stride \(1,\) at offset 2 reaches past its storage of 4 elements"
    with pytest.raises(pickle.UnpicklingError, match=past):
        load(tmp_path / "x.pth")
