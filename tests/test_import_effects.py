"""Importing the library changes nothing in the process, and the product imports no test code.

- malloc: minigrad.speed.tune_malloc changes glibc's malloc for the whole process, so only a
  program that asks for it (`python -m gpt train`, `bench`) calls it. What shows whether it ran:
  glibc serves a 24 MiB block with its own mmap by default (mallinfo2's `hblkhd`, the bytes in
  such blocks, grows by it), and from the heap once tune_malloc raised the threshold to 32 MiB.
  Each probe runs in a fresh interpreter: a freed mmap block raises glibc's threshold for good.
- the test backend (minigrad/testing/): no module of gpt/ or minigrad/ outside it imports it at
  module level, nor anywhere but under `if <something> == "fakegpu":` (read with `ast`), and a
  fresh process that imports the product and takes a training step on the CPU has not loaded it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gpt.cli

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 24 * 2**20  # over glibc's default mmap threshold (128 KiB), under the tuned one (32 MiB)

# Run in a fresh interpreter: import the product, maybe tune malloc, then see where a BLOCK-byte
# array comes from, and take one training step of a tiny GPT on the CPU.
PROBE = f"""
import ctypes, json, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

import numpy as np
import minigrad, gpt, gpt.bench, gpt.cli, gpt.model, gpt.sample, gpt.train
from minigrad import speed

tuned = speed.tune_malloc() if sys.argv[1] == "tune" else False
before = libc.mallinfo2().hblkhd
block = np.ones({BLOCK}, np.uint8)
mmapped = libc.mallinfo2().hblkhd - before
del block

cfg = gpt.model.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
_, step, _ = gpt.bench.minigrad_stepper(cfg, 2, "cpu")
step(np.zeros((2, 9), np.int64))
print(json.dumps({{"tuned": tuned, "mmapped": mmapped, "test_code_loaded": sorted(
    m for m in sys.modules if m.startswith("minigrad.testing"))}}))
"""


def probe(arg: str, **env: str) -> dict:
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc: Linux only")
    out = subprocess.run([sys.executable, "-c", PROBE, arg], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=ROOT, check=False)
    if "mallinfo2" in out.stderr:  # glibc before 2.33, or not glibc: nothing to observe
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_and_training_leave_malloc_alone_and_load_no_test_code():
    got = probe("import only", MINIGRAD_MALLOPT="1")
    assert not got["tuned"]
    assert got["mmapped"] >= BLOCK, "importing minigrad or gpt tuned glibc's malloc"
    assert got["test_code_loaded"] == [], "a CPU training step loaded the test backend"


def test_tune_malloc_keeps_large_blocks_on_the_heap():
    """The observable above works: after tune_malloc the block comes from the heap."""
    got = probe("tune")
    assert got["tuned"] and got["mmapped"] == 0


def test_the_environment_can_say_no():
    got = probe("tune", MINIGRAD_MALLOPT="0")
    assert not got["tuned"] and got["mmapped"] >= BLOCK


class Called(Exception):
    pass


@pytest.mark.parametrize("argv", [["train", "--max_iters", "1"], ["bench", "--iters", "1"]])
def test_train_and_bench_tune_malloc(monkeypatch, argv):
    def tune_malloc():
        raise Called

    monkeypatch.setattr(gpt.cli, "tune_malloc", tune_malloc)
    with pytest.raises(Called):  # before any training or timing starts
        gpt.cli.main(argv)


# ---- the test backend: imported only where the user named its device ------------------------------


def imports_of_test_code(source: str) -> list[tuple[int, bool]]:
    """(line, allowed) for each import of minigrad.testing in `source`. Allowed: inside a function,
    under an `if` whose test compares something with the string "fakegpu" (the device's name)."""
    found = []

    def visit(node: ast.AST, in_function: bool, device_check: bool) -> None:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            names = []
        if any(is_test_code(n) for n in names):
            found.append((node.lineno, in_function and device_check))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function, device_check = True, False  # a guard outside a def does not guard its body
        for child in ast.iter_child_nodes(node):
            guarded = isinstance(node, ast.If) and child in node.body and names_fakegpu(node.test)
            visit(child, in_function, device_check or guarded)

    visit(ast.parse(source), False, False)
    return found


def is_test_code(module: str) -> bool:
    """minigrad.testing or below, also written relative to minigrad/ (`.testing`, `..testing.fakegpu`)."""
    name = module.lstrip(".") if module.startswith(".") else module.removeprefix("minigrad.")
    return name == "testing" or name.startswith("testing.")


def names_fakegpu(test: ast.expr) -> bool:
    return any(isinstance(n, ast.Compare) and any(isinstance(c, ast.Constant) and c.value == "fakegpu"
                                                   for c in [n.left, *n.comparators]) for n in ast.walk(test))


def test_the_import_check_tells_guarded_from_unguarded():
    assert imports_of_test_code("from minigrad.testing import fakegpu") == [(1, False)]
    assert imports_of_test_code("import minigrad.testing.fakegpu as f") == [(1, False)]
    assert imports_of_test_code("def f():\n    from minigrad.testing import fakegpu") == [(2, False)]
    assert imports_of_test_code("def f(d):\n    if d == 'cuda':\n        from .testing import fakegpu") == [(3, False)]
    assert imports_of_test_code("if D == 'fakegpu':\n    def f():\n        from minigrad import testing") == [(3, False)]
    guarded = "def f(device):\n    if device == 'fakegpu':\n        from minigrad.testing import fakegpu"
    assert imports_of_test_code(guarded) == [(3, True)]
    assert imports_of_test_code(guarded.replace("if device", "if x and device")) == [(3, True)]
    assert imports_of_test_code("def f(d):\n    if d == 'fakegpu':\n        pass\n    else:\n"
                                "        import minigrad.testing") == [(5, False)]


def test_the_product_imports_test_code_only_for_the_test_device():
    files = [p for pkg in ("gpt", "minigrad") for p in sorted((ROOT / pkg).rglob("*.py"))
             if not p.relative_to(ROOT).as_posix().startswith("minigrad/testing/")]
    assert len(files) > 30
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in files
           for line, allowed in imports_of_test_code(p.read_text()) if not allowed]
    assert not bad, f"imports of minigrad.testing outside a device check: {bad}"
