"""The chapters in docs/chapters/ run: each chapter's ```python blocks execute in order in one namespace,
from the repository root, and the asserts in them check every number the text claims (STYLE 17).

One test per chapter. Each block is compiled under the chapter's file name with its first line at the
block's line in the markdown, so a traceback points at the line of the .md file, and the failure
names the chapter, the block number and its first line. The links the chapters give (every
"Read next:" among them) must lead to files that exist.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import minigrad

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "chapters"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]_*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # [text](target) or [text](target#anchor)


class ChapterError(AssertionError):
    pass


def code_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number of the block's first code line, its code) for every ```python block."""
    blocks, code, start = [], None, 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if code is None and line.strip() == "```python":
            code, start = [], n + 1
        elif code is not None and line.strip() == "```":
            blocks.append((start, "\n".join(code) + "\n"))
            code = None
        elif code is not None:
            code.append(line)
    if code is not None:
        raise ChapterError(f"{path.name}: the ```python block from line {start} is never closed")
    return blocks


def run_chapter(path: Path) -> dict:
    """Execute the chapter's blocks in one namespace; raise ChapterError naming the block that failed."""
    namespace: dict = {"__name__": "__chapter__"}
    for i, (line, code) in enumerate(code_blocks(path), 1):
        first = next((s.strip() for s in code.splitlines() if s.strip()), "")
        try:
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)  # line numbers as in the .md
        except Exception as e:
            raise ChapterError(f"{path.name}, block {i} (line {line}: {first!r}): {type(e).__name__}: {e}") from e
    return namespace


@pytest.fixture
def chapter_env(monkeypatch: pytest.MonkeyPatch):
    """From the repository root, with pictures drawn off screen, and the defaults a chapter may change
    (dtype, device) put back afterwards."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    dtype, device = minigrad.get_default_dtype(), minigrad.get_default_device()
    yield
    minigrad.set_default_dtype(dtype)
    minigrad.set_default_device(device)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_runs(path: Path, chapter_env: None) -> None:
    assert code_blocks(path), f"{path.name} has no ```python block to run"
    run_chapter(path)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_ends_with_read_next(path: Path) -> None:
    """The last paragraph says where to go next: the next chapter (if there is one) and the source files."""
    last = path.read_text(encoding="utf-8").strip().split("\n\n")[-1]
    assert last.startswith("Read next:"), f"{path.name} ends with {last[:60]!r}, not a 'Read next:' paragraph"
    later = [p for p in CHAPTERS if p.name > path.name]
    if later:
        assert f"({later[0].name})" in last, f"{path.name}: 'Read next:' does not link {later[0].name}"


@pytest.mark.parametrize("path", [*CHAPTERS, DOCS / "README.md"], ids=[p.name for p in CHAPTERS] + ["README.md"])
def test_links_lead_to_files(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing")
    targets = [t for t in LINK.findall(path.read_text(encoding="utf-8")) if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links files that do not exist: {missing}"


def test_readme_lists_every_chapter() -> None:
    readme = (DOCS / "README.md").read_text(encoding="utf-8")
    assert CHAPTERS, "no chapter in docs/chapters"
    assert [p.name for p in CHAPTERS if f"({p.name})" not in readme] == []


def test_a_failing_block_is_named(tmp_path: Path, chapter_env: None) -> None:
    """The runner itself: a wrong claim in block 2 fails, naming the chapter, the block and its first line,
    and the traceback points at the assert's line in the .md file."""
    chapter = tmp_path / "99_demo.md"
    chapter.write_text("Text.\n\n```python\nimport numpy as np\nx = np.ones(3)  # (3,)\n```\n\nMore.\n\n"
                       "```python\n# a comment first\nassert x.sum() == 4, 'three ones'\n```\n", encoding="utf-8")
    with pytest.raises(ChapterError, match=r"99_demo.md, block 2 \(line 11: '# a comment first'\)") as info:
        run_chapter(chapter)
    assert info.value.__cause__.__traceback__.tb_next.tb_lineno == 12


def test_blocks_share_one_namespace(tmp_path: Path, chapter_env: None) -> None:
    """Python blocks run in order in one namespace; other languages' blocks do not run."""
    chapter = tmp_path / "98_demo.md"
    chapter.write_text("```python\na = 2\n```\n\n```bash\nnot python\n```\n\n```python\nb = a * 3\n```\n",
                       encoding="utf-8")
    assert run_chapter(chapter)["b"] == 6
