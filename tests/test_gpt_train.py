"""Training: loss goes down, exact resume, the NaN guard, crash-safe pickle-free checkpoints, memory, the CLI."""
from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
import weakref
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import minigrad
import gpt.train
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.cli import build_parser, main, make_train_config
from gpt.model import GPT, GPTConfig
from gpt.sample import generate
from gpt.train import TrainConfig, TrainingDiverged, load_model, train
from minigrad.backend import fork_rng

TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them.\n\n"
) * 15  # ~3 KB, 30-odd distinct characters

MODEL_FIELDS = {f.name for f in fields(GPTConfig)}


def config(tmp_path: Path, **kw) -> TrainConfig:
    """A tiny run on TEXT: one block, width 16, context 8, batches of 4, no progress bar."""
    data = tmp_path / "input.txt"
    if not data.exists():
        data.write_text(TEXT, encoding="utf-8")
    model = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0}
    model.update({k: kw.pop(k) for k in list(kw) if k in MODEL_FIELDS})
    run = {"data": str(data), "out_dir": str(tmp_path / "out"), "batch_size": 4, "max_iters": 20,
           "eval_interval": 10, "eval_iters": 2, "log_interval": 1, "warmup_iters": 2,
           "learning_rate": 1e-2, "min_lr": 1e-3, "progress": False}
    run.update(kw)
    return TrainConfig(model=GPTConfig(**model), **run)


def logged(out_dir: str | Path, key: str) -> list[float]:
    """One column of out_dir/log.jsonl: "loss" (training steps) or "val" (evaluations)."""
    records = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return [r[key] for r in records if key in r]


# ---- training -------------------------------------------------------------------------------


def test_loss_decreases(tmp_path):
    result = train(config(tmp_path, max_iters=100, eval_interval=50, eval_iters=4, batch_size=8, learning_rate=2e-2))
    val = logged(tmp_path / "out", "val")
    assert len(val) == 3  # evaluations at 0, 50, 100
    assert val[-1] < val[0] - 0.6  # from ~ln(vocab) = 3.4 towards the text's character statistics
    assert result["iter"] == 100 and result["losses"]["val"] == val[-1]


def test_checkpoints_are_written_and_load_for_sampling(tmp_path, device):
    result = train(config(tmp_path, device=device, max_iters=6, eval_interval=3))
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"ckpt.npz", "best.npz", "log.jsonl"}  # no stray temporary files
    meta, model_state, optim_state = load_checkpoint(out / "ckpt.npz")
    assert meta["iter"] == 6 and meta["model_config"]["vocab_size"] == result["tokenizer"].vocab_size
    assert set(model_state) == set(result["model"].state_dict()) and optim_state["step"] == 6
    model, tok, _ = load_model(out / "ckpt.npz", device)
    for name, t in result["model"].state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), t.numpy())
    text = tok.decode(generate(model, tok.encode("To be"), 10, seed=0))
    assert text.startswith("To be") and len(text) == 15


