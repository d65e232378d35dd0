"""A run as a user meets it: Ctrl-C and SIGTERM save and say how to resume, `--resume` takes the run's
settings from the checkpoint, one run per folder, leftovers of killed runs cleaned up."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import need

from gpt.checkpoint import read_meta
from gpt.cli import main
from gpt.train import RunInUse, TrainConfig, train

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30

# A tiny model that trains a few hundred steps a second; the learning rate decays over 1000 steps
# whatever max_iters is, so a resumed run follows the same schedule as a straight one.
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "4",
        "--eval_iters", "1", "--log_interval", "1", "--lr_decay_iters", "1000", "--warmup_iters", "2",
        "--no-progress", "--sample_tokens", "0"]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["iter"], r["loss"]) for r in records(out) if "loss" in r]


def start_training(tmp_path: Path, out: str, *flags: str) -> subprocess.Popen:
    (tmp_path / "input.txt").write_text(TEXT)
    # SIGINT as at a terminal: under `nohup` or `&` the tests inherit it ignored, and training leaves an
    # ignored signal ignored (train.StopOnSignal), so the test's Ctrl-C would never arrive.
    return subprocess.Popen([sys.executable, "-m", "gpt", "train", "--data", "input.txt", "--out_dir", out, *TINY, *flags],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MINIGRAD_TRACEBACK": ""},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_steps(proc: subprocess.Popen, log: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count('"loss"') >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"training did not log {n} steps: {proc.communicate()}")


def straight_run(tmp_path: Path, iters: int, *flags: str) -> list[tuple[int, float]]:
    assert main(["train", "--data", str(tmp_path / "input.txt"), "--out_dir", str(tmp_path / "straight"), *TINY,
                 "--max_iters", str(iters), *flags]) == 0
    return losses(tmp_path / "straight")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_says_how_to_resume_and_the_resume_is_exact(tmp_path, monkeypatch, capsys, sig, status):
    """Ctrl-C (or SIGTERM) mid-run: the step finishes, ckpt.npz holds that iteration, one line says where
    it stopped and the command that resumes, the exit status is 128 + the signal; that command then
    continues exactly as if there had been no interruption."""
    proc = start_training(tmp_path, "out", "--max_iters", "100000", "--eval_interval", "1000")
    wait_for_steps(proc, tmp_path / "out" / "log.jsonl", 3)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "input.txt", "--out_dir", "out", *TINY]) == 1  # a second run in its folder
    assert f"'out' is in use by another training run (pid {proc.pid}" in capsys.readouterr().err
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    name = sig.name
    match = re.fullmatch(rf"{name}: stopped at iteration (\d+) of 100000, saved out/ckpt.npz; "
                         r"resume with: (python -m gpt train --out_dir out --resume)", stderr.strip())
    assert match, stderr
    stopped = int(match[1])
    assert read_meta(tmp_path / "out" / "ckpt.npz")["iter"] == stopped
    assert [i for i, _ in losses(tmp_path / "out")] == list(range(1, stopped + 1))  # every finished step kept
    assert not (tmp_path / "out" / "train.lock").exists()

    command = match[2].split()[3:] + ["--max_iters", str(stopped + 3), "--no-progress"]
    assert main(command) == 0  # the printed command, with more iterations: every other setting from the checkpoint
    assert f"resuming from iteration {stopped} of out/ckpt.npz" in capsys.readouterr().out
    assert losses(tmp_path / "out") == straight_run(tmp_path, stopped + 3)


def test_sigkill_leaves_a_stale_lock_a_tmp_file_and_log_lines_past_the_checkpoint(tmp_path, monkeypatch):
    """After kill -9: the next run replaces the dead run's lock, removes its half-written save, and drops
    the log lines past the checkpoint, so the resumed log equals a straight run's (no iteration twice)."""
    out = tmp_path / "out"
    proc = start_training(tmp_path, "out", "--max_iters", "100000", "--eval_interval", "4")
    wait_for_steps(proc, out / "log.jsonl", 10)
    # Kill it at a moment when the log is ahead of the checkpoint: freeze the run, look, and thaw it
    # again if it stands just after a save (a kill by timing alone lost that race once under load).
    for _ in range(1000):
        proc.send_signal(signal.SIGSTOP)
        if max(i for i, _ in losses(out)) > read_meta(out / "ckpt.npz")["iter"]:
            break
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    proc.kill()
    proc.communicate()
    (out / "ckpt.npz.k7x2ab.tmp").write_bytes(b"half a save")
    assert (out / "train.lock").read_text().strip() == str(proc.pid)  # the dead run's
    saved = read_meta(out / "ckpt.npz")["iter"]
    assert max(i for i, _ in losses(out)) > saved  # logged past the checkpoint

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out_dir", "out", "--resume", "--max_iters", str(saved + 6), "--no-progress",
                 "--sample_tokens", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "ckpt.npz", "log.jsonl"]
    assert losses(out) == straight_run(tmp_path, saved + 6, "--eval_interval", "4")


