"""Checkpoints: one .npz file of arrays plus a JSON header, written atomically, loaded without pickle.

Written to a temporary file in the same folder, flushed to disk, then renamed
over the old checkpoint: a rename is atomic, so a crash mid-save leaves the
previous checkpoint whole. Loaded with allow_pickle=False: a checkpoint is data
and can never run code.

Layout: "meta" holds the JSON header (config, iteration, RNG states,
tokenizer...) as UTF-8 bytes; "model/<name>" the parameters;
"optim/<index>/<name>" the optimizer state.

Read next: pretrained.py (a run kept in a folder as a base to fine-tune), then sample.py.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.backend import backend_of_array


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | Path, meta: dict[str, Any], model_state: dict[str, Any], optim_state: dict[str, Any] | None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    for name, t in model_state.items():
        arrays[f"model/{name}"] = t.numpy()
    if optim_state is not None:
        for idx, entries in optim_state["state"].items():
            for name, arr in entries.items():
                arrays[f"optim/{idx}/{name}"] = _host(arr)
        meta_optim = {"param_groups": optim_state["param_groups"], "step": optim_state["step"]}
        arrays["optim_meta"] = np.frombuffer(json.dumps(meta_optim).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)  # training removes leftovers
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a quota: say which file could not be written
            raise OSError(e.errno, f"could not write checkpoint {str(path)!r} ({e.strerror or e}); "
                          f"the previous one, if any, is intact") from None
        raise


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]:
    """(meta, model state, optimizer state or None); CheckpointError if the file is missing or damaged."""
    path = _existing(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if "meta" not in arrays:
        raise CheckpointError(f"checkpoint {str(path)!r} has no metadata: not a checkpoint written by gpt")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has corrupt metadata ({e})") from None
    model = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = None
    if "optim_meta" in arrays:
        try:
            om = json.loads(arrays["optim_meta"].tobytes().decode("utf-8"))
            param_groups, step = om["param_groups"], om["step"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has corrupt optimizer metadata ({type(e).__name__}: {e})"
            ) from None
        state: dict[int, dict[str, np.ndarray]] = {}
        for k, v in arrays.items():
            if k.startswith("optim/"):
                _, idx, name = k.split("/", 2)
                state.setdefault(int(idx), {})[name] = v
        optim = {"state": state, "param_groups": param_groups, "step": step}
    return meta, model, optim


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the JSON header of a checkpoint (the arrays stay on disk)."""
    path = _existing(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise CheckpointError(f"checkpoint {str(path)!r} has no metadata: not a checkpoint written by gpt")
            raw = z["meta"]
        return json.loads(raw.tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, UnicodeDecodeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt ({type(e).__name__}: {e})") from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        hint = f" (did you mean {str(path / 'ckpt.npz')!r}?)" if (path / "ckpt.npz").is_file() else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (train first: python -m gpt train"
                              f"{' --out_dir ' + str(path.parent) if path.parent != Path('out') else ''})")
    return path


def _host(arr: Any) -> np.ndarray:
    return backend_of_array(arr).to_host(arr)
