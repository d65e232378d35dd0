"""Each example is a script a reader can copy out with the library installed: it imports the standard
library, numpy, the optional extras and the public modules of gpt and minigrad, and nothing else:
no other example, no private name, no change to sys.path, no import by file path or string."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TOOLS = {"run_the_book.py", "reproduce.py"}  # they drive other scripts: not examples to copy out
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in TOOLS)
LIBRARY = {"gpt", "minigrad"}
THIRD_PARTY = {"numpy", "torch", "sklearn", "matplotlib"}  # numpy and the extras of pyproject.toml
DYNAMIC = {"importlib", "runpy"}  # imports by path or string hide what a script needs


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def problems(source: str, siblings: set[str]) -> list[str]:
    """What keeps a script from standing alone, one line each (empty: it stands alone)."""
    found: list[str] = []
    library_names: set[str] = set()  # names bound to a gpt or minigrad module or object
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append(f"line {node.lineno}: relative import")
            continue
        if isinstance(node, ast.Import):
            modules = [(a.name, a.asname or a.name.split(".")[0], [a.name.split(".")[-1]]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module, None, [a.name for a in node.names])]
            if node.module.split(".")[0] in LIBRARY:
                library_names |= {a.asname or a.name for a in node.names}
        else:
            if isinstance(node, ast.Attribute):
                root = node.value
                while isinstance(root, ast.Attribute):  # gpt.data._plays_dir: the root is gpt
                    root = root.value
                name = ast.unparse(node)
                if name == "sys.path":
                    found.append(f"line {node.lineno}: sys.path")
                elif isinstance(root, ast.Name) and root.id in library_names and private(node.attr):
                    found.append(f"line {node.lineno}: private name {name}")
            continue
        for module, bound, names in modules:
            top = module.split(".")[0]
            if top in LIBRARY:
                if bound:
                    library_names.add(bound)
                if any(private(part) for part in module.split(".")) or any(private(n) for n in names):
                    found.append(f"line {node.lineno}: private name from {module}: {names}")
                elif importlib.util.find_spec(module) is None:
                    found.append(f"line {node.lineno}: no module {module}")
            elif top == "examples" or top in siblings:
                found.append(f"line {node.lineno}: imports another example ({module})")
            elif top in DYNAMIC:
                found.append(f"line {node.lineno}: dynamic import ({module})")
            elif top not in sys.stdlib_module_names and top not in THIRD_PARTY:
                found.append(f"line {node.lineno}: {module} is neither the library, the standard library nor an extra")
    return found


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_example_imports_only_the_public_library(script):
    siblings = {Path(s).stem for s in SCRIPTS} | {Path(t).stem for t in TOOLS}
    assert problems((EXAMPLES / script).read_text(encoding="utf-8"), siblings) == []


def test_every_example_is_checked():
    assert SCRIPTS == ["align_shakespeare.py", "bert_shakespeare.py", "finetune_classify.py",
                       "finetune_instructions.py", "long_context.py", "make_smaller.py", "mlp_spirals.py",
                       "moe_shakespeare.py", "read_numbers.py", "sort_digits.py", "t5_multitask.py",
                       "torch_baseline.py", "translate_numbers.py", "vit_digits.py"]


@pytest.mark.parametrize("source, problem", [
    ("from finetune_classify import pretrained_gpt", "imports another example"),
    ("from examples.finetune_classify import SEQ", "imports another example"),
    ("import sort_digits", "imports another example"),
    ("from . import helpers", "relative import"),
    ("from gpt.data import _plays_dir", "private name from gpt.data"),
    ("from minigrad._secret import x", "private name from minigrad._secret"),
    ("import gpt.data\ngpt.data._plays_dir()", "private name gpt.data._plays_dir"),
    ("from gpt import data\ndata._plays_dir()", "private name data._plays_dir"),
    ("import sys\nsys.path.insert(0, 'examples')", "sys.path"),
    ("import sys\nsys.path[0] = '.'", "sys.path"),
    ("import importlib\nm = importlib.import_module('x')", "dynamic import"),
    ("import pandas", "neither the library"),
    ("from gpt.nothing_here import x", "no module gpt.nothing_here"),
    ("def f():\n    from finetune_classify import BASE", "imports another example"),  # inside a function too
])  # fmt: skip
def test_what_keeps_a_script_from_standing_alone_is_found(source, problem):
    found = problems(source, {"finetune_classify", "sort_digits"})
    assert len(found) == 1 and problem in found[0], found


def test_standard_imports_pass():
    source = ("import argparse, json\nimport numpy as np\nimport minigrad.functional as F\nfrom minigrad import nn\n"
              "from gpt.genres import genre_split\nimport torch\nF.cross_entropy\nnn.__name__\n")
    assert problems(source, {"finetune_classify"}) == []
