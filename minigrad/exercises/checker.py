"""Check a learner's backward: import their file, then, in float64, on each of the exercise's cases:

1. forward: their (given) forward against the project's op, so that a stray edit is caught first;
2. terms: each term their backward_terms returns against the reference (catalog.py, references.py),
   in the order backward computes them; the first wrong one is named with its shapes or its error;
3. gradients: the engine's backward through their op against the project's op;
4. finite differences: minigrad.gradcheck on their op alone (random cotangent, central differences).

The cases' values keep away from any point where an op is not differentiable (catalog.py).

Read next: cli.py, the commands that call this.
"""
from __future__ import annotations

import importlib.util
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.exercises.catalog import EXERCISES, Case, Exercise, Term
from minigrad.exercises.references import vjp
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.tensor import Tensor

# A term is right when max |yours - expected| <= RTOL * max(1, max |expected|): float64 rounding of
# the same math in another order stays near 1e-15, and a wrong term is off by order 1.
RTOL = 1e-8


class ExerciseError(Exception):
    """Something the learner should fix or do, with the message that says what."""


@dataclass
class Report:
    ok: bool = False
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def get_exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ExerciseError(f"no exercise named {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def check(name: str, path: str | Path) -> Report:
    """Run every check of exercise `name` on the learner's file; stop at the first problem."""
    report = Report()
    try:
        ex = get_exercise(name)
        cls = load_class(ex, Path(path))
        report.lines.append(f"checking {ex.cls} in {path} against minigrad's own op (float64)")
        rng = np.random.default_rng(0)
        cases = ex.cases(rng)
        for i, case in enumerate(cases, 1):
            report.lines.append(f"case {i} of {len(cases)}: {case.label}")
            _check_case(ex, cls, case, rng, Path(path), report.lines)
    except ExerciseError as e:
        report.lines.append(str(e))
        return report
    report.ok = True
    report.lines.append(
        f"all correct: every term equals the project's on {len(cases)} cases, so do the gradients through "
        f"the engine, and finite differences agree. Compare yours with {ex.solution}."
    )
    return report


def load_class(ex: Exercise, path: Path) -> type[Function]:
    """The learner's Function subclass, imported from their file."""
    if not path.is_file():
        raise ExerciseError(
            f"no file {path}: write the stub first with `python -m minigrad.exercises start {ex.name}` "
            f"(it writes exercises/{ex.name}.py; with --dir DIR it writes DIR/{ex.name}.py, then check with --file)"
        )
    spec = importlib.util.spec_from_file_location(f"minigrad_exercise_{ex.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ExerciseError(f"{path} does not parse: {e.msg} at line {e.lineno}: {(e.text or '').strip()}") from None
    except Exception as e:
        raise ExerciseError(f"importing {path} raised {_where(e, path)}") from None
    cls = getattr(module, ex.cls, None)
    if cls is None:
        raise ExerciseError(f"{path} defines no class {ex.cls} (the stub's name: the checker looks for it)")
    if not (isinstance(cls, type) and issubclass(cls, Function)):
        raise ExerciseError(f"{ex.cls} in {path} must be a subclass of minigrad.autograd.Function, as in the stub")
    if not hasattr(cls, "backward_terms"):
        raise ExerciseError(f"{ex.cls} in {path} has no backward_terms method: take the stub's and fill it in")
    return cls


def _where(e: BaseException, path: Path) -> str:
    """`Type: message`, and the line of the learner's file it came from, if it did."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    at = f" at line {frames[-1].lineno} of {path}: {frames[-1].line}" if frames else ""
    unfilled = " (a term is still `...`: fill it in)" if "ellipsis" in str(e) else ""
    return f"{type(e).__name__}: {e}{at}{unfilled}"


def _check_case(ex: Exercise, cls: type[Function], case: Case, rng: np.random.Generator, path: Path,
                lines: list[str]) -> None:
    arrays, params = [a.copy() for a in case.arrays], case.params
    expected_out = ex.project(*[Tensor(a) for a in arrays], **params).data
    dout = np.asarray(rng.standard_normal(expected_out.shape))  # a random cotangent: never ones
    reference = dict(zip(ex.grads, vjp(ex.project, arrays, dout, **params)))  # the solution's gradients
    if ex.reference is not None:
        reference.update(ex.reference(arrays, params, dout))

    # 1. forward
    leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = _apply(cls, leaves, params, path, "forward")
    if out.shape != expected_out.shape or not _close(out.data, expected_out):
        raise ExerciseError(
            f"  forward differs from minigrad's op (shape {out.shape}, expected {expected_out.shape}). The forward "
            f"is given: take it again from a fresh stub (`python -m minigrad.exercises start {ex.name} --dir OTHER`)"
        )
    lines.append(f"  {'forward':<24} ok")

    # 2. terms, in the order backward computes them
    fn = out._ctx
    try:
        terms = fn.backward_terms(dout.copy())  # a copy: a backward that writes into dout spoils no later check
    except NotImplementedError:
        raise ExerciseError(
            f"  {ex.cls}.backward_terms is not written yet: fill in backward_terms in {path} (delete its "
            "`raise NotImplementedError` line, then write each term; the hints are in the comments above it)"
        ) from None
    except Exception as e:
        raise ExerciseError(f"  backward_terms raised {_where(e, path)}") from None
    if not isinstance(terms, dict):
        raise ExerciseError(f"  backward_terms must return a dict {{term name: array}}, got {type(terms).__name__}")
    for term in ex.terms:
        _check_term(ex, term, terms, reference[term.name], exact_shape=term.name in ex.grads)
        lines.append(f"  {term.name:<24} ok")

    # 3. the gradients the engine gets from their backward
    leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = _apply(cls, leaves, params, path, "forward")
    try:
        out.backward(dout.copy())
    except Exception as e:
        raise ExerciseError(f"  backward (through minigrad's engine) raised {_where(e, path)}") from None
    for name, leaf in zip(ex.grads, leaves):
        if leaf.grad is None or not _close(leaf.grad.data, reference[name]):
            raise ExerciseError(f"  {name} through minigrad's engine differs from the project's op: does backward "
                                f"still return the stub's terms, one per input ({', '.join(ex.grads)})?")
    lines.append(f"  {'gradients (engine)':<24} ok")

    # 4. finite differences, on their op alone
    leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    try:
        gradcheck(lambda *xs: cls.apply(*xs, **params), leaves)
    except GradcheckError as e:
        names = ", ".join(f"{i} = {n}" for i, n in enumerate(ex.inputs))
        raise ExerciseError(f"  finite differences disagree with your backward ({names}): {e}") from None
    lines.append(f"  {'finite differences':<24} ok")


def _apply(cls: type[Function], leaves: list[Tensor], params: dict[str, Any], path: Path, what: str) -> Tensor:
    try:
        return cls.apply(*leaves, **params)
    except Exception as e:
        raise ExerciseError(f"  {what} raised {_where(e, path)}") from None


def _tolerance(expected: np.ndarray) -> float:
    return RTOL * max(1.0, float(np.abs(expected).max(initial=0)))


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.all(np.abs(got - expected) <= _tolerance(expected)))


def _check_term(ex: Exercise, term: Term, terms: dict[str, Any], expected: np.ndarray, exact_shape: bool) -> None:
    """Raise ExerciseError naming `term` if it is missing, unfilled, of the wrong shape or wrong."""
    name = term.name
    head = f"  {name:<24} WRONG:"
    if name not in terms:
        raise ExerciseError(f"{head} missing from the dict backward_terms returns "
                            f"(it holds {', '.join(terms) or 'nothing'}; expected {', '.join(t.name for t in ex.terms)})")
    value = terms[name]
    if value is ...:
        raise ExerciseError(f"{head} not filled in yet (still `...`): {term.about}, shape {term.shape}")
    if isinstance(value, Tensor):
        raise ExerciseError(f"{head} a minigrad Tensor; backward works on the arrays themselves (.data)")
    got = np.asarray(value)
    if got.dtype.kind not in "fiu":
        raise ExerciseError(f"{head} holds {got.dtype} values, not numbers")
    fits = got.shape == expected.shape
    if not fits and not exact_shape:  # a term inside a sum may have a shape that broadcasts, e.g. (N, 1)
        try:
            fits = np.broadcast_shapes(got.shape, expected.shape) == expected.shape
        except ValueError:
            fits = False
    if not fits:
        also = "" if exact_shape else ", or one that broadcasts to it"
        raise ExerciseError(f"{head} shape {got.shape}, expected {expected.shape}{also} "
                            f"(the stub's {term.shape}).\n" + _explain(ex, term))
    got = np.broadcast_to(got, expected.shape)
    if not np.all(np.isfinite(got)):
        raise ExerciseError(f"{head} holds NaN or inf")
    if _close(got, expected):
        return
    err = np.abs(got - expected)  # (expected's shape)
    at = np.unravel_index(int(err.argmax()), err.shape)
    raise ExerciseError(f"{head} max error {err.max():.3g} at index {tuple(int(i) for i in at)}: yours "
                        f"{got[at]:.6g}, expected {expected[at]:.6g} "
                        f"(the expected values reach {np.abs(expected).max():.3g}).\n"
                        + _explain(ex, term))


def _explain(ex: Exercise, term: Term) -> str:
    """What the wrong term is, the hint, and where the answer is."""
    lines = [f"    {term.name} {term.shape}: {term.about}."]
    if term.hint:
        lines.append(f"    hint: {term.hint}.")
    before = [t.name for t in ex.terms[: ex.terms.index(term)]]
    lines.append(f"    {'The terms before it (' + ', '.join(before) + ') are right; the' if before else 'The'} "
                 f"answer is in {ex.solution}.")
    return "\n".join(lines)
