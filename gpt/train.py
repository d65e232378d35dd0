"""Training: nanoGPT's loop on minigrad, with exact resume and crash-safe checkpoints.

Each iteration: set the learning rate (linear warmup, cosine decay to min_lr),
run grad_accum micro-batches forward and backward, clip the global gradient
norm, take an AdamW step. Every eval_interval iterations: the mean loss over
eval_iters batches of each split, a checkpoint (out_dir/ckpt.npz) and, when val
improves, out_dir/best.npz. A checkpoint holds the model, the optimizer, both
configs, the iteration, the RNG states and the tokenizer, so `resume=True`
continues bit for bit on the CPU (on a GPU, dropout's generator restarts from the seed). A non-finite loss or gradient norm stops the run before
the optimizer step, naming the iteration; the last good checkpoint stays.

Read next: sample.py.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import minigrad
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.data import Batches, default_corpus, read_text
from gpt.model import GPT, GPTConfig
from gpt.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, encode_array, tokenizer_from_dict
from minigrad import distributed
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import warmup_cosine


@dataclass
class TrainConfig:
    data: str | None = None  # UTF-8 text file; None: the default corpus (Shakespeare's plays)
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int = 512  # vocabulary size when tokenizer is "bpe"
    out_dir: str = "out"  # checkpoints and log.jsonl go here
    device: str = "cpu"  # "cpu" (NumPy) or "cuda" (CuPy)
    dtype: str = "float32"  # "float32" or "float64"
    seed: int = 1337  # seeds init, data order, dropout and evaluation batches
    batch_size: int = 12  # sequences per micro-batch (per process under mpiexec)
    grad_accum: int = 1  # micro-batches per optimizer step
    max_iters: int = 2000  # optimizer steps
    learning_rate: float = 1e-3  # peak lr, reached after warmup
    min_lr: float = 1e-4  # lr at the end of the cosine decay
    warmup_iters: int = 100  # linear warmup steps
    lr_decay_iters: int | None = None  # end of the cosine decay (default: max_iters)
    weight_decay: float = 0.1  # AdamW's, on >= 2-D weights only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global gradient norm (0: no clipping)
    eval_interval: int = 250  # evaluate and checkpoint every this many steps
    eval_iters: int = 20  # batches per split in each evaluation
    log_interval: int = 10  # write a training-loss line to log.jsonl this often
    resume: bool = False  # continue from out_dir/ckpt.npz
    progress: bool = True  # show a tqdm progress bar (when writing to a terminal)
    model: GPTConfig = field(default_factory=GPTConfig)  # the architecture (vocab_size comes from the tokenizer)

    def __post_init__(self) -> None:
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


class TrainingDiverged(RuntimeError):
    pass


def build_tokenizer(cfg: TrainConfig, text: str) -> Tokenizer:
    if cfg.tokenizer == "char":
        return CharTokenizer.train(text)
    return BPETokenizer.train(text, cfg.bpe_vocab_size)


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


def _meta(cfg: TrainConfig, tok: Tokenizer, it: int, best_val: float, batches: Batches) -> dict[str, Any]:
    return {
        "format": "minigrad-gpt-checkpoint/1",
        "train_config": asdict(cfg),
        "model_config": asdict(cfg.model),
        "iter": it,
        "best_val": best_val,
        "tokenizer": tok.to_dict(),
        "data_rng": batches.state(),
        "minigrad_rng": minigrad.backend.get_rng_state() if cfg.device == "cpu" else None,
    }


def check_compatible(meta: dict[str, Any], model_cfg: GPTConfig, where: str) -> None:
    """Raise CheckpointError naming every field where the checkpoint's model config differs."""
    saved = meta.get("model_config", {})
    diffs = [f"{k}: {saved.get(k)!r} in the checkpoint, {v!r} here" for k, v in asdict(model_cfg).items() if saved.get(k) != v]
    if diffs:
        raise CheckpointError(f"{where} was written for another model config: " + "; ".join(diffs))