def test_same_seed_same_losses_other_seed_other_losses(tmp_path):
    runs = {}
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        train(config(tmp_path, seed=seed, dropout=0.1, max_iters=8, out_dir=str(tmp_path / name)))
        runs[name] = logged(tmp_path / name, "loss")
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize("stop, grad_accum", [(12, 1), (10, 2)])  # 10: not a multiple of eval_interval
def test_resume_is_exact(tmp_path, stop, grad_accum):
    """`stop` steps, stop, resume to 24 == 24 steps straight, bit for bit: model, optimizer, data order,
    dropout masks and the learning-rate schedule all continue where they stopped. (lr_decay_iters is
    set because by default the cosine ends at max_iters, which differs between the short run and
    the others.)"""
    kw = dict(dropout=0.1, lr_decay_iters=24, eval_interval=6, grad_accum=grad_accum)
    train(config(tmp_path, max_iters=24, out_dir=str(tmp_path / "straight"), **kw))
    train(config(tmp_path, max_iters=stop, out_dir=str(tmp_path / "resumed"), **kw))
    train(config(tmp_path, max_iters=24, out_dir=str(tmp_path / "resumed"), resume=True, **kw))
    straight, resumed = logged(tmp_path / "straight", "loss"), logged(tmp_path / "resumed", "loss")
    assert len(straight) == 24 and resumed == straight
    _, a, opt_a = load_checkpoint(tmp_path / "straight" / "ckpt.npz")
    _, b, opt_b = load_checkpoint(tmp_path / "resumed" / "ckpt.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert opt_a["step"] == opt_b["step"] == 24


def test_resume_is_exact_on_a_device_with_dropout(tmp_path, gpu_device):
    """Off the CPU too: the checkpoint holds no generator state (CuPy's cannot be saved), but each
    iteration's dropout masks come from (seed, rank, iteration), integers a resumed run knows."""
    kw = dict(device=gpu_device, dropout=0.1, lr_decay_iters=16, eval_interval=8)
    train(config(tmp_path, max_iters=16, out_dir=str(tmp_path / "straight"), **kw))
    train(config(tmp_path, max_iters=8, out_dir=str(tmp_path / "resumed"), **kw))
    train(config(tmp_path, max_iters=16, out_dir=str(tmp_path / "resumed"), resume=True, **kw))
    assert logged(tmp_path / "resumed", "loss") == logged(tmp_path / "straight", "loss")


def test_resume_with_another_model_config(tmp_path):
    train(config(tmp_path, max_iters=2, eval_interval=2))
    with pytest.raises(CheckpointError, match="n_embd: 16 in the checkpoint, 32 here"):
        train(config(tmp_path, max_iters=4, n_embd=32, resume=True))


def test_resume_without_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        train(config(tmp_path, resume=True))


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"max_iters": -1}, "max_iters must be a positive integer"),
    ({"min_lr": 1.0}, r"min_lr \(1.0\) is above learning_rate"),
    ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ({"beta2": 1.0}, r"betas must be in \[0, 1\)"),
    ({"tokenizer": "word"}, "tokenizer must be 'char' or 'bpe'"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
])
def test_bad_train_configs(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        config(tmp_path, **kw)


def test_bpe_and_float64_training(tmp_path):
    cfg = config(tmp_path, tokenizer="bpe", bpe_vocab_size=280, dtype="float64", max_iters=4, eval_interval=2)
    result = train(cfg)
    assert result["tokenizer"].vocab_size == 280
    assert {str(p.dtype) for p in result["model"].parameters()} == {"float64"}


# ---- the caller's global state -------------------------------------------------------------------


def draws_after(action) -> np.ndarray:
    """The caller seeds, draws, calls `action`, draws again: the second draw, which action must not change."""
    minigrad.manual_seed(5)
    minigrad.randn(2)
    action()
    return minigrad.randn(4).numpy()


def test_train_and_load_model_leave_the_callers_dtype_and_random_state(tmp_path):
    """A float64 run and loading its checkpoint set the default dtype and reseed for themselves only."""
    callers = draws_after(lambda: None)
    ran = {}

    def run() -> None:
        ran.update(train(config(tmp_path, dtype="float64", dropout=0.1, max_iters=3)))

    def load() -> None:
        ran["loaded"], ran["tok"], _ = load_model(tmp_path / "out" / "ckpt.npz")

    try:
        after_train = draws_after(run)
        assert minigrad.get_default_dtype() == np.float32
        after_load = draws_after(load)
        assert minigrad.get_default_dtype() == np.float32
    finally:
        minigrad.set_default_dtype(np.float32)  # should a check fail, the other tests still run in float32
    np.testing.assert_array_equal(after_train, callers)
    np.testing.assert_array_equal(after_load, callers)
    for model in (ran["model"], ran["loaded"]):  # float64 models, sampled from with float32 the default
        assert {p.dtype for p in model.parameters()} == {np.dtype("float64")}
        for use_cache in (True, False):
            assert len(generate(model, ran["tok"].encode("To be"), 4, seed=0, use_cache=use_cache)) == 9


def test_train_takes_the_same_steps_whatever_the_caller_drew_before(tmp_path):
    """The run seeds itself: a caller's earlier draws change nothing in it."""
    train(config(tmp_path, dropout=0.1, max_iters=4, out_dir=str(tmp_path / "a")))
    minigrad.manual_seed(99)
    minigrad.randn(7)
    train(config(tmp_path, dropout=0.1, max_iters=4, out_dir=str(tmp_path / "b")))
    assert logged(tmp_path / "a", "loss") == logged(tmp_path / "b", "loss")


def test_fork_rng_gives_the_callers_generators_back():
    """As torch.random.fork_rng: inside, draws continue the caller's stream (from a copy), and a
    reseed or draws there leave the caller's stream where it was."""
    minigrad.manual_seed(3)
    minigrad.rand(2)
    with fork_rng():
        inside = minigrad.rand(3).numpy()
        minigrad.manual_seed(4)
        minigrad.rand(5)
    np.testing.assert_array_equal(minigrad.rand(3).numpy(), inside)


# ---- the NaN guard ------------------------------------------------------------------------------


@pytest.mark.parametrize("poison", ["loss", "grad_norm"])
def test_non_finite_loss_stops_before_the_step(tmp_path, monkeypatch, poison):
    """Iteration 7 goes non-finite: TrainingDiverged names it, and ckpt.npz from the evaluation at
    iteration 5 is left exactly as it was."""
    ckpt = tmp_path / "out" / "ckpt.npz"
    before: dict[str, bytes] = {}
    steps = {"n": 0}

    def poisoned(value):  # called once per training step; at iteration 7, remember the checkpoint and poison
        steps["n"] += 1
        if steps["n"] == 8:
            before["ckpt"] = ckpt.read_bytes()
            return value * float("nan")
        return value

    if poison == "loss":
        forward = GPT.forward

        def forward_with_nan(self, idx, targets=None, cache=None):
            logits, loss = forward(self, idx, targets, cache)
            return logits, (poisoned(loss) if self.training else loss)

        monkeypatch.setattr(GPT, "forward", forward_with_nan)
    else:
        clip = gpt.train.clip_grad_norm_
        monkeypatch.setattr(gpt.train, "clip_grad_norm_", lambda params, max_norm: poisoned(clip(params, max_norm)))

    match = "iteration 7: loss nan" if poison == "loss" else r"iteration 7: loss [0-9.]+, gradient norm nan"
    with pytest.raises(TrainingDiverged, match=match):
        train(config(tmp_path, max_iters=20, eval_interval=5))
    assert ckpt.read_bytes() == before["ckpt"]
    meta, _, _ = load_checkpoint(ckpt)
    assert meta["iter"] == 5
    model, _, _ = load_model(ckpt)
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())
    assert len(logged(tmp_path / "out", "loss")) == 7  # iterations 0..6 stepped and logged