def test_a_second_run_in_the_same_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.lock").write_text(f"{os.getpid()}\n")  # a live process holds it
    cfg = TrainConfig(out_dir=str(out), progress=False)
    with pytest.raises(RunInUse, match=rf"'{out}' is in use by another training run \(pid {os.getpid()}"):
        train(cfg)
    assert main(["train", "--out_dir", str(out), "--no-progress"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert (out / "train.lock").read_text() == f"{os.getpid()}\n"  # left to its owner


@pytest.fixture
def run4(tmp_path, monkeypatch):
    """A finished 4-step run in tmp_path/out, cwd tmp_path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text(TEXT)
    (tmp_path / "other.txt").write_text(TEXT.upper())
    assert main(["train", "--data", "input.txt", *TINY, "--max_iters", "4", "--eval_interval", "2"]) == 0
    return tmp_path / "out"


def test_resume_takes_the_settings_from_the_checkpoint(run4, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", "--max_iters", "6", "--no-progress", "--sample_tokens", "0"]) == 0
    assert "resuming from iteration 4 of out/ckpt.npz (best val loss" in capsys.readouterr().out
    meta = read_meta(run4 / "ckpt.npz")
    assert meta["iter"] == 6 and meta["model_config"]["n_embd"] == 16 and meta["train_config"]["batch_size"] == 4


@pytest.mark.parametrize("flags, match", [
    (["--n_embd", "32", "--tokenizer", "bpe"], r"--n_embd 32 \(the checkpoint's: 16\), --tokenizer bpe \(the checkpoint's: char\) differ"),
    (["--data", "other.txt"], r"--data other.txt \(the checkpoint's: input.txt\) differ"),
    (["--max_iters", "4"], r"out/ckpt.npz is at iteration 4 and max_iters is 4: nothing to train"),
    ([], r"is at iteration 4 and max_iters is 4"),  # the checkpoint's own max_iters: that run is finished
])
def test_resume_refuses_what_it_cannot_do_in_one_line(run4, capsys, flags, match):
    capsys.readouterr()
    assert main(["train", "--resume", "--no-progress", *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err), err


def test_resume_in_library_code_names_every_difference(run4):
    cfg = TrainConfig(data="other.txt", tokenizer="bpe", max_iters=8, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"block_size: 8 in the checkpoint, 64 here.*tokenizer: 'char' in the checkpoint, 'bpe' here; "
                                         r"data: 'input.txt' in the checkpoint, 'other.txt' here"):
        train(cfg)



def test_ctrl_c_under_mpiexec_stops_every_rank_at_one_iteration(tmp_path):
    """mpiexec passes Ctrl-C to every rank; the ranks vote at each step, so all stop after the same one,
    rank 0 saves, and the line (printed once) resumes with the same number of processes."""
    need("mpi4py")
    beside_python = Path(sys.executable).parent / "mpiexec"  # where the mpich wheel installs it
    mpiexec = str(beside_python) if beside_python.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    (tmp_path / "input.txt").write_text(TEXT)
    proc = subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "gpt", "train", "--data", "input.txt", "--out_dir", "out",
                             *TINY, "--max_iters", "100000", "--eval_interval", "1000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MINIGRAD_TRACEBACK": ""})
    wait_for_steps(proc, tmp_path / "out" / "log.jsonl", 3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stops = re.findall(r"SIGINT: stopped at iteration (\d+) of 100000, saved out/ckpt.npz; "
                       r"resume with: mpiexec -n 2 python -m gpt train --out_dir out --resume", stderr)
    assert len(stops) == 1, stderr
    assert read_meta(tmp_path / "out" / "ckpt.npz")["iter"] == int(stops[0]) == max(i for i, _ in losses(tmp_path / "out"))
