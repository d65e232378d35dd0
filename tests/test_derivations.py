"""docs/derivations.md covers every hand-written backward, and its links land on the code they name.

Each op's heading links its class and its backward by line number (`../minigrad/ops/x.py#L40`).
Lines move whenever a file above them changes; this test names the link that went stale and the
line it should point at now.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "derivations.md"
LINK = re.compile(r"\[(class|backward|def)\]\(\.\./(minigrad/[\w/]+\.py)#L(\d+)\)")


def definitions(rel: str) -> dict[str, int]:
    """name -> line for each top-level class and function, and "Class.backward" for each backward."""
    found = {}
    for node in ast.parse((ROOT / rel).read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            found[node.name] = node.lineno
        if isinstance(node, ast.ClassDef):
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == "backward":
                    found[f"{node.name}.backward"] = f.lineno
    return found


def test_every_link_lands_on_what_it_names():
    """A heading's links name its op (`### LayerNorm — [class](...), [backward](...)`); a link in the
    text names the last `Name` in backticks before it."""
    stale = []
    for md_line in DOC.read_text().splitlines():
        heading = re.match(r"#+ (\w+)", md_line)
        for m in LINK.finditer(md_line):
            kind, rel, line = m.group(1), m.group(2), int(m.group(3))
            named = heading.group(1) if heading else re.findall(r"`(\w+)`", md_line[: m.start()])[-1]
            want = f"{named}.backward" if kind == "backward" else named
            at = definitions(rel).get(want)
            if at != line:
                stale.append(f"[{kind}] of {want}: {rel}#L{line}, but it is at line {at}")
    assert not stale, "stale links in docs/derivations.md:\n" + "\n".join(stale)


def test_every_backward_in_ops_has_its_derivation():
    headings = set(re.findall(r"^### (\w+)", DOC.read_text(), flags=re.M))
    missing = []
    for path in sorted((ROOT / "minigrad" / "ops").glob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        missing += [f"{rel}: {name.split('.')[0]}" for name in definitions(rel)
                    if name.endswith(".backward") and name.split(".")[0] not in headings]
    assert not missing, f"backwards with no section in docs/derivations.md: {missing}"