# ---- checkpoints ----------------------------------------------------------------------------------


def small_checkpoint(path: Path) -> None:
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    _, loss = model([[1, 2]], [[2, 3]])
    loss.backward()
    opt.step()
    save_checkpoint(path, {"iter": 1}, model.state_dict(), opt.state_dict())


def test_checkpoint_round_trip(tmp_path):
    small_checkpoint(tmp_path / "c.npz")
    meta, model, optim = load_checkpoint(tmp_path / "c.npz")
    assert meta == {"iter": 1} and "lm_head.weight" in model and optim["step"] == 1
    assert optim["param_groups"][0]["weight_decay"] == 0.1 and set(optim["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("damage", ["empty", "first half", "last bytes cut", "one byte flipped", "not a zip"])
def test_damaged_checkpoint(tmp_path, damage):
    path = tmp_path / "c.npz"
    small_checkpoint(path)
    raw = path.read_bytes()
    path.write_bytes({
        "empty": b"",
        "first half": raw[: len(raw) // 2],
        "last bytes cut": raw[:-10],
        "one byte flipped": raw[:600] + bytes([raw[600] ^ 0xFF]) + raw[601:],
        "not a zip": b"hello world " * 10,
    }[damage])
    with pytest.raises(CheckpointError, match="is truncated or corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize("arrays, match", [
    ({"model/w": np.zeros(3)}, "has no metadata"),
    ({"meta": np.frombuffer(b"\xff{", dtype=np.uint8)}, "corrupt metadata"),
    ({"meta": np.frombuffer(b"{}", dtype=np.uint8), "optim_meta": np.frombuffer(b"[1]", dtype=np.uint8)},
     "corrupt optimizer metadata"),
])
def test_npz_that_is_not_a_checkpoint(tmp_path, arrays, match):
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "c.npz")


class RunsCodeWhenUnpickled:
    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (Path.touch, (self.flag,))  # unpickling would call Path.touch(flag)


def test_loading_never_unpickles(tmp_path):
    """A checkpoint holding an object array (pickled Python objects) is rejected, and no code runs."""
    flag = tmp_path / "pwned"
    meta = np.frombuffer(json.dumps({"iter": 0}).encode(), dtype=np.uint8)
    payload = np.array([RunsCodeWhenUnpickled(flag)], dtype=object)
    np.savez(tmp_path / "c.npz", meta=meta, **{"model/w": payload})
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "c.npz")
    assert not flag.exists()


