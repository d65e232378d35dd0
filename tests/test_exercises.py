"""minigrad.exercises: the checker passes a correct backward for every exercise, names the wrong
term of a planted bug (layer norm, attention, embedding), and the CLI writes stubs, refuses to
overwrite them and exits 0 or 1 as it says.

The correct solutions are written here from the reference formulas (the derivations above each
op's backward in minigrad/ops/), each into a copy of the exercise's own stub."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from minigrad.exercises.catalog import EXERCISES
from minigrad.exercises.checker import check
from minigrad.exercises.cli import STUBS, main

# Each exercise's backward_terms body: it replaces the stub's lines from `raise NotImplementedError`
# up to its `return {...}`, and assigns every name that return reads.
SOLUTIONS = {
    "linear": """
        x, weight = self.x, self.weight
        dy2 = dout.reshape(-1, weight.shape[0])  # (N, out)
        dx = dout @ weight
        dweight = dy2.T @ x.reshape(-1, weight.shape[1])
        dbias = dy2.sum(axis=0)
""",
    "softmax": """
        y = self.y
        dx_via_numerator = y * dout
        dx_via_sum = -y * (dout * y).sum(axis=-1, keepdims=True)
        dx = dx_via_numerator + dx_via_sum
""",
    "cross_entropy": """
        xp = get_array_module(dout)
        p, t = self.p, self.targets
        n = p.shape[0]
        dlogits_via_logsumexp = p * dout / n
        dlogits_via_target = xp.zeros_like(p)
        dlogits_via_target[xp.arange(n), t] = -dout / n
        dlogits = dlogits_via_logsumexp + dlogits_via_target
""",
    "layer_norm": """
        xhat, rstd, weight = self.xhat, self.rstd, self.weight
        c = xhat.shape[-1]
        dweight = (dout * xhat).reshape(-1, c).sum(axis=0)
        dbias = dout.reshape(-1, c).sum(axis=0)
        dxhat = dout * weight
        dx_direct = rstd * dxhat
        dx_via_mean = -rstd * dxhat.mean(axis=-1, keepdims=True)
        dx_via_rstd = -rstd * xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
        dx = dx_direct + dx_via_mean + dx_via_rstd
""",
    "attention": """
        q, k, v, P, scale = self.q, self.k, self.v, self.P, self.scale
        dV = P.swapaxes(-1, -2) @ dout
        dP = dout @ v.swapaxes(-1, -2)
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
        dQ = dS @ k * scale
        dK = dS.swapaxes(-1, -2) @ q * scale
""",
    "gelu": """
        x, t = self.x, self.t
        dx_via_half_x = dout * 0.5 * (1 + t)
        dx_via_tanh = dout * 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x**2)
        dx = dx_via_half_x + dx_via_tanh
""",
    "embedding": """
        xp = get_array_module(dout)
        dweight = xp.zeros(self.shape, dtype=self.dtype)
        xp.add.at(dweight, self.idx.reshape(-1), dout.reshape(-1, self.shape[1]))
