"""Every figure of README.md and docs/, from one command, checked against what the README claims.

    python -m examples.reproduce              # all runs, one after another (see RUNS for each one's time)
    python -m examples.reproduce --list       # the runs and their commands
    python -m examples.reproduce --only vit_digits,sort_digits

Each run is a command the README gives, at its full budget. The last line a run prints is a JSON
object of its metrics; each check compares one of them with the README's figure (with the margin
the README's own run-to-run spread allows). Runs that need something absent (the tiny Shakespeare
file in ../shared/data, mpiexec) are skipped and say why. The results go to
out/reproduce/results.md (a table, with the machine, the load and how long each run took) and
results.json; each run's output to out/reproduce/NAME.log. CI runs the same examples at reduced
budgets (`python -m pytest -m slow`); this is the full-length check, hours on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = "../shared/data/tinyshakespeare.txt"  # the standard tiny Shakespeare (README, Quality)
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1"}
QUALITY = ["--data", SHAKESPEARE, "--eval_interval", "500", "--eval_iters", "200", "--sample_tokens", "0", "--no-progress"]


@dataclass
class Run:
    name: str
    argv: list[str]  # after `python`
    checks: dict[str, tuple[str, float]]  # JSON key (a.b for nested) -> (">=" or "<=", bound)
    figure: str  # what the README states
    minutes: float  # how long it took on the project's 2-core machine (README)
    needs: tuple[str, ...] = ()  # files (relative to the repository) or programs on PATH
    ranks: int = 1  # > 1: under mpiexec -n ranks
    env: dict[str, str] = field(default_factory=dict)  # set as the README's command sets them


RUNS = [
    Run("mlp_spirals", ["examples/mlp_spirals.py"], {"test_accuracy": (">=", 0.99)},
        "examples: the MLP gets 99.5% of held-out spiral points", 0.1),
    Run("sort_digits", ["examples/sort_digits.py"], {"held_out_accuracy": (">=", 1.0)},
        "examples: the tiny GPT sorts all 105 held-out lists", 0.5),
    Run("translate_numbers", ["examples/translate_numbers.py", "--beam", "4", "--plot",
                              "docs/translate_numbers_attention.png"],
        {"words2digits.exact_match": (">=", 0.99), "digits2words.exact_match": (">=", 0.99),
         "words2digits.held_out": (">=", 2000)},
        "Translation: 99.95% of 2,000 held-out numbers each way; docs/translate_numbers_attention.png", 16,
        env=ONE_THREAD),
    Run("finetune_classify", ["examples/finetune_classify.py", "--base_dir", "out/reproduce/finetune_base"],
        {"full.accuracy": (">=", 0.58), "qlora.accuracy": (">=", 0.58), "n_test": (">=", 2174)},
        "From pretrained to fine-tuned: full 0.615, last block 0.591, LoRA 0.605, QLoRA 0.595, scratch 0.558, "
        "majority 0.560", 15),
    Run("finetune_instructions", ["examples/finetune_instructions.py", "--base_dir", "out/reproduce/instructions_base"],
        {"exact_match_after": (">=", 0.95), "exact_match_before": ("<=", 0.05)},
        "Instructions: 0% -> 97% exact match on 400 held-out instructions", 8, env=ONE_THREAD),
    Run("bert_shakespeare", ["examples/bert_shakespeare.py", "--plot", "docs/bert_masked.png"],
        {"masked_accuracy": (">=", 0.6), "masked_baseline": ("<=", 0.2), "typo1000_pretrained": (">=", 0.7)},
        "BERT: masked-token accuracy 0.658; typos found at 0.758 with 1,000 labels (0.497 from scratch); "
        "docs/bert_masked.png", 27),
    Run("vit_digits", ["examples/vit_digits.py", "--steps", "1800"], {"test_accuracy": (">=", 0.97)},
        "ViT: 97.78% of the held-out digits after 1,800 steps", 3),
    Run("vit_attention_picture", ["examples/vit_digits.py", "--minutes", "5", "--plot", "docs/vit_attention.png"],
        {}, "ViT: docs/vit_attention.png (accuracy depends on the steps a machine fits in 5 minutes)", 5),
    Run("gpt_quality", ["-m", "gpt", "train", *QUALITY, "--out_dir", "out/shakespeare"],
        {"val_loss": ("<=", 1.95)}, "Quality: val loss 1.911 after 2,000 iterations (nanoGPT: 1.88)", 3,
        needs=(SHAKESPEARE,)),
    Run("gpt_attention_picture", ["-m", "gpt", "plot", "--out_dir", "out/shakespeare", "--prompt",
                                  "ROMEO: But soft, what light through yonder window breaks?"],
        {}, "docs/gpt_attention.png (drawn to out/shakespeare/attention.png)", 0.2, needs=(SHAKESPEARE,)),
    Run("torch_baseline", ["examples/torch_baseline.py", "--data", SHAKESPEARE],
        {"val_loss": ("<=", 1.95)}, "Quality: the PyTorch twin reaches 1.897 at iteration 2,000", 3,
        needs=(SHAKESPEARE,)),
    Run("gpt_gqa_2", ["-m", "gpt", "train", *QUALITY, "--n_kv_head", "2", "--out_dir", "out/gqa2"],
        {"val_loss": ("<=", 1.95)}, "GQA: n_kv_head 2 reaches val 1.913", 3, needs=(SHAKESPEARE,)),
    Run("gpt_gqa_1", ["-m", "gpt", "train", *QUALITY, "--n_kv_head", "1", "--out_dir", "out/gqa1"],
        {"val_loss": ("<=", 1.95)}, "GQA: n_kv_head 1 reaches val 1.897", 3, needs=(SHAKESPEARE,)),
    Run("bench_vs_torch", ["-m", "gpt", "bench", "--vs", "torch", "--json"],
        {}, "Speed: minigrad at 0.83x to 0.94x PyTorch's speed, default model", 1),
    Run("bench_vs_torch_larger", ["-m", "gpt", "bench", "--vs", "torch", "--json", "--n_layer", "6", "--n_head", "6",
                                  "--n_embd", "384", "--block_size", "256", "--batch_size", "16", "--iters", "10",
                                  "--warmup", "2"],
        {}, "Speed: 0.90x to 1.01x PyTorch's speed, 6 layers, n_embd 384, block 256", 3),
    Run("data_parallel_2_ranks", ["-m", "gpt", "train", "--data", SHAKESPEARE, "--max_iters", "60", "--eval_interval",
                                  "1000", "--eval_iters", "1", "--log_interval", "1", "--sample_tokens", "0",
                                  "--batch_size", "6", "--no-progress", "--out_dir", "out/dp2"],
        {}, "Scaling: 2 ranks x 6, 1 thread each (log.jsonl has ms per step)", 1,
        needs=(SHAKESPEARE, "mpiexec"), ranks=2),
    Run("read_numbers", ["examples/read_numbers.py", "--plot", "docs/read_numbers_attention.png"],
        {"exact_match": (">=", 0.95), "held_out": (">=", 1000)},
        "examples: the vision-text transformer reads 97.0% of 1,000 held-out numbers; docs/read_numbers_attention.png",
        14, env=ONE_THREAD),
    Run("t5_multitask", ["examples/t5_multitask.py", "--pretrain_steps", "500", "--steps", "800", "--seed", "0", "1"],
        {"multitask_scratch.sortiere": (">=", 0.8), "multitask_scratch.zahl": (">=", 0.2), "n_test": (">=", 200)},
        "T5: multitask Zahl 0.353, Woerter 0.283, sortiere 0.868 against single-task 0.075, 0.170, 0.775", 6,
        env=ONE_THREAD),
    Run("align_shakespeare", ["examples/align_shakespeare.py", "--base_dir", "out/reproduce/align_base", "--plot",
                              "docs/align_overoptimisation.png"],
        {"rm_accuracy_ratio_min": (">=", 0.8), "ppo.margin": (">=", 0.0), "dpo.margin": (">=", 0.0)},
        "Alignment: reward model at 0.81-0.82 of the gold agreement rate; gold 0.51 -> PPO 0.65, DPO 0.72", 22),
    Run("long_context", ["examples/long_context.py", "--data", SHAKESPEARE, "--iters", "500", "--eval_iters", "20"],
        {"runs.full.val_loss": ("<=", 2.45), "runs.window_64.val_loss": ("<=", 2.45)},
        "Long context: val loss at block 256 after 500 steps, full 2.359, attn_window 64 2.388", 17,
        needs=(SHAKESPEARE,), env=ONE_THREAD),
    Run("moe_shakespeare", ["examples/moe_shakespeare.py", "--plot", "docs/moe_load.png"],
        {"runs.dense.val_loss": ("<=", 1.95), "runs.moe_active.val_loss": ("<=", 1.95),
         "runs.moe_total.val_loss": ("<=", 1.95)},
        "MoE: val dense 1.904, same active 1.883, same total 1.891; docs/moe_load.png", 35, needs=(SHAKESPEARE,),
        env=ONE_THREAD),
    Run("make_smaller", ["examples/make_smaller.py", "--base_dir", "out/reproduce/make_smaller_base"],
        {"rows.student, with teacher.val_loss": ("<=", 2.15), "rows.NF4.val_loss": ("<=", 1.92),
         "rows.pruned 50% +300 steps.val_loss": ("<=", 1.90)},
        "Making a GPT smaller: NF4 1.909 at 0.17x the bytes; student 2.108 with the teacher, 2.239 without", 9,
        env=ONE_THREAD),
]


def missing(run: Run) -> list[str]:
    return [n for n in run.needs if not ((ROOT / n).exists() if "/" in n else shutil.which(n))]


def shown(run: Run) -> str:
    """The command as the README writes it."""
    return " ".join(f"{k}={v}" for k, v in run.env.items()) + " " * bool(run.env) + "python " + shlex.join(run.argv)


def command(run: Run) -> list[str]:
    cmd = [sys.executable, *run.argv]
    return ["mpiexec", "-n", str(run.ranks), *cmd] if run.ranks > 1 else cmd


def lookup(metrics: dict, key: str) -> float:
    value: object = metrics
    for part in key.split("."):
        value = value[part]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def execute(run: Run, logs: Path) -> dict:
    """Run one command; its metrics, each check's outcome, and its time."""
    t0 = time.perf_counter()
    out = subprocess.run(command(run), cwd=ROOT, env={**os.environ, **run.env}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (logs / f"{run.name}.log").write_text(out.stdout + "\n---- stderr ----\n" + out.stderr)
    result = {"name": run.name, "seconds": round(seconds, 1), "returncode": out.returncode, "checks": {}}
    if out.returncode != 0:
        result["error"] = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        return result
    try:
        metrics = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        metrics = {}
    result["metrics"] = metrics
    for key, (op, bound) in run.checks.items():
        try:
            value = lookup(metrics, key)
        except (KeyError, TypeError, ValueError):
            result["checks"][key] = {"value": None, "ok": False}
            continue
        result["checks"][key] = {"value": value, "ok": value >= bound if op == ">=" else value <= bound, "target": f"{op} {bound}"}
    return result


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import numpy

    return f"{cpu}, {cores} cores; Python {platform.python_version()}, NumPy {numpy.__version__}"


def load() -> str:
    return "{:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else "?"


def table(results: list[dict], runs: dict[str, Run], header: str) -> str:
    lines = [header, "", "| run | command | README | measured | check | minutes |", "|---|---|---|---|---|---:|"]
    for r in results:
        run = runs[r["name"]]
        cmd = f"`{shown(run)}`"
        if "skipped" in r:
            measured, verdict = r["skipped"], "skipped"
        elif "error" in r:
            measured, verdict = f"exit {r['returncode']}: {r['error']}", "FAILED"
        else:
            measured = ", ".join(f"{k} {c['value']:.4g}" if c["value"] is not None else f"{k} absent"
                                 for k, c in r["checks"].items()) or "see the log"
            verdict = "ok" if all(c["ok"] for c in r["checks"].values()) else "FAILED"
        lines.append(f"| {r['name']} | {cmd} | {run.figure} | {measured} | {verdict} | {r.get('seconds', 0) / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the runs and their commands, run nothing")
    ap.add_argument("--out", default="out/reproduce", help="folder for results.md, results.json and the logs")
    args = ap.parse_args()
    runs = {r.name: r for r in RUNS}
    chosen = args.only.split(",") if args.only else list(runs)
    unknown = [n for n in chosen if n not in runs]
    if unknown:
        ap.error(f"unknown runs {unknown}; --list shows them")
    if args.list:
        for n in chosen:
            print(f"{n} (about {runs[n].minutes:g} min): {shown(runs[n])}")
        print(f"about {sum(runs[n].minutes for n in chosen):.0f} minutes in all on the project's 2-core machine")
        return 0
    logs = ROOT / args.out
    logs.mkdir(parents=True, exist_ok=True)
    header = f"Reproduced on {time.strftime('%Y-%m-%d %H:%M')}: {machine()}; load {load()} at the start"
    results: list[dict] = []
    t0 = time.perf_counter()
    for n in chosen:
        run = runs[n]
        absent = missing(run)
        print(f"{n}: " + (f"skipped, needs {', '.join(absent)}" if absent else shown(run)), flush=True)
        result = {"name": n, "skipped": f"needs {', '.join(absent)}"} if absent else execute(run, logs)
        results.append(result)
        print(f"  -> {json.dumps(result)[:400]}", flush=True)
        footer = f"\n{time.perf_counter() - t0:.0f} s in all; load {load()} at the end.\n"
        (logs / "results.md").write_text(table(results, runs, header) + footer)  # rewritten after each run
        (logs / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results, runs, header) + footer)
    failed = [r["name"] for r in results if "error" in r or not all(c["ok"] for c in r.get("checks", {}).values())]
    print(json.dumps({"runs": len(results), "failed": failed, "seconds": round(time.perf_counter() - t0, 1)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