SAVE_FOREVER = """
import sys
import numpy as np
import minigrad
from gpt.checkpoint import save_checkpoint
for i in range(1_000_000):
    w = minigrad.Tensor(np.full(2_000_000, float(i), dtype=np.float32))  # 8 MB
    save_checkpoint(sys.argv[1], {"i": i}, {"w": w}, None)
    print(i, flush=True)
"""


def half_written(folder: Path) -> bool:
    """Whether some file in folder (a temporary file, or the checkpoint itself if it were written in
    place) holds part of a save: 1 to 7 of its 8 MB."""
    for p in folder.iterdir():
        try:
            if 1_000_000 < p.stat().st_size < 7_000_000:
                return True
        except FileNotFoundError:  # renamed in the meantime
            pass
    return False


def test_kill_during_save_leaves_the_previous_checkpoint_whole(tmp_path):
    """SIGKILL a process that saves in a loop while it is writing: ckpt.npz is one whole save."""
    path = tmp_path / "ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"  # one save is complete
        deadline = time.monotonic() + 5
        while not half_written(tmp_path) and time.monotonic() < deadline:
            pass  # wait until the next save is half written
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    meta, model, _ = load_checkpoint(path)
    w = model["w"]
    assert w.shape == (2_000_000,) and np.all(w == meta["i"])  # every byte from the same save


# ---- memory ---------------------------------------------------------------------------------------


def _saved_activations(loss) -> list:
    """Weak references to every array the graph behind `loss` keeps for backward, parameters' aside."""
    fns, stack, seen = [], [loss._ctx], set()
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        fns.append(fn)
        stack.extend(e for e in fn.edges if isinstance(e, minigrad.autograd.Function))
    arrays = [v for fn in fns for v in vars(fn).values() if isinstance(v, np.ndarray)]
    return [weakref.ref(a) for a in arrays if a.base is None]  # parameters are views into flat buffers