@distributed.abort_job_on_error
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns the final losses, iteration count, timing, and the trained
    model and tokenizer (for sampling right after). Under `mpiexec -n K`, K processes train
    one model together (see minigrad/distributed.py); rank 0 alone prints and writes files."""
    comm = distributed.communicator(cfg.device)
    minigrad.set_default_dtype(cfg.dtype)
    minigrad.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "ckpt.npz"
    text = read_text(cfg.data) if cfg.data else default_corpus()

    meta = model_state = optim_state = None
    if cfg.resume:
        meta, model_state, optim_state = comm.broadcast_object(load_checkpoint(ckpt_path) if comm.rank == 0 else None)
        tok = tokenizer_from_dict(meta["tokenizer"])
    else:
        tok = build_tokenizer(cfg, text)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size))  # the caller's config stays as it was
    batches = Batches(encode_array(tok, text), cfg.model.block_size, cfg.batch_size, cfg.seed,
                      rank=comm.rank, world_size=comm.size)

    model = GPT(cfg.model).to(cfg.device)
    optimizer = model.configure_optimizer(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    start_iter, best_val = 0, math.inf
    if meta is not None:
        check_compatible(meta, cfg.model, str(ckpt_path))
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        start_iter, best_val = int(meta["iter"]), float(meta["best_val"])
        batches.set_state(meta["data_rng"])
        if meta.get("minigrad_rng") is not None:
            minigrad.backend.set_rng_state(meta["minigrad_rng"])
    elif comm.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    distributed.broadcast_parameters(optimizer, comm)

    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    tokens_per_iter = cfg.batch_size * cfg.grad_accum * cfg.model.block_size * comm.size
    log = (out_dir / "log.jsonl" if comm.rank == 0 else Path(os.devnull)).open("a" if cfg.resume else "w")
    bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=None if cfg.progress and comm.rank == 0 else True,
               dynamic_ncols=True)
    losses: dict[str, float] = {}
    t_train, t_start = 0.0, time.perf_counter()
    try:
        it = start_iter
        while True:
            lr = warmup_cosine(it, cfg.learning_rate, cfg.warmup_iters, decay_iters, cfg.min_lr)
            for g in optimizer.param_groups:
                g.hyper["lr"] = lr
            if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and not (meta is not None and it == start_iter):
                losses = evaluate(model, batches, cfg, it, comm)
                _write(log, {"iter": it, "train": losses["train"], "val": losses["val"]})
                if comm.rank == 0:  # rank 0 alone prints and writes checkpoints
                    bar.write(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
                    state = (_meta(cfg, tok, it, min(best_val, losses["val"]), batches), model.state_dict(), optimizer.state_dict())
                    if losses["val"] < best_val:
                        save_checkpoint(out_dir / "best.npz", *state)
                    save_checkpoint(ckpt_path, *state)
                best_val = min(best_val, losses["val"])
            if it >= cfg.max_iters:
                break
            t0 = time.perf_counter()
            if comm.size > 1:  # each rank its own dropout masks, the same ones again after a resume
                minigrad.manual_seed(distributed.rank_seed(cfg.seed, comm.rank, it))
            loss_sum = 0.0
            for _ in range(cfg.grad_accum):
                _, loss = model(*batches.sample("train", cfg.device))
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.item()
            t_comm = time.perf_counter()
            distributed.allreduce_grads(optimizer, comm)  # every rank: the mean gradient of the global batch
            t_comm = time.perf_counter() - t_comm
            norm = clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)  # the norm; clipped unless grad_clip is 0
            train_loss = comm.average([loss_sum / cfg.grad_accum])[0]
            if not (math.isfinite(train_loss) and math.isfinite(norm)):
                raise TrainingDiverged(
                    f"iteration {it}: loss {train_loss}, gradient norm {norm}: stopping; "
                    f"the last good checkpoint is {ckpt_path} (try a lower learning_rate)"
                )
            optimizer.step()
            optimizer.zero_grad()
            dt = time.perf_counter() - t0
            t_train += dt
            it += 1
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_iter / dt:,.0f}")
            if it % cfg.log_interval == 0:
                comm_ms = {"allreduce_ms": t_comm * 1000} if comm.size > 1 else {}
                _write(log, {"iter": it, "loss": train_loss, "lr": lr, "grad_norm": norm, "ms": dt * 1000,
                             "tokens_per_s": tokens_per_iter / dt, **comm_ms})
    finally:
        bar.close()
        log.close()
    return {"iter": it, "losses": losses, "best_val": best_val, "train_seconds": t_train,
            "wall_seconds": time.perf_counter() - t_start, "model": model, "tokenizer": tok, "rank": comm.rank}


def _write(log: Any, record: dict[str, Any]) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()


def load_model(path: str | Path, device: str = "cpu") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """A trained model and its tokenizer from a checkpoint, ready for sampling."""
    meta, model_state, _ = load_checkpoint(path)
    try:
        mcfg = GPTConfig(**meta["model_config"])
        tok = tokenizer_from_dict(meta["tokenizer"])
        dtype = meta["train_config"]["dtype"]
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has incomplete metadata ({e})") from None
    if tok.vocab_size != mcfg.vocab_size:
        raise CheckpointError(f"checkpoint {str(path)!r}: tokenizer has {tok.vocab_size} tokens, model {mcfg.vocab_size}")
    minigrad.set_default_dtype(dtype)
    model = GPT(mcfg).to(device)
    model.load_state_dict(model_state)
    return model, tok, meta
