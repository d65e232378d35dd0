"""The commands: `python -m minigrad.exercises list | start NAME [--dir DIR] | check NAME [--file PATH]`.

Exit codes: 0 when the command did what it says (check: every term right), 1 otherwise (a wrong
term, an unknown exercise, a missing file, a stub that exists already), 2 for a malformed command.

Read next: checker.py, for what `check` runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from minigrad.exercises.catalog import EXERCISES
from minigrad.exercises.checker import ExerciseError, check, get_exercise

STUBS = Path(__file__).parent / "stubs"


def start(name: str, directory: str | Path = "exercises") -> Path:
    """Write exercise `name`'s stub to directory/NAME.py and return that path; never overwrites a file."""
    ex = get_exercise(name)
    path = Path(directory) / f"{ex.name}.py"
    if path.exists():
        raise ExerciseError(f"{path} exists already and was left as it is; check it with "
                            f"`python -m minigrad.exercises check {ex.name} --file {path}`, "
                            "or start a fresh copy elsewhere with --dir OTHER")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((STUBS / f"{ex.name}.py").read_text())
    return path


def _list() -> str:
    width = max(map(len, EXERCISES))
    rows = []
    for ex in EXERCISES.values():
        rows.append(f"{ex.name:<{width}}  {ex.summary}")
        rows.append(f"{'':<{width}}    you write: {', '.join(t.name for t in ex.terms)}")
        rows.append(f"{'':<{width}}    read first: {ex.chapter}; the answer: {ex.solution}")
    rows.append("\nstart one with `python -m minigrad.exercises start NAME`, check it with `... check NAME`")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minigrad.exercises",
                                     description="Write each fused op's backward yourself, then check it.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the exercises")
    p_start = commands.add_parser("start", help="write an exercise's stub file (never overwrites one)")
    p_start.add_argument("name")
    p_start.add_argument("--dir", default="exercises", help="where to write NAME.py (default: exercises)")
    p_check = commands.add_parser("check", help="check your backward: per term, against minigrad, by finite differences")
    p_check.add_argument("name")
    p_check.add_argument("--file", help="your file (default: DIR/NAME.py)")
    p_check.add_argument("--dir", default="exercises", help="where start wrote it (default: exercises)")
    args = parser.parse_args(argv)

    if args.command == "list":
        print(_list())
        return 0
    try:
        if args.command == "start":
            path = start(args.name, args.dir)
            default = Path("exercises") / f"{args.name}.py"
            flag = "" if path == default else f" --file {path}"
            print(f"wrote {path}: fill in {EXERCISES[args.name].cls}.backward_terms (the hints are in its "
                  f"comments), then run\n    python -m minigrad.exercises check {args.name}{flag}")
            return 0
        report = check(args.name, args.file or Path(args.dir) / f"{get_exercise(args.name).name}.py")
    except ExerciseError as e:
        print(e)
        return 1
    print(report.text)
    return 0 if report.ok else 1