""",
}


def solved(name: str, body: str) -> str:
    """The stub of `name` with `body` in place of its unfilled lines."""
    lines = (STUBS / f"{name}.py").read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "raise NotImplementedError" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("return {"))
    return "".join(lines[:start]) + body.lstrip("\n") + "".join(lines[end:])


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path


def test_every_exercise_has_a_solution_here():
    assert set(SOLUTIONS) == set(EXERCISES)
    assert {"layer_norm", "softmax", "cross_entropy", "attention", "gelu", "linear", "embedding"} <= set(EXERCISES)


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_chapter_and_the_solution_named_exist(name):
    ex = EXERCISES[name]
    assert (ROOT / ex.chapter.split()[0]).is_file(), ex.chapter
    file, where = ex.solution.split(", ", 1)
    source = (ROOT / file).read_text()
    for name in where.replace(" and ", ", ").replace(" (dydx)", "").split(", "):
        owner = name.split(".")[0]
        assert f"class {owner}(" in source or f"def {owner}(" in source, name


@pytest.mark.parametrize("name", list(EXERCISES))
def test_a_correct_backward_passes(tmp_path, name):
    report = check(name, write(tmp_path, name, solved(name, SOLUTIONS[name])))
    assert report.ok, report.text
    assert "all correct" in report.text
    n_cases = sum(line.startswith("case ") for line in report.lines)
    assert n_cases >= 2 and report.text.count("finite differences       ok") == n_cases
    for term in EXERCISES[name].terms:
        assert f"{term.name} " in report.text  # each term reported ok


def wrong(name: str, old: str, new: str) -> str:
    body = SOLUTIONS[name]
    assert old in body
    return solved(name, body.replace(old, new))


@pytest.mark.parametrize("old, new, term", [
    ("dx_via_rstd = -rstd * xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)",
     "dx_via_rstd = 0 * xhat", "dx_via_rstd"),  # the term forgotten
    ("dx_via_rstd = -rstd", "dx_via_rstd = rstd", "dx_via_rstd"),  # its sign
    ("dx_via_mean = -rstd", "dx_via_mean = rstd", "dx_via_mean"),
    ("dx = dx_direct + dx_via_mean + dx_via_rstd", "dx = dx_direct + dx_via_mean", "dx"),  # all terms right, sum not
    ("dweight = (dout * xhat).reshape(-1, c).sum(axis=0)", "dweight = (dout * xhat).sum(axis=0)", "dweight"),
])
def test_a_wrong_layer_norm_term_is_named(tmp_path, old, new, term):
    report = check("layer_norm", write(tmp_path, "layer_norm", wrong("layer_norm", old, new)))
    assert not report.ok
    assert f"{term:<24} WRONG" in report.text, report.text
    assert "minigrad/ops/layernorm.py" in report.text
    if term != "dweight":  # (a 3-d x's dweight summed over one axis only has the wrong shape)
        assert "max error" in report.text


def test_a_wrong_shape_names_expected_and_got(tmp_path):
    source = wrong("layer_norm", "dweight = (dout * xhat).reshape(-1, c).sum(axis=0)", "dweight = dout * xhat")
    report = check("layer_norm", write(tmp_path, "layer_norm", source))
    assert "dweight                  WRONG: shape (6, 8), expected (8,) (the stub's (C,))" in report.text, report.text


def test_a_wrong_attention_dS_is_named(tmp_path):
    # dS without subtracting the row sum: dV and dP right, dS wrong
    source = wrong("attention", "dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "dS = P * dP")
    report = check("attention", write(tmp_path, "attention", source))
    assert not report.ok
    text = report.text
    assert "dV                       ok" in text and "dP                       ok" in text
    assert "dS                       WRONG: max error" in text, text
    assert "The terms before it (dV, dP) are right" in text
    assert "ScaledDotProductAttention.backward" in text


def test_a_forgotten_scale_is_named(tmp_path):
    report = check("attention", write(tmp_path, "attention", wrong("attention", "dK = dS.swapaxes(-1, -2) @ q * scale",
                                                                   "dK = dS.swapaxes(-1, -2) @ q")))
    assert "dK                       WRONG" in report.text, report.text


def test_embedding_with_repeated_ids_needs_a_scatter_add(tmp_path):
    source = wrong("embedding", "xp.add.at(dweight, self.idx.reshape(-1), dout.reshape(-1, self.shape[1]))",
                   "dweight[self.idx.reshape(-1)] += dout.reshape(-1, self.shape[1])")
    report = check("embedding", write(tmp_path, "embedding", source))
    assert "dweight                  WRONG" in report.text and "xp.add.at" in report.text, report.text


def test_an_unfilled_term_is_named(tmp_path):
    source = wrong("softmax", "dx_via_sum = -y * (dout * y).sum(axis=-1, keepdims=True)", "dx_via_sum = ...")
    report = check("softmax", write(tmp_path, "softmax", source))  # dx = dx_via_numerator + ... fails
    assert "TypeError" in report.text and "a term is still `...`" in report.text, report.text
    report = check("softmax", write(tmp_path, "softmax", source.replace("dx = dx_via_numerator + dx_via_sum", "dx = ...")))
    assert "dx_via_sum               WRONG: not filled in yet" in report.text, report.text


def test_a_changed_backward_is_caught_by_the_engine_check(tmp_path):
    source = solved("linear", SOLUTIONS["linear"]).replace('return terms["dx"], terms["dweight"]',
                                                           'return terms["dx"], 2 * terms["dweight"]')
    report = check("linear", write(tmp_path, "linear", source))
    assert "dweight through minigrad's engine differs" in report.text, report.text


def test_the_unfilled_stub_says_fill_in(tmp_path, capsys):
    assert main(["start", "gelu", "--dir", str(tmp_path)]) == 0
    assert main(["check", "gelu", "--dir", str(tmp_path)]) == 1
    assert "fill in backward_terms" in capsys.readouterr().out


def test_start_writes_the_stub_and_never_overwrites(tmp_path, capsys):
    path = tmp_path / "ex" / "layer_norm.py"
    assert main(["start", "layer_norm", "--dir", str(tmp_path / "ex")]) == 0
    assert path.read_text() == (STUBS / "layer_norm.py").read_text()
    assert f"--file {path}" in capsys.readouterr().out  # the check command for a non-default place
    path.write_text("# my work")
    assert main(["start", "layer_norm", "--dir", str(tmp_path / "ex")]) == 1
    assert "exists already" in capsys.readouterr().out
    assert path.read_text() == "# my work"


def test_unknown_names_and_missing_files(tmp_path, capsys):
    assert main(["check", "layernorm", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no exercise named 'layernorm'" in out and "layer_norm" in out and "attention" in out
    assert main(["start", "nope", "--dir", str(tmp_path)]) == 1
    assert "the exercises are: linear" in capsys.readouterr().out
    assert main(["check", "softmax", "--file", str(tmp_path / "missing.py")]) == 1
    assert "python -m minigrad.exercises start softmax" in capsys.readouterr().out


def test_a_file_that_does_not_import_is_reported(tmp_path):
    report = check("softmax", write(tmp_path, "softmax", "import numpy as np\nx = 1 / 0\n"))
    assert "importing" in report.text and "ZeroDivisionError" in report.text and "line 2" in report.text


def test_the_cli_exit_codes(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minigrad.exercises", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    listed = run("list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in EXERCISES)
    (tmp_path / "exercises").mkdir()  # where `check NAME` looks by default
    write(tmp_path / "exercises", "softmax", solved("softmax", SOLUTIONS["softmax"]))
    ok = run("check", "softmax")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all correct" in ok.stdout
    write(tmp_path / "exercises", "softmax", wrong("softmax", "dx_via_sum = -y", "dx_via_sum = y"))
    bad = run("check", "softmax")
    assert bad.returncode == 1 and "dx_via_sum" in bad.stdout
