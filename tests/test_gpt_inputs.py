"""Bad and edge inputs to the CLI, each answered by one line that names what was wrong (the flag,
the config key and its file, the checkpoint), and output made for people: tables, titles, streaming."""
from __future__ import annotations

import errno
import os
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import need

import gpt.checkpoint
from gpt.checkpoint import load_checkpoint, save_checkpoint
from gpt.cli import main
from gpt.model import GPTConfig
from gpt.sample import print_stream, stream
from gpt.tokenizer import BPETokenizer
from gpt.train import TrainConfig, TrainingDiverged, load_model, train

ROOT = Path(__file__).resolve().parents[1]
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "4",
        "--eval_iters", "1", "--eval_interval", "2", "--max_iters", "2", "--no-progress", "--sample_tokens", "0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A folder with a text, a finished tiny run in out/, and a few files to point flags at."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "input.txt").write_text(TEXT)
    (d / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (d / "folder").mkdir()
    assert main(["train", "--data", str(d / "input.txt"), "--out_dir", str(d / "out"), *TINY]) == 0
    meta, model, optim = load_checkpoint(d / "out" / "ckpt.npz")
    untied = {**model, "lm_head.weight": model["lm_head.weight"] + 1}
    save_checkpoint(d / "untied.npz", meta, _tensors(untied), None)
    ints = {k: v.astype(np.int64) for k, v in model.items()}
    save_checkpoint(d / "ints.npz", meta, _tensors(ints), None)
    missing = {k: v for k, v in model.items() if k != "transformer.ln_f.weight"}
    save_checkpoint(d / "missing.npz", meta, _tensors(missing), None)
    (d / "broken").mkdir()
    lines = (d / "out" / "log.jsonl").read_text().splitlines()
    (d / "broken" / "log.jsonl").write_text(lines[0] + '\n{"iter": 1, "loss": 2.0{"iter": 2\n' + "\n".join(lines[1:]) + "\n")
    return d


def _tensors(state):
    import minigrad

    return {k: minigrad.Tensor(v) for k, v in state.items()}


TOML = {
    "string for a float": ('learning_rate = "1e-3"\n', r"cfg.toml': learning_rate must be a number, got '1e-3' \(str\)"),
    "bool for an int": ("batch_size = true\n", r"cfg.toml': batch_size must be an integer, got True \(bool\)"),
    "string for a bool": ('progress = "no"\n', r"cfg.toml': progress must be true or false, got 'no' \(str\)"),
    "syntax": ("max_iters = = 3\n", r"config file '.*cfg.toml' is not valid TOML \(.*line 1"),
    "key in the wrong section": ("[train]\nmax_iters = 3\n[model]\nmax_iters = 999\n",
                                 r"cfg.toml': 'max_iters' is not a \[model\] setting"),
    "unknown section": ("[optim]\nlr = 1\n", r"cfg.toml': unknown section \[optim\]"),
    "set twice": ("n_layer = 2\n[model]\nn_layer = 3\n", r"cfg.toml': 'n_layer' is set twice"),
}

CASES = {  # flags -> the one error line
    "sample --temperature -1": (["sample", "--temperature", "-1"], r"temperature must be >= 0 .*got -1.0"),
    "sample --temperature nan": (["sample", "--temperature", "nan"], r"temperature must be >= 0 .*got nan"),
    "sample --max_new_tokens -5": (["sample", "--max_new_tokens", "-5"], r"max_new_tokens must be a non-negative integer, got -5"),
    "sample --seed -1": (["sample", "--seed", "-1"], r"seed must be a non-negative integer, got -1"),
    "train --lr_decay_iters 0": (["train", "--lr_decay_iters", "0"], r"lr_decay_iters must be positive and >= warmup_iters"),
    "train --lr_decay_iters -5": (["train", "--lr_decay_iters", "-5"], r"lr_decay_iters must be positive"),
    "train --lr_decay_iters 50 (below warmup 100)": (["train", "--lr_decay_iters", "50"], r"lr_decay_iters .*got 50"),
    'train --out_dir ""': (["train", "--out_dir", ""], r"out_dir is empty \(use '\.' for the current folder\)"),
    "train --seed -1": (["train", "--seed", "-1"], r"seed must be a non-negative integer, got -1"),
    "train --learning_rate inf": (["train", "--learning_rate", "inf"], r"must be finite"),
    "train --sample_tokens -1": (["train", "--sample_tokens", "-1"], r"--sample_tokens must be >= 0"),
    "train --bpe_vocab_size 1000000 on 2 KB": (["train", "--data", "input.txt", "--tokenizer", "bpe", "--bpe_vocab_size", "1000000"],
                                               r"bpe_vocab_size 1000000 is more than this text can give: its [\d,]+ bytes allow at most \d+"),
    "sample --ckpt FOLDER": (["sample", "--ckpt", "out"], r"checkpoint 'out' is a folder, not a checkpoint file \(did you mean 'out/ckpt.npz'\?\)"),
    "sample --prompt_file missing": (["sample", "--ckpt", "out/ckpt.npz", "--prompt_file", "nope.txt"], r"prompt file 'nope.txt' does not exist"),
    "sample --prompt_file FOLDER": (["sample", "--ckpt", "out/ckpt.npz", "--prompt_file", "folder"], r"prompt file 'folder' is not a file"),
    "sample --prompt_file latin-1": (["sample", "--ckpt", "out/ckpt.npz", "--prompt_file", "latin1.txt"],
                                     r"prompt file 'latin1.txt' is not UTF-8 text \(unexpected end of data at byte 3\)"),
    "sample --ckpt untied wte/lm_head": (["sample", "--ckpt", "untied.npz"], r"transformer.wte.weight and lm_head.weight differ, but the model ties them"),
    "sample --ckpt integer weights": (["sample", "--ckpt", "ints.npz"], r"weight 'transformer.wte.weight' has dtype int64; weights must be floating point"),
    "sample --ckpt missing key": (["sample", "--ckpt", "missing.npz"], r"^error: load_state_dict: missing keys \['transformer.ln_f.weight'\]"),
    "plot a log with a broken line": (["plot", "--out_dir", "broken"], r"log file 'broken/log.jsonl', line 2, is not JSON"),
    "train --resume --n_embd 32 (checkpoint: 16)": (["train", "--resume", "--n_embd", "32"], r"--n_embd 32 \(the checkpoint's: 16\)"),
    **{f"train --config with {k}": (["train", "--config", "cfg.toml"], m) for k, (_, m) in TOML.items()},
}


@pytest.mark.parametrize("name", CASES)
def test_one_error_line(run_dir, monkeypatch, capsys, name):
    argv, match = CASES[name]
    monkeypatch.chdir(run_dir)
    monkeypatch.delenv("MINIGRAD_TRACEBACK", raising=False)
    if "--config" in argv:
        (run_dir / "cfg.toml").write_text(TOML[name.removeprefix("train --config with ")][0])
    if argv[0] == "plot":
        need("matplotlib")
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 1, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(match, lines[0]), lines


def test_out_of_space_names_the_file(tmp_path, monkeypatch):
    def full_disk(f, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    save_checkpoint(tmp_path / "ckpt.npz", {"iter": 1}, {}, None)
    monkeypatch.setattr(gpt.checkpoint.np, "savez", full_disk)
    with pytest.raises(OSError, match=rf"could not write checkpoint '{tmp_path}/ckpt.npz' \(No space left on device\); "
                                      "the previous one, if any, is intact") as e:
        save_checkpoint(tmp_path / "ckpt.npz", {"iter": 2}, {}, None)
    assert e.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"] and load_checkpoint(tmp_path / "ckpt.npz")[0] == {"iter": 1}


def test_a_diverging_run_reports_once_without_numpy_warnings(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    cfg = TrainConfig(data=str(tmp_path / "t.txt"), out_dir=str(tmp_path / "out"), batch_size=4, max_iters=50, eval_interval=50,
                      eval_iters=1, learning_rate=1e6, min_lr=1.0, warmup_iters=0, grad_clip=0.0, progress=False,
                      model=GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here first
        with pytest.raises(TrainingDiverged, match=r"iteration \d+: loss .*try a lower learning_rate"):
            train(cfg)


def test_text_without_a_newline_trains_and_samples(tmp_path, monkeypatch, capsys):
    """The sample after training, and `sample` without --prompt, start from a newline; a text without
    one starts from its first token instead of failing after the run."""
    (tmp_path / "one_line.txt").write_text("to be or not to be that is the question " * 20)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", "one_line.txt", *TINY]
    argv[argv.index("--sample_tokens") + 1] = "20"
    assert main(argv) == 0
    assert len(capsys.readouterr().out.split("---- sample ----\n")[1]) == 20 + 1
    assert main(["sample", "--max_new_tokens", "10"]) == 0
    assert len(capsys.readouterr().out) == 1 + 10 + 1  # the first token, 10 more, print's newline


def test_mlp_spirals_bad_device_is_one_line():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "mlp_spirals.py"), "--device", "cuda", "--steps", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: unknown or unavailable device 'cuda'")


# ---- output for people --------------------------------------------------------------------------------


def test_bench_prints_a_table_and_json_on_request(capsys):
    tiny = ["bench", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "2",
            "--iters", "2", "--warmup", "1", "--no-sample"]
    assert main(tiny) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "1 layers, 2 heads, n_embd 16, block 8, batch 2, on cpu: median of 5 steps"
    assert [line.split("  ")[0] for line in table[2:]] == ["ms per step", "tokens per second", "peak memory (MB)",
                                                           "the step's own memory (MB)"]
    assert main([*tiny, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ms_per_iter"] > 0


def test_train_help_says_each_default_once_and_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "(default: max_iters)" in text and "(default: max_iters) (default" not in text
    for flag in ("--beta1", "--beta2", "--lr_decay_iters", "--out_dir"):
        block = text.split(f" {flag} {flag[2:].upper()} ")[1].split(" --")[0]
        assert block.count("(default:") == 1, block
        assert flag not in ("--beta1", "--beta2") or "running mean" in block


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bpe_training_shows_progress_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    BPETokenizer.train(TEXT, 270, progress=True)
    assert "BPE merges" in sys.stderr.getvalue() and "14/14" in sys.stderr.getvalue()


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []

    def write(self, s: str) -> int:
        self.pieces.append(s)
        return super().write(s)


def test_sample_streams_text_as_it_comes_whole_characters_only(run_dir):
    model, tok, _ = load_model(run_dir / "out" / "ckpt.npz")
    tokens = stream(model, [0], 12, seed=0)
    assert next(tokens) in range(tok.vocab_size)  # one token drawn: a generator, not a list made at the end
    out = Writes()
    print_stream(tok, tokens, out)
    assert len(out.pieces) == 11 and out.getvalue() == tok.decode(tok.encode(out.getvalue()))
    bpe = BPETokenizer([])  # bytes only: "é" is two tokens, printed once both came
    out = Writes()
    print_stream(bpe, iter(bpe.encode("aé b")), out)
    assert out.pieces == ["a", "é", " ", "b"]


# ---- the first hour: the next step named, nothing half-made ------------------------------------
def test_abbreviated_flags_are_refused(tmp_path, capsys):
    """argparse would take --max_iter for --max_iters; a typo must not pass as another flag."""
    with pytest.raises(SystemExit) as e:
        main(["train", "--max_iter", "3", "--out_dir", str(tmp_path / "run")])
    assert e.value.code == 2 and "unrecognized arguments: --max_iter 3" in capsys.readouterr().err


def test_sample_before_training_says_train_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample"]) == 1
    assert capsys.readouterr().err == "error: checkpoint 'out/ckpt.npz' does not exist (train first: python -m gpt train)\n"
    assert main(["sample", "--ckpt", "runs/a/ckpt.npz"]) == 1
    assert "(train first: python -m gpt train --out_dir runs/a)" in capsys.readouterr().err
    assert main(["sample", "--pretrained", "out/hf"]) == 1
    assert "pretrained directory 'out/hf' does not exist (python -m gpt export" in capsys.readouterr().err


def test_a_run_that_fails_at_start_leaves_no_empty_folders(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--out_dir", str(tmp_path / "a" / "b"), *TINY]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # a folder that was there before stays, with what it held
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--out_dir", str(tmp_path / "kept"), *TINY]) == 1
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("argv, module, line", [
    (["export", "--to", "hf"], "safetensors", "error: writing model.safetensors needs safetensors: pip install -e '.[hf]'"),
    (["plot", "--out_dir", "out"], "matplotlib", "error: plotting needs matplotlib: pip install -e '.[plot]'"),
    (["bench", "--vs", "torch", "--iters", "1"], "torch",
     "error: bench --vs torch needs PyTorch: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"),
])
def test_a_missing_extra_is_one_line_with_its_install_command(run_dir, monkeypatch, capsys, argv, module, line):
    monkeypatch.chdir(run_dir)
    monkeypatch.delenv("MINIGRAD_TRACEBACK", raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, as when it is not installed
    monkeypatch.setitem(sys.modules, module + ".numpy" if module == "safetensors" else module + ".pyplot", None)
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines()[-1] == line


def test_threads_come_from_the_flag_the_environment_or_the_idle_cores(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    from gpt.cli import set_threads

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=None):  # restores this process's threads afterwards
        assert set_threads(1) == 1 and blas_threads() == {1}
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(v, raising=False)
        monkeypatch.setattr("minigrad.speed.idle_cores", lambda: 0.3)  # a busy machine: one thread
        assert set_threads(None) == 1
        monkeypatch.setattr("minigrad.speed.idle_cores", lambda: 1.8)
        assert set_threads(None) == 2 and blas_threads() == {2}
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the user's setting is kept
        assert set_threads(None) is None and blas_threads() == {2}
        with pytest.raises(ValueError, match="--threads must be >= 1, got 0"):
            set_threads(0)


def test_idle_cores_counts_cores_nobody_uses():
    from minigrad.speed import idle_cores

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 0 <= idle_cores(0.05) <= cores
