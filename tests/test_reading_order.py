"""The tour: following "Read next:" from minigrad/__init__.py walks every file of the packages once.

Each file's docstring ends with "Read next: PATH ...". The first path named there that exists
is the next stop: relative to the file's folder, else to the repository root (so "gpt/model.py"
works from minigrad/), a folder meaning its __init__.py. Only the files that other work may
not have written yet (TOLERATED_MISSING) may be named and absent. gpt/__init__.py starts a
second walk, which must join the first: the GPT half of the tour is the tail of the whole.

Not stops of the tour, listed here: minigrad/testing/ but fakegpu.py (helpers that build the
test backend), the package index files (ops/, nn/, optim/, utils/ __init__.py: each lists its
folder's reading order, which must agree with the tour), gpt/__main__.py (one line calling
cli.main), minigrad/nn/functional.py (minigrad.functional under PyTorch's path), and the files
under minigrad/exercises/ but its __init__.py (the learner's stubs and the checker's parts).
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minigrad", "gpt")
START, GPT_START = "minigrad/__init__.py", "gpt/__init__.py"
TOLERATED_MISSING = {"minigrad/viz.py", "minigrad/exercises/__init__.py"}  # other work in progress
LEARNER_TOOLS = {"minigrad/graph_layout.py", "minigrad/viz.py", "minigrad/exercises/__init__.py"}  # after speed.py
INDEX_FILES = {"minigrad/ops/__init__.py", "minigrad/nn/__init__.py", "minigrad/optim/__init__.py",
               "minigrad/utils/__init__.py"}
NOT_STOPS = INDEX_FILES | {"gpt/__main__.py", "minigrad/testing/__init__.py",
                           "minigrad/nn/functional.py"}  # (minigrad.functional under PyTorch's path: an alias)
PATH = re.compile(r"(?<![\w/.])((?:\.\./|[\w-]+/)*(?:[\w-]+\.py|[\w-]+/))(?=[\s,.;:)]|$)")


def docstring(rel: str) -> str:
    return ast.get_docstring(ast.parse((ROOT / rel).read_text()), clean=True) or ""


def read_next(rel: str) -> list[str]:
    """The paths the docstring's "Read next:" names, in order, as paths from the root."""
    text = docstring(rel)
    at = text.rfind("Read next:")
    if at < 0:
        return []
    return [resolve(rel, p) for p in PATH.findall(text[at + len("Read next:") :])]


def resolve(rel: str, path: str) -> str:
    """`path` from rel's folder if it exists there, else from the root if it exists there, else from rel's folder."""
    candidates = [(base / path).resolve() for base in ((ROOT / rel).parent, ROOT)]
    candidates = [c / "__init__.py" if path.endswith("/") else c for c in candidates]
    found = next((c for c in candidates if c.exists()), candidates[0])
    return found.relative_to(ROOT).as_posix()


def walk(start: str) -> list[str]:
    """The files met following the chain from `start` (start included), stopping at a repeat."""
    order = [start]
    while True:
        here = order[-1]
        named = read_next(here)
        missing = [p for p in named if not (ROOT / p).exists()]
        bad = [p for p in missing if p not in TOLERATED_MISSING]
        assert not bad, f"{here}: 'Read next' names {bad}, which do not exist"
        present = [p for p in named if p not in missing]
        if not present:
            return order
        nxt = present[0]
        assert nxt not in order, f"{here} sends the reader back to {nxt}: {' -> '.join(order)}"
        order.append(nxt)


def package_files() -> set[str]:
    files = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    stubs = {f for f in files if f.startswith("minigrad/exercises/") and f != "minigrad/exercises/__init__.py"}
    return files - NOT_STOPS - stubs


@functools.cache
def tour() -> list[str]:
    return walk(START)


def test_the_tour_reaches_every_file_once():
    order = tour()
    missed = sorted(package_files() - set(order) - {GPT_START})
    assert not missed, f"files the tour never reaches: {missed}\ntour: {' -> '.join(order)}"
    assert len(order) == len(set(order))


def test_read_next_closes_each_docstring():
    """"Read next" is in the last paragraph of each stop's docstring (the last stop may have none)."""
    late = [f for f in tour()[:-1] if "Read next:" not in docstring(f).split("\n\n")[-1]]
    assert not late, f"'Read next:' is not the last paragraph of {late}"


def test_the_gpt_walk_joins_the_tour_and_ends_with_it():
    order, gpt_walk = tour(), walk(GPT_START)
    first = gpt_walk[1]
    assert first.startswith("gpt/"), f"gpt/__init__.py should send the reader to a gpt file, not {first}"
    assert gpt_walk[1:] == order[order.index(first) :]


def test_the_engine_comes_before_the_gpt_and_the_speed_tricks_last():
    order = tour()
    first_gpt = min(i for i, f in enumerate(order) if f.startswith("gpt/"))
    assert all(f.startswith("minigrad/") for f in order[:first_gpt])
    assert {"minigrad/ops/attention.py", "minigrad/nn/attention.py", "minigrad/nn/transformer.py"} <= set(order[:first_gpt])
    speed = order.index("minigrad/speed.py")
    assert set(order[speed + 1 :]) <= LEARNER_TOOLS, f"after speed.py, only the learner's tools: {order[speed:]}"
    assert not LEARNER_TOOLS & set(order[:speed]), f"the learner's tools come after speed.py: {order}"


@pytest.mark.parametrize("index", sorted(INDEX_FILES | {START, GPT_START}))
def test_each_package_lists_its_files_in_the_tours_order(index):
    text = docstring(index)
    at = text.find("Reading order:")
    assert at >= 0, f"{index} has no 'Reading order:' line"
    named = [resolve(index, p) for p in PATH.findall(text[at:].split("\n\n")[0]) if p.endswith(".py")]
    # files of the packages (tests/ and docs/ may be named too), but not work in progress yet to come
    listed = [f for f in named if f.startswith(PACKAGES) and ((ROOT / f).exists() or f not in TOLERATED_MISSING)]
    assert listed, f"{index}: 'Reading order:' names no file"
    order = tour()
    where = [order.index(f) if f in order else -1 for f in listed]
    assert -1 not in where, f"{index} lists {listed[where.index(-1)]}, which is not on the tour"
    assert where == sorted(where), f"{index} lists {listed} out of the tour's order"


def test_a_chain_that_skips_a_file_fails(monkeypatch):
    """The walk can fail: a chain that jumps over nn/attention.py leaves it unreached."""
    real = read_next

    def skipping(rel):
        return ["minigrad/nn/transformer.py"] if rel == "minigrad/nn/layers.py" else real(rel)

    monkeypatch.setitem(globals(), "read_next", skipping)
    assert "minigrad/nn/attention.py" not in walk(START)
