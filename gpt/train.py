"""Training: nanoGPT's loop on minigrad, with exact resume, crash-safe checkpoints and a save on Ctrl-C.

Each iteration: set the learning rate (linear warmup, cosine decay to min_lr),
run grad_accum micro-batches forward and backward, clip the global gradient
norm, take an AdamW step. Every eval_interval iterations: the mean loss over
eval_iters batches of each split, a checkpoint (out_dir/ckpt.npz) and, when val
improves, out_dir/best.npz. A checkpoint holds the model, the optimizer, both
configs, the iteration, the RNG states and the tokenizer, so `resume=True`
continues bit for bit on the CPU (on a GPU, dropout's generator restarts from the seed). A non-finite loss or gradient norm stops the run before
the optimizer step, naming the iteration; the last good checkpoint stays.

One run per folder: out_dir/train.lock holds the pid of the run training there,
so a second run in the same folder fails at once (a lock left by a killed run is
replaced). SIGINT (Ctrl-C) or SIGTERM lets the current step finish, saves
ckpt.npz and raises TrainingInterrupted, whose message says where training
stopped and how to resume; a second signal stops at once, saving nothing.
Resuming drops the lines log.jsonl holds past the checkpoint's iteration.

The step reads top to bottom in _train_loop; what surrounds it (Checkpoints, TrainLog,
StopOnSignal and its vote, the folder's lock) sits below it, in small named pieces.
train() and load_model() set minigrad's default dtype and seed for themselves only:
the caller's come back on return.

Read next: checkpoint.py (what a run saves), then sample.py.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

import minigrad
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.data import Batches, default_corpus, read_text
from gpt.model import GPT, GPTConfig, setting
from gpt.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, bpe_max_vocab_size, encode_array, tokenizer_from_dict
from minigrad import distributed
from minigrad.backend import fork_rng
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import warmup_cosine


@dataclass
class TrainConfig:
    data: str | None = setting(None, "UTF-8 text file; None: the default corpus (Shakespeare's plays)")
    tokenizer: str = setting("char", '"char" or "bpe"')
    bpe_vocab_size: int = setting(512, 'vocabulary size when tokenizer is "bpe"')
    out_dir: str = setting("out", "checkpoints and log.jsonl go here (one run at a time per folder)")
    device: str = setting("cpu", '"cpu" (NumPy) or "cuda" (CuPy)')
    dtype: str = setting("float32", '"float32" or "float64"')
    seed: int = setting(1337, "seeds init, data order, dropout and evaluation batches (>= 0)")
    batch_size: int = setting(12, "sequences per micro-batch (per process under mpiexec)")
    grad_accum: int = setting(1, "micro-batches per optimizer step")
    max_iters: int = setting(2000, "optimizer steps")
    learning_rate: float = setting(1e-3, "peak lr, reached after warmup")
    min_lr: float = setting(1e-4, "lr at the end of the cosine decay")
    warmup_iters: int = setting(100, "linear warmup steps")
    lr_decay_iters: int | None = setting(None, "end of the cosine decay, >= warmup_iters (default: max_iters)")
    weight_decay: float = setting(0.1, "AdamW's, on >= 2-D weights only")
    beta1: float = setting(0.9, "AdamW's decay rate of the gradient's running mean, in [0, 1)")
    beta2: float = setting(0.99, "AdamW's decay rate of the squared gradient's running mean, in [0, 1)")
    grad_clip: float = setting(1.0, "max global gradient norm (0: no clipping)")
    eval_interval: int = setting(250, "evaluate and checkpoint every this many steps")
    eval_iters: int = setting(20, "batches per split in each evaluation")
    log_interval: int = setting(10, "write a training-loss line to log.jsonl this often")
    resume: bool = setting(False, "continue from out_dir/ckpt.npz (the CLI takes the run's settings from it)")
    progress: bool = setting(True, "show a tqdm progress bar (when writing to a terminal)")
    model: GPTConfig = field(default_factory=GPTConfig)  # the architecture (vocab_size comes from the tokenizer)

    def __post_init__(self) -> None:
        check_field_types(self)
        positive = ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters", "log_interval", "bpe_vocab_size")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {v!r}")
        for name in ("learning_rate", "min_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig: {name} must be positive, got {getattr(self, name)!r}")
        if self.min_lr > self.learning_rate:
            raise ValueError(f"TrainConfig: min_lr ({self.min_lr}) is above learning_rate ({self.learning_rate})")
        if self.warmup_iters < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig: warmup_iters, weight_decay and grad_clip must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"TrainConfig: betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"TrainConfig: tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"TrainConfig: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.seed < 0:
            raise ValueError(f"TrainConfig: seed must be a non-negative integer, got {self.seed}")
        if self.lr_decay_iters is not None and (self.lr_decay_iters <= 0 or self.lr_decay_iters < self.warmup_iters):
            raise ValueError(f"TrainConfig: lr_decay_iters must be positive and >= warmup_iters ({self.warmup_iters}), "
                             f"got {self.lr_decay_iters}")
        if not self.out_dir.strip():
            raise ValueError("TrainConfig: out_dir is empty (use '.' for the current folder)")
        if not all(math.isfinite(getattr(self, k)) for k in ("learning_rate", "min_lr", "weight_decay", "grad_clip")):
            raise ValueError("TrainConfig: learning_rate, min_lr, weight_decay and grad_clip must be finite")


_ACCEPTS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def check_field_types(config: Any) -> None:
    """Raise TypeError naming the first field of a config dataclass whose value has the wrong type."""
    for f in fields(config):
        check_type(type(config).__name__, f.name, getattr(config, f.name), str(f.type))


def check_type(where: str, name: str, value: Any, typ: str) -> None:
    """TypeError unless value fits the annotation typ ("int", "float | None"...): a string where a
    number goes, or a bool where an int goes, are a config file's usual slips."""
    base, optional = typ.removesuffix(" | None"), typ.endswith(" | None")
    if base not in _ACCEPTS or (value is None and optional):
        return
    if not isinstance(value, _ACCEPTS[base]) or (isinstance(value, bool) and base != "bool"):
        want = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[base]
        raise TypeError(f"{where}: {name} must be {want}{' or null' if optional else ''}, "
                        f"got {value!r} ({type(value).__name__})")


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after ckpt.npz was saved; the message says how to resume.
    A KeyboardInterrupt, so that `except Exception` does not swallow it."""

    def __init__(self, message: str, signum: int, it: int) -> None:
        super().__init__(message)
        self.signum, self.iter = signum, it


class RunInUse(RuntimeError):
    pass


def acquire_lock(out_dir: Path) -> Path:
    """Create out_dir/train.lock holding our pid; fail if a live process holds it. A lock whose
    process is gone (a killed run's) is replaced."""
    path = out_dir / "train.lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)  # atomic: one process wins
        except FileExistsError:
            pid = _lock_owner(path)
            if pid is not None and _alive(pid):
                raise RunInUse(f"{str(out_dir)!r} is in use by another training run (pid {pid}, see {path}): "
                               "wait for it to finish, stop it, or pass another --out_dir") from None
            path.unlink(missing_ok=True)  # stale: its run was killed before it could remove it
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return path
    raise RunInUse(f"{str(out_dir)!r}: another run took {path} first")


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def remove_leftover_temporaries(out_dir: Path) -> list[Path]:
    """Delete the half-written files of saves that a killed run left behind (ckpt.npz.XXXX.tmp)."""
    left = [p for name in ("ckpt.npz", "best.npz", "log.jsonl") for p in out_dir.glob(f"{name}.*.tmp")]
    for p in left:
        p.unlink(missing_ok=True)
    return left


def truncate_log(path: Path, last_iter: int) -> None:
    """Keep only log.jsonl's records up to last_iter: a run killed after its last checkpoint logged
    iterations that the resumed run will log again."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["iter"] <= last_iter:
                keep.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by the kill
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, path)


def resume_command(out_dir: str | Path, processes: int = 1) -> str:
    mpiexec = f"mpiexec -n {processes} " if processes > 1 else ""
    return f"{mpiexec}python -m gpt train --out_dir {shlex.quote(str(out_dir))} --resume"


def build_tokenizer(cfg: TrainConfig, text: str) -> Tokenizer:
    if cfg.tokenizer == "char":
        return CharTokenizer.train(text)
    most = bpe_max_vocab_size(text)
    if cfg.bpe_vocab_size > most:
        raise ValueError(f"bpe_vocab_size {cfg.bpe_vocab_size} is more than this text can give: its "
                         f"{len(text.encode('utf-8')):,} bytes allow at most {most:,} BPE tokens")
    return BPETokenizer.train(text, cfg.bpe_vocab_size, progress=cfg.progress)


def evaluate(model: GPT, batches: Batches, cfg: TrainConfig, it: int,
             comm: distributed.Communicator | None = None) -> dict[str, float]:
    """Mean loss over eval_iters batches of each split, drawn from their own generator
    (seeded by the iteration) so evaluation never shifts the training data order.
    Under mpiexec each rank evaluates its slice of every batch and the ranks average."""
    model.eval()
    out = {}
    with minigrad.no_grad():
        for split in ("train", "val"):
            rng = np.random.default_rng([cfg.seed, it, split == "val"])
            losses = [model(*batches.sample(split, cfg.device, rng))[1].item() for _ in range(cfg.eval_iters)]
            out[split] = float(np.mean(losses))
    model.train()
    return dict(zip(out, (comm or distributed.Single()).average(list(out.values()))))


RUN_FIELDS = ("tokenizer", "bpe_vocab_size", "data", "dtype")  # with the model's: what a resumed run cannot change


def resume_differences(meta: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Every model, tokenizer and data setting where cfg differs from the checkpoint's run."""
    saved_model, saved_run = meta.get("model_config", {}), meta.get("train_config", {})
    saved_model = {**asdict(GPTConfig()), **saved_model}  # a field added since the checkpoint was written: its default
    mine = asdict(cfg.model)
    mine.pop("vocab_size")  # the tokenizer's, so the checkpoint's
    diffs = [(k, saved_model.get(k), v) for k, v in mine.items() if saved_model.get(k) != v]
    for k in RUN_FIELDS:
        if k == "bpe_vocab_size" and cfg.tokenizer != "bpe":
            continue
        a, b = saved_run.get(k), getattr(cfg, k)
        if k == "data" and a is not None and b is not None and Path(a).resolve() == Path(b).resolve():
            continue
        if a != b:
            diffs.append((k, a, b))
    return [f"{k}: {a!r} in the checkpoint, {b!r} here" for k, a, b in diffs]


def check_model_state(state: dict[str, np.ndarray], where: str) -> None:
    """The weights a checkpoint holds must be floating point, and tied weights (wte and lm_head)
    one array: loading two different ones would let one silently win."""
    for name, arr in state.items():
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{where}: weight {name!r} has dtype {arr.dtype}; weights must be floating point")
    a, b = state.get("transformer.wte.weight"), state.get("lm_head.weight")
    if a is not None and b is not None and (a.shape != b.shape or not np.array_equal(a, b)):
        raise CheckpointError(f"{where}: transformer.wte.weight and lm_head.weight differ, but the model ties them "
                              "(one array): the checkpoint is damaged or was written for another model")


@distributed.abort_job_on_error
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns the final losses, iteration count, timing, and the trained
    model and tokenizer (for sampling right after). Raises TrainingInterrupted on SIGINT/SIGTERM.
    Under `mpiexec -n K`, K processes train one model together (see minigrad/distributed.py);
    rank 0 alone prints and writes files. The caller's default dtype and random state are as they
    were when it returns."""
    comm = distributed.communicator(cfg.device)
    with scoped_defaults(cfg.dtype, cfg.seed):
        saved = load_for_resume(cfg, comm) if cfg.resume else None
        with run_folder(Path(cfg.out_dir), comm.rank):
            text = read_text(cfg.data) if cfg.data else default_corpus()
            tok = tokenizer_from_dict(saved[0]["tokenizer"]) if saved else build_tokenizer(cfg, text)
            return _train_loop(cfg, text, tok, saved, comm)


def _train_loop(cfg: TrainConfig, text: str, tok: Tokenizer, saved: Saved | None,
                comm: distributed.Communicator) -> dict[str, Any]:
    """nanoGPT's loop: set the lr; at intervals evaluate and checkpoint; then one step: get a batch,
    forward, backward (grad_accum times), average the gradients over the ranks, clip, step, log."""
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size))  # the caller's config stays as it was
    batches = Batches(encode_array(tok, text), cfg.model.block_size, cfg.batch_size, cfg.seed,
                      rank=comm.rank, world_size=comm.size, vocab_size=cfg.model.vocab_size)
    model = GPT(cfg.model).to(cfg.device)
    optimizer = model.configure_optimizer(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    ckpt = Checkpoints(cfg, tok, batches, model, optimizer, comm.rank)
    it = ckpt.restore(saved) if saved else 0
    distributed.broadcast_parameters(optimizer, comm)  # every rank starts from rank 0's weights
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    losses: dict[str, float] = {}
    t_start = time.perf_counter()
    # overflow in a diverging run: check_finite names the iteration, instead of NumPy's warnings
    with TrainLog(cfg, comm, it, resumed=saved is not None) as log, StopOnSignal(comm) as stop, \
            np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while True:
            lr = warmup_cosine(it, cfg.learning_rate, cfg.warmup_iters, decay_iters, cfg.min_lr)
            for g in optimizer.param_groups:
                g["lr"] = lr
            if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and it != ckpt.saved_at:
                losses = evaluate(model, batches, cfg, it, comm)
                log.evaluation(it, losses)
                ckpt.save(it, losses["val"])
            if it >= cfg.max_iters:
                break
            if stop.requested:  # Ctrl-C or SIGTERM (under mpiexec: to any rank, by the vote): save, stop
                ckpt.save(it)
                raise stop.interrupted(it, cfg.max_iters, ckpt.path)
            t0 = time.perf_counter()
            # dropout masks from (seed, rank, iteration) alone: each rank its own, and the same again
            # after a resume on any device (CuPy's generator state cannot be saved; integers can)
            minigrad.manual_seed(distributed.rank_seed(cfg.seed, comm.rank, it))
            optimizer.zero_grad(set_to_none=False)  # zero views into the flat buffers: backward adds into them
            loss_sum = 0.0
            for _ in range(cfg.grad_accum):
                _, loss = model(*batches.sample("train", cfg.device))
                (loss / cfg.grad_accum).backward()
                loss_sum = loss_sum + loss.data  # on the device: read once per step (a read waits for the GPU)
            t_allreduce = timed(distributed.allreduce_grads, optimizer, comm)  # every rank: the global mean gradient
            norm = clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)  # the norm; clipped unless grad_clip is 0
            train_loss = stop.average_and_vote(float(loss_sum) / cfg.grad_accum)  # over the ranks; did a signal come?
            check_finite(it, train_loss, norm, ckpt.path)
            optimizer.step()
            it += 1
            log.step(it, train_loss, lr, norm, time.perf_counter() - t0, t_allreduce)
    return {"iter": it, "losses": losses, "best_val": ckpt.best_val, "train_seconds": log.train_seconds,
            "wall_seconds": time.perf_counter() - t_start, "model": model, "tokenizer": tok, "rank": comm.rank}


# ---- the machinery around the loop --------------------------------------------------------------

Saved = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]  # a checkpoint: meta, model, optimizer


@contextlib.contextmanager
def scoped_defaults(dtype: str, seed: int | None = None) -> Iterator[None]:
    """minigrad's default dtype (and, given a seed, its random generators) set for the code inside
    only: the caller's default dtype and random state come back on exit."""
    callers_dtype = minigrad.get_default_dtype()
    with fork_rng():
        minigrad.set_default_dtype(dtype)
        try:
            if seed is not None:
                minigrad.manual_seed(seed)
            yield
        finally:
            minigrad.set_default_dtype(callers_dtype)


def load_for_resume(cfg: TrainConfig, comm: distributed.Communicator) -> Saved:
    """out_dir/ckpt.npz (rank 0 reads it, every rank gets it), refused if cfg is another run's
    or has nothing left to train."""
    ckpt_path = Path(cfg.out_dir) / "ckpt.npz"
    meta, model_state, optim_state = comm.broadcast_object(load_checkpoint(ckpt_path) if comm.rank == 0 else None)
    diffs = resume_differences(meta, cfg)
    if diffs:
        raise CheckpointError(f"{ckpt_path} was written for another run: " + "; ".join(diffs)
                              + " (resume with the checkpoint's settings, or train into another out_dir)")
    if cfg.max_iters <= meta["iter"]:
        raise CheckpointError(f"{ckpt_path} is at iteration {meta['iter']} and max_iters is {cfg.max_iters}: "
                              f"nothing to train (pass a max_iters above {meta['iter']} to train further)")
    check_model_state(model_state, str(ckpt_path))
    return meta, model_state, optim_state


@contextlib.contextmanager
def run_folder(out_dir: Path, rank: int) -> Iterator[None]:
    """out_dir made, locked (train.lock) and cleared of a killed run's half-written files for the
    run inside; on exit the lock goes, and so do the folders made here if the run wrote nothing.
    Rank 0 alone touches files."""
    if rank != 0:
        yield
        return
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = acquire_lock(out_dir)
    try:
        for p in remove_leftover_temporaries(out_dir):
            print(f"removed {p}, left half-written by a run that was killed while saving")
        yield
    finally:
        lock.unlink(missing_ok=True)
        for d in created:  # a run that failed before writing anything leaves no empty folders
            with contextlib.suppress(OSError):  # not empty: it holds the run's files
                d.rmdir()


class Checkpoints:
    """out_dir/ckpt.npz (the last evaluation's state, or where a signal stopped) and best.npz (the
    lowest val loss yet): the model, the optimizer, both configs, the iteration, the RNG states and
    the tokenizer. Every rank keeps best_val and saved_at, so all decide alike; rank 0 alone writes."""

    def __init__(self, cfg: TrainConfig, tok: Tokenizer, batches: Batches, model: GPT,
                 optimizer: minigrad.optim.Optimizer, rank: int) -> None:
        self.cfg, self.tok, self.batches, self.rank = cfg, tok, batches, rank
        self.model, self.optimizer = model, optimizer
        self.path = Path(cfg.out_dir) / "ckpt.npz"
        self.best_val = math.inf
        self.saved_at = -1  # the iteration ckpt.npz holds

    def restore(self, saved: Saved) -> int:
        """The run as the checkpoint left it (weights, optimizer, data order, CPU random state, best
        val loss); returns its iteration."""
        meta, model_state, optim_state = saved
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        self.batches.set_state(meta["data_rng"])
        if meta.get("minigrad_rng") is not None:
            minigrad.backend.set_rng_state(meta["minigrad_rng"])
        self.saved_at, self.best_val = int(meta["iter"]), float(meta["best_val"])
        if self.rank == 0:
            print(f"resuming from iteration {self.saved_at} of {self.path} (best val loss {self.best_val:.4f}), "
                  f"training to {self.cfg.max_iters}", flush=True)
        return self.saved_at

    def save(self, it: int, val: float = math.inf) -> None:
        """ckpt.npz at iteration `it` unless it holds that one already, and best.npz too when `val`
        (an evaluation's val loss) is the lowest yet. Atomic (checkpoint.py): a crash while saving
        leaves the previous file whole."""
        if it == self.saved_at:
            return
        improved, self.best_val = val < self.best_val, min(self.best_val, val)
        if self.rank == 0:
            state = (self.meta(it), self.model.state_dict(), self.optimizer.state_dict())
            if improved:
                save_checkpoint(self.path.with_name("best.npz"), *state)
            save_checkpoint(self.path, *state)
        self.saved_at = it

    def meta(self, it: int) -> dict[str, Any]:
        return {
            "format": "minigrad-gpt-checkpoint/1",
            "train_config": asdict(self.cfg),
            "model_config": asdict(self.cfg.model),
            "iter": it,
            "best_val": self.best_val,
            "tokenizer": self.tok.to_dict(),
            "data_rng": self.batches.state(),
            "minigrad_rng": minigrad.backend.get_rng_state() if self.cfg.device == "cpu" else None,
        }


class TrainLog:
    """What a run reports: log.jsonl (rank 0's; the other ranks write to os.devnull), the tqdm bar
    and the evaluation lines; it also sums the steps' seconds for train()'s result."""

    def __init__(self, cfg: TrainConfig, comm: distributed.Communicator, start_iter: int, resumed: bool) -> None:
        path = Path(cfg.out_dir) / "log.jsonl" if comm.rank == 0 else Path(os.devnull)
        if resumed and comm.rank == 0:
            truncate_log(path, start_iter)
        self.rank, self.processes, self.log_interval = comm.rank, comm.size, cfg.log_interval
        self.tokens_per_iter = cfg.batch_size * cfg.grad_accum * cfg.model.block_size * comm.size
        self.train_seconds = 0.0
        self.file = path.open("a" if resumed else "w")
        shown = cfg.progress and comm.rank == 0
        self.bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=None if shown else True, dynamic_ncols=True)

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()
        self.file.close()

    def evaluation(self, it: int, losses: dict[str, float]) -> None:
        self.write({"iter": it, "train": losses["train"], "val": losses["val"]})
        if self.rank == 0:
            self.bar.write(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")

    def step(self, it: int, loss: float, lr: float, norm: float, seconds: float, allreduce_seconds: float) -> None:
        """After step `it` (counted from 1): the bar moves on; every log_interval steps, a line."""
        self.train_seconds += seconds
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{self.tokens_per_iter / seconds:,.0f}")
        if it % self.log_interval == 0:
            comm_ms = {"allreduce_ms": allreduce_seconds * 1000} if self.processes > 1 else {}
            self.write({"iter": it, "loss": loss, "lr": lr, "grad_norm": norm, "ms": seconds * 1000,
                        "tokens_per_s": self.tokens_per_iter / seconds, **comm_ms})

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as e:  # a full disk: say which file
            raise OSError(e.errno, f"could not write {self.file.name!r} ({e.strerror or e})") from None


class StopOnSignal:
    """While active, SIGINT and SIGTERM only set `signum`: training stops at the next step boundary.
    The previous handlers come back at the first signal, so a second one acts at once. Under
    mpiexec the ranks vote at every step (average_and_vote), so that all stop after the same one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, comm: distributed.Communicator | None = None) -> None:
        self.comm = comm or distributed.Single()
        self.signum: int | None = None  # the signal that came to this process
        self.voted = False  # by the last vote, a signal came to some rank
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for s in self.SIGNALS:
                if signal.getsignal(s) is not signal.SIG_IGN:  # leave ignored signals ignored (nohup, &)
                    self.previous[s] = signal.signal(s, self._handle)
        return self

    def average_and_vote(self, loss: float) -> float:
        """The step's loss averaged over the ranks; in the same collective, the vote on stopping."""
        loss, signalled = self.comm.average([loss, float(self.signum is not None)])
        self.voted = signalled > 0
        return loss

    @property
    def requested(self) -> bool:
        """Stop now: by the vote, or at once when training alone (a signal during an evaluation too)."""
        return self.voted or (self.comm.size == 1 and self.signum is not None)

    def interrupted(self, it: int, max_iters: int, ckpt_path: Path) -> TrainingInterrupted:
        signum = self.signum or signal.SIGTERM  # a rank the signal missed stops by the vote
        resume = resume_command(ckpt_path.parent, self.comm.size)
        return TrainingInterrupted(f"{signal.Signals(signum).name}: stopped at iteration {it} of {max_iters}, "
                                   f"saved {ckpt_path}; resume with: {resume}", signum, it)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """The seconds fn(*args) took."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def check_finite(it: int, loss: float, norm: float, ckpt_path: Path) -> None:
    """TrainingDiverged, before the optimizer step, when the loss or the gradient norm is not finite."""
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise TrainingDiverged(f"iteration {it}: loss {loss}, gradient norm {norm}: stopping; "
                               f"the last good checkpoint is {ckpt_path} (try a lower learning_rate)")


def load_model(path: str | Path, device: str = "cpu") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """A trained model and its tokenizer from a checkpoint, ready for sampling. The model is built in
    the checkpoint's dtype; the caller's default dtype and random state stay as they were."""
    meta, model_state, _ = load_checkpoint(path)
    try:
        mcfg = GPTConfig(**meta["model_config"])
        tok = tokenizer_from_dict(meta["tokenizer"])
        dtype = meta["train_config"]["dtype"]
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has incomplete metadata ({e})") from None
    if tok.vocab_size != mcfg.vocab_size:
        raise CheckpointError(f"checkpoint {str(path)!r}: tokenizer has {tok.vocab_size} tokens, model {mcfg.vocab_size}")
    check_model_state(model_state, f"checkpoint {str(path)!r}")
    with scoped_defaults(dtype):  # the random initial weights are overwritten at once
        model = GPT(mcfg).to(device)
    model.load_state_dict(model_state)
    return model, tok, meta