def test_backward_frees_the_activations():
    """Activations live as long as the graph needs them: backward frees the graph, so they are gone
    even while the loss tensor itself is still referenced (by reference counting, no gc needed)."""
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):  # and a second or third step keeps nothing from the one before
            _, loss = model([[1, 2, 3, 4]], [[2, 3, 4, 5]])
            refs = _saved_activations(loss)
            assert len(refs) > 20 and all(r() is not None for r in refs)  # the graph holds them
            loss.backward()
            assert all(r() is None for r in refs)  # ...until backward is done with them
            opt.step()
            opt.zero_grad()
    finally:
        gc.enable()


def test_no_grad_forward_keeps_no_graph():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with minigrad.no_grad():
        logits, loss = model([[1, 2, 3]], [[2, 3, 4]])
    assert loss._ctx is None and not loss.requires_grad


# ---- the command line ------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpt", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MINIGRAD_TRACEBACK": ""})


def test_cli_missing_data_file_is_one_error_line(tmp_path):
    r = run_cli("train", "--data", "missing.txt", "--no-progress", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == ["error: data file 'missing.txt' does not exist"]


@pytest.mark.parametrize("command, flags", [
    ("train", ["--config", "--n_layer", "--max_iters", "--resume", "--no-resume", "--pos_encoding"]),
    ("sample", ["--ckpt", "--prompt", "--top_k", "--top_p", "--no-cache"]),
])
def test_cli_help(tmp_path, command, flags):
    r = run_cli(command, "--help", cwd=tmp_path)
    assert r.returncode == 0
    for flag in flags:
        assert flag in r.stdout


@pytest.mark.parametrize("argv, match", [
    (["train", "--n_embd", "16", "--n_head", "3"], r"n_embd \(16\) must be divisible by n_head \(3\)"),
    (["train", "--config", "nope.json"], "config file 'nope.json' does not exist"),
    (["sample", "--ckpt", "nope.npz"], "checkpoint 'nope.npz' does not exist"),
])
def test_cli_errors_in_process(tmp_path, monkeypatch, capsys, argv, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINIGRAD_TRACEBACK", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(match, err[0])


CONFIG_FILES = {
    "json": '{"n_layer": 3, "n_embd": 48, "learning_rate": 0.005, "model": {"n_head": 6}}',
    "toml": 'n_layer = 3\nlearning_rate = 0.005\n[model]\nn_embd = 48\nn_head = 6\n',
}


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_config_file_sets_fields_and_flags_override_it(tmp_path, fmt):
    path = tmp_path / f"cfg.{fmt}"
    path.write_text(CONFIG_FILES[fmt])
    args = vars(build_parser().parse_args(["train", "--config", str(path), "--n_layer", "5", "--no-progress"]))
    del args["command"], args["sample_tokens"]
    cfg = make_train_config(args)
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (5, 48, 6)  # flag beats file
    assert cfg.learning_rate == 0.005 and cfg.progress is False  # from the file, from a flag
    assert cfg.max_iters == TrainConfig().max_iters  # neither: the default


def test_config_file_with_an_unknown_key(tmp_path):
    (tmp_path / "cfg.json").write_text('{"n_layers": 3}')
    with pytest.raises(ValueError, match=r"unknown config keys: \['n_layers'\]"):
        make_train_config({"config": str(tmp_path / "cfg.json")})


def test_cli_train_then_sample(tmp_path, monkeypatch, capsys):
    (tmp_path / "input.txt").write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.toml").write_text("max_iters = 4\neval_interval = 2\neval_iters = 1\nbatch_size = 2\n"
                                       "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 8\n")
    assert main(["train", "--config", "cfg.toml", "--data", "input.txt", "--no-progress", "--sample_tokens", "5"]) == 0
    out = capsys.readouterr().out
    summary = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert summary[0]["iter"] == 4 and "---- sample ----" in out
    assert main(["sample", "--prompt", "To be", "--max_new_tokens", "6", "--seed", "1"]) == 0  # out/ckpt.npz
    text = capsys.readouterr().out
    assert text.startswith("To be") and len(text) == len("To be") + 6 + 1  # + print's newline
