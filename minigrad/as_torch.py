"""Run a PyTorch script on minigrad, unchanged: `python -m minigrad.as_torch SCRIPT [ARGS...]`.

For that run, `import torch` gives minigrad, `torch.nn` gives minigrad.nn, `torch.nn.functional`
gives minigrad.functional, and every other `torch.X` gives `minigrad.X` (torch.optim,
torch.utils.data, torch.cuda, ...). The real PyTorch is never imported, even when it is installed,
so whatever the script computes, minigrad computed. A PyTorch name that minigrad does not have fails
where the script uses it, with an error that says so:

    AttributeError: torch.fft: minigrad does not have this PyTorch name (running under python -m minigrad.as_torch)

How: Python asks each finder in `sys.meta_path` in turn where a module comes from. `install()` puts
one first that answers every `torch...` import with a proxy module: a thin stand-in whose
attributes are the minigrad module's (`torch.tensor` is `minigrad.tensor`) and whose missing
attributes raise the error above. The script then runs as `python SCRIPT ARGS...` would run it:
`__name__ == "__main__"`, `sys.argv == [SCRIPT, *ARGS]`, the script's folder first on `sys.path`.
`python -m minigrad.as_torch -m PACKAGE.MODULE [ARGS...]` runs a module as `python -m` does.

In a notebook, `import minigrad.as_torch; minigrad.as_torch.install()` before `import torch`.

Read next: speed.py, the speed tricks, last.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType, SimpleNamespace
from typing import Any

USAGE = "usage: python -m minigrad.as_torch SCRIPT [ARGS...]  |  python -m minigrad.as_torch -m MODULE [ARGS...]"

# torch names that live somewhere else in minigrad; any other torch.X is minigrad.X
RENAMED = {"torch.nn.functional": "minigrad.functional"}
ABSENT = object()


def minigrad_name(torch_name: str) -> str:
    """The minigrad module that stands in for a torch module: 'torch.nn' -> 'minigrad.nn'."""
    for torch_prefix, minigrad_prefix in RENAMED.items():
        if torch_name == torch_prefix or torch_name.startswith(torch_prefix + "."):
            return minigrad_prefix + torch_name[len(torch_prefix):]
    return "minigrad" + torch_name[len("torch"):]


def missing(torch_name: str) -> str:
    return f"{torch_name}: minigrad does not have this PyTorch name (running under python -m minigrad.as_torch)"


class NotInMinigrad(ModuleNotFoundError):
    """A torch module with no minigrad counterpart (not a broken import inside one that exists)."""


class TorchProxy(ModuleType):
    """The module a script gets for `torch...`: minigrad's names under PyTorch's, nothing else.

    Its target is a minigrad module, or a namespace minigrad keeps as an attribute (torch.cuda is
    `minigrad.cuda`, a SimpleNamespace). A submodule (torch.nn) comes back as its own proxy, so
    `torch.nn.functional` keeps forwarding and keeps the error for what minigrad lacks.
    """

    def __init__(self, torch_name: str, target: ModuleType | SimpleNamespace):
        super().__init__(torch_name, target.__doc__ if isinstance(target, ModuleType) else None)
        self.__path__: list[str] = []  # a package, so `import torch.nn` asks the finder below
        self._minigrad = target

    def __getattr__(self, name: str) -> Any:  # called only for names the proxy itself does not hold
        if name.startswith("__"):  # probes such as __wrapped__ or __version__: minigrad's, or absent
            return getattr(self._minigrad, name)
        value = getattr(self._minigrad, name, ABSENT)
        if value is ABSENT or isinstance(value, (ModuleType, SimpleNamespace)):
            # torch.nn, torch.utils.data, torch.cuda...: a submodule, perhaps not imported yet
            try:
                return importlib.import_module(f"{self.__name__}.{name}")
            except NotInMinigrad:
                if value is ABSENT:
                    raise AttributeError(missing(f"{self.__name__}.{name}"), name=name, obj=self) from None
        return value

    def __dir__(self) -> list[str]:
        return dir(self._minigrad)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r}: {minigrad_name(self.__name__)}, under python -m minigrad.as_torch>"


class TorchFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """First in sys.meta_path: every `torch...` import becomes a proxy of what minigrad has there."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torch" and not fullname.startswith("torch."):
            return None  # not ours: the other finders look for it as usual
        # Never None for a torch name: that would let the next finder load the real torch.
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True, loader_state=stand_in(fullname))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return TorchProxy(spec.name, spec.loader_state)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the proxy is complete when made: nothing to execute


def stand_in(torch_name: str) -> ModuleType | SimpleNamespace:
    """What minigrad has for a torch module: its module, or a namespace attribute of the parent."""
    name = minigrad_name(torch_name)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # Only a missing minigrad module means "minigrad lacks it"; a broken import inside an
        # existing one is a bug to see as it is.
        if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
            raise
    parent, _, attr = torch_name.rpartition(".")
    value = getattr(sys.modules[parent]._minigrad, attr, None) if parent else None  # the parent is imported first
    if isinstance(value, SimpleNamespace):
        return value
    raise NotInMinigrad(missing(torch_name)) from None


def install() -> None:
    """From now on, `import torch` (and every torch submodule) in this process is minigrad."""
    if not any(isinstance(f, TorchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, TorchFinder())
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        if not isinstance(sys.modules[name], TorchProxy):
            del sys.modules[name]  # a real torch imported earlier would otherwise be reused


def main(argv: list[str] | None = None) -> None:
    """Run SCRIPT (or `-m MODULE`) with ARGS as `python` would, with torch replaced by minigrad."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + __doc__.split("\n\n")[1])
        sys.exit(0 if args else 2)
    if args[0] == "-m" and len(args) < 2:
        sys.exit(USAGE)
    install()
    try:
        if args[0] == "-m":
            sys.argv = args[1:]
            sys.path[0] = os.getcwd()  # as `python -m`: the current folder first
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = args
            sys.path[0] = os.path.dirname(os.path.abspath(args[0]))  # as `python SCRIPT`: its folder first
            runpy.run_path(args[0], run_name="__main__")
    except Exception as e:  # noqa: BLE001  (any error: printed as python prints it, then exit 1)
        # The traceback starts at the script, as `python SCRIPT` prints it: the launcher's frames go.
        tb = e.__traceback__
        while tb is not None and (tb.tb_frame.f_code.co_filename in (__file__, runpy.__file__)
                                  or tb.tb_frame.f_code.co_filename.startswith("<frozen")):
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb or e.__traceback__)
        sys.exit(1)


if __name__ == "__main__":
    main()
