"""Writes minigrad/testing/cupy_api.json: what the installed CuPy offers, for the strict fakegpu
backend to allow and nothing more. A maintainer's tool, kept out of the installed package:

    python tools/cupy_api.py   # from the repository; needs `pip install cupy-cuda12x`; no GPU needed

It records, from the package itself (importing CuPy works without a GPU; only making arrays
fails): every public name of `cupy` and of `cupy.random`, `cupy.linalg` and `cupy.fft`; the
keyword arguments and the number of positional arguments of each function (from its signature,
or for compiled functions from the signature CuPy writes on the first line of the docstring);
the methods and attributes of `cupy.ndarray` and of `cupy.random.Generator`; and which of
`reduce`, `accumulate`, `reduceat`, `outer` and `at` each ufunc really supports. The last is
probed: calling a method with a stand-in array shows whether CuPy goes on to use the array or
raises NotImplementedError at once (CuPy's `ufunc` defines all five methods on every ufunc and
refuses most of them inside).
"""
from __future__ import annotations

import ast
import inspect
import json
import types
from pathlib import Path
from typing import Any

from minigrad.extras import exit_if_missing, require

OUT = Path(__file__).resolve().parents[1] / "minigrad" / "testing" / "cupy_api.json"  # where fakegpu reads it
SUBMODULES = ("random", "linalg", "fft")
UFUNC_METHODS = ("reduce", "accumulate", "reduceat", "outer", "at")


def _from_docstring(fn: Any) -> inspect.Signature | None:
    """Cython writes `name(self, axis=None, ...) -> type` as a compiled function's first docstring line."""
    first = (getattr(fn, "__doc__", None) or "").strip().splitlines()[:1]
    if not first or "(" not in first[0]:
        return None
    text = first[0]
    depth, start = 0, text.index("(")
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            break
    params = text[start + 1 : i].replace("\\*", "*")
    try:
        tree = ast.parse(f"def f({params}): pass")
    except SyntaxError:
        return None
    args = tree.body[0].args  # type: ignore[attr-defined]
    kind = inspect.Parameter
    ps = [kind(a.arg, kind.POSITIONAL_ONLY) for a in args.posonlyargs]
    ps += [kind(a.arg, kind.POSITIONAL_OR_KEYWORD) for a in args.args]
    if args.vararg:
        ps.append(kind(args.vararg.arg, kind.VAR_POSITIONAL))
    ps += [kind(a.arg, kind.KEYWORD_ONLY) for a in args.kwonlyargs]
    if args.kwarg:
        ps.append(kind(args.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(ps)


def calling_rules(fn: Any, method: bool = False) -> dict[str, Any]:
    """{"keywords": names a caller may pass by keyword, or None for any;
    "positional": how many positional arguments it takes at most, or None for any}."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = _from_docstring(fn)
    if sig is None:
        return {"keywords": None, "positional": None}
    params = list(sig.parameters.values())
    if method and params and params[0].name == "self":
        params = params[1:]
    kinds = {p.kind for p in params}
    P = inspect.Parameter
    keywords = [p.name for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)]
    positional = sum(p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD) for p in params)
    return {
        "keywords": None if P.VAR_KEYWORD in kinds else keywords,
        "positional": None if P.VAR_POSITIONAL in kinds else positional,
    }


class _Probe(Exception):
    pass


class _StandIn:
    """An object that raises _Probe as soon as anyone looks at it."""

    def __getattribute__(self, name: str) -> Any:
        if name == "__class__":
            return _StandIn
        raise _Probe(name)


def supported_methods(ufunc: Any) -> list[str]:
    out = []
    for m in UFUNC_METHODS:
        try:
            getattr(ufunc, m)(_StandIn(), _StandIn())
        except NotImplementedError:
            continue  # CuPy refused before touching the array
        except Exception:  # it went on to use the array (or to make one on the missing GPU): supported
            pass
        out.append(m)
    return out


def describe_namespace(mod: Any) -> dict[str, Any]:
    import cupy

    names: dict[str, Any] = {}
    for name in sorted(dir(mod)):
        if name.startswith("_"):
            continue
        obj = getattr(mod, name)
        if isinstance(obj, cupy.ufunc):
            sig = _from_docstring(obj)  # "add(x1, x2, /, out=None, *, casting='same_kind', dtype=None)"
            kw = [p.name for p in sig.parameters.values() if p.kind != p.POSITIONAL_ONLY] if sig else None
            names[name] = {"kind": "ufunc", "keywords": kw, "positional": obj.nargs, "methods": supported_methods(obj)}
        elif isinstance(obj, type):
            names[name] = {"kind": "type"}
        elif isinstance(obj, types.ModuleType):
            names[name] = {"kind": "module"}
        elif callable(obj):
            names[name] = {"kind": "function", **calling_rules(obj)}
        else:
            names[name] = {"kind": "value"}
    return names


def describe_class(cls: type) -> dict[str, Any]:
    methods, attributes = {}, []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if callable(attr) and not isinstance(attr, (property, type)):
            methods[name] = calling_rules(getattr(cls, name), method=True)
        else:
            attributes.append(name)
    return {"methods": methods, "attributes": attributes}


def main() -> None:
    cupy = require("cupy", "python tools/cupy_api.py")

    api = {
        "cupy_version": cupy.__version__,
        "made_by": "python tools/cupy_api.py",
        "cupy": describe_namespace(cupy),
        **{f"cupy.{m}": describe_namespace(getattr(cupy, m)) for m in SUBMODULES},
        "ndarray": describe_class(cupy.ndarray),
        "Generator": describe_class(cupy.random.Generator),
    }
    OUT.write_text(json.dumps(api, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} from CuPy {cupy.__version__}: {len(api['cupy'])} names")


if __name__ == "__main__":
    with exit_if_missing():
        main()
