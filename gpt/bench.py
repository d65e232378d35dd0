"""`python -m gpt bench`: time full training steps, optionally side by side with PyTorch.

A step is what training does: forward with targets, backward, global-norm
clipping, an AdamW update, zeroing the grads. After warm-up steps, the two
frameworks (with --vs torch) take turns in blocks of `block` steps on the same
batches and the same initial weights, so both see the same machine state; the
first step of each block is not timed. Blocks, not single steps: each library
keeps its own pool of threads, and a pool that has just worked spins for a
while before it sleeps, stealing a core from the other library's next step: single
alternating steps would time each library against the other's spinning threads
(docs/results.md, speed, says by how much).
Peak memory is measured in a fresh subprocess per framework: the peak resident
set size, and its growth over the resident size once the model is built (the
memory the steps themselves need). Sampling speed: 256 new tokens with and
without the KV cache. It prints a small table (`format_table`), or with --json
one JSON object as its last line. Memory is the host's (resident set size): on a
GPU, device memory is not measured.

Read next: torch_gpt.py, the PyTorch twin it times against.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from types import ModuleType
from typing import Any, Callable

import numpy as np

import minigrad
from gpt.model import GPT, GPTConfig
from gpt.sample import generate
from minigrad.backend import synchronize
from minigrad.extras import require
from minigrad.nn.utils import clip_grad_norm_
from minigrad.speed import malloc_tuned, tune_malloc

# Categories for --profile, by op name.
CATEGORIES = {
    "matmul": ("MatMul", "Linear"),
    "attention": ("ScaledDotProductAttention",),
    "layernorm/softmax/loss": ("LayerNorm", "Softmax", "LogSoftmax", "CrossEntropy"),
    "embedding": ("Embedding",),
}


def _batches(cfg: GPTConfig, batch_size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, cfg.vocab_size, size=(batch_size, cfg.block_size + 1)) for _ in range(n)]


def named_test_backend(device: str) -> ModuleType | None:
    """minigrad's strict test backend (minigrad/testing/fakegpu.py) when `--device fakegpu` names
    it, else None: the bench imports test code only when the user asks for it by name."""
    if device == "fakegpu":
        from minigrad.testing import fakegpu  # registers the device on import

        return fakegpu
    return None


def minigrad_stepper(cfg: GPTConfig, batch_size: int, device: str) -> tuple[GPT, Callable[[np.ndarray], float], dict[str, float]]:
    named_test_backend(device)
    minigrad.set_default_dtype("float32")
    minigrad.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
    params = list(model.parameters())
    optim_seconds = {"optimizer": 0.0}

    def step(batch: np.ndarray) -> float:
        x = minigrad.tensor(batch[:, :-1], device=device)
        y = minigrad.tensor(batch[:, 1:], device=device)
        _, loss = model(x, y)
        loss.backward()
        synchronize(device)  # a GPU may still be running the backward: wait, so it is not timed as optimizer
        t0 = time.perf_counter()
        clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)  # as gpt/train.py: grads stay views into the flat buffers
        synchronize(device)
        optim_seconds["optimizer"] += time.perf_counter() - t0
        return loss.item()

    return model, step, optim_seconds


def torch_stepper(cfg: GPTConfig, model: GPT, threads: int | None, device: str = "cpu") -> Callable[[np.ndarray], float]:
    """PyTorch's step on the same weights, on the same kind of device (fakegpu is a CPU backend)."""
    torch = require("torch", "bench --vs torch")

    from gpt.torch_gpt import TorchGPT, load_minigrad_weights

    if threads:
        torch.set_num_threads(threads)
    tdevice = "cuda" if device == "cuda" else "cpu"
    tmodel = TorchGPT(cfg)
    load_minigrad_weights(tmodel, model)
    tmodel.to(tdevice)
    opt = tmodel.configure_optimizer(0.1, 1e-3, (0.9, 0.99))

    def step(batch: np.ndarray) -> float:
        b = torch.from_numpy(batch).to(tdevice)
        _, loss = tmodel(b[:, :-1], b[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def _timed(step: Callable[[np.ndarray], float], batch: np.ndarray, device: str = "cpu") -> float:
    synchronize(device)  # the device's queue is empty before the clock starts (step ends with loss.item())
    t0 = time.perf_counter()
    step(batch)
    return time.perf_counter() - t0


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in MB.
    (getrusage's ru_maxrss would do, but Linux carries it over from the parent process.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(framework: str, cfg_json: str, batch_size: int, device: str, steps: int,
                 tuned_malloc: bool = False) -> dict[str, float]:
    """Run `steps` training steps of one framework in this (fresh) process; report memory in MB.
    tuned_malloc: as the timed process (speed.tune_malloc), since it changes what the steps hold."""
    if tuned_malloc:
        tune_malloc()
    cfg = GPTConfig(**json.loads(cfg_json))
    model, step, _ = minigrad_stepper(cfg, batch_size, device)
    if framework == "torch":
        step = torch_stepper(cfg, model, None, device)
        del model
    base = _status_mb("VmRSS")
    for b in _batches(cfg, batch_size, steps):
        step(b)
    peak = _status_mb("VmHWM")
    return {"peak_mem_mb": round(peak, 1), "step_mem_mb": round(peak - base, 1)}


def _probe_subprocess(framework: str, cfg: GPTConfig, batch_size: int, device: str) -> dict[str, float]:
    code = (
        "import json, sys; from gpt.bench import memory_probe; "
        f"print(json.dumps(memory_probe({framework!r}, {json.dumps(json.dumps(asdict(cfg)))}, {batch_size}, {device!r}, 5, {malloc_tuned()})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sampling_speed(model: GPT, n_tokens: int = 256, rounds: int = 3) -> dict[str, float]:
    """Tokens/s generating n_tokens from one token, with and without the KV cache: the median of
    `rounds` runs of each, taken in turns so that both see the same machine."""
    rates: dict[str, list[float]] = {"cached": [], "uncached": []}
    for _ in range(rounds):
        for name in rates:
            t0 = time.perf_counter()
            generate(model, [0], n_tokens, temperature=1.0, seed=0, use_cache=name == "cached")
            rates[name].append(n_tokens / (time.perf_counter() - t0))
    out = {f"sample_tokens_per_s_{name}": round(statistics.median(r), 1) for name, r in rates.items()}
    out["sample_cache_speedup"] = round(out["sample_tokens_per_s_cached"] / out["sample_tokens_per_s_uncached"], 2)
    return out


GPT2_SMALL = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)  # GPT-2 124M


def gpt2_sampling(device: str = "cpu", pretrained: str | None = None, n_tokens: int = 128, prompt_len: int = 16) -> dict[str, Any]:
    """GPT-2 124M on this machine: build it (random weights, or a pretrained directory), then sample
    n_tokens after a prompt_len-token prompt with the KV cache; tokens/s and this process's peak memory."""
    t0 = time.perf_counter()
    if pretrained:
        from gpt.hf import load_pretrained

        model = load_pretrained(pretrained, device)
    else:
        minigrad.manual_seed(0)
        model = GPT(GPT2_SMALL).to(device)
    build_s = time.perf_counter() - t0
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, prompt_len).tolist()
    t0 = time.perf_counter()
    generate(model, prompt, n_tokens, temperature=1.0, seed=0, use_cache=True)
    seconds = time.perf_counter() - t0
    n = model.num_parameters()
    return {"parameters": n, "weights_mb": round(n * model.lm_head.weight.dtype.itemsize / 1e6, 1),
            "build_seconds": round(build_s, 1), "prompt_tokens": prompt_len, "new_tokens": n_tokens,
            "sample_tokens_per_s_cached": round(n_tokens / seconds, 2), "peak_mem_mb": round(_status_mb("VmHWM"), 1),
            "pretrained": pretrained, "device": device}


def run_bench(cfg: GPTConfig, batch_size: int, device: str, iters: int, warmup: int, vs_torch: bool,
              profile: bool, sample: bool, threads: int | None, block: int = 6) -> dict[str, Any]:
    model, step, optim_seconds = minigrad_stepper(cfg, batch_size, device)
    optim_total = 0.0
    steps: dict[str, Callable[[np.ndarray], float]] = {"minigrad": step}
    if vs_torch:
        steps["torch"] = torch_stepper(cfg, model, threads, device)
    batches = _batches(cfg, batch_size, block)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for s in steps.values():
        for i in range(warmup):
            s(batches[i % block])
    timings: dict[str, float] = {}
    while len(times["minigrad"]) < iters:
        for name, s in steps.items():
            s(batches[0])  # untimed: lets the other library's threads go to sleep
            if name == "minigrad":
                optim_seconds["optimizer"] = 0.0
                with minigrad.autograd.profile() if profile else contextlib.nullcontext({}) as t:
                    times[name].extend(_timed(s, b, device) for b in batches[1:])
                for k, v in t.items():
                    timings[k] = timings.get(k, 0.0) + v
                optim_total += optim_seconds["optimizer"]
            else:
                times[name].extend(_timed(s, b) for b in batches[1:])
    tokens = batch_size * cfg.block_size
    ms = statistics.median(times["minigrad"]) * 1000
    result: dict[str, Any] = {"ms_per_iter": round(ms, 2), "tokens_per_s": round(tokens / ms * 1000, 1)}
    if profile:
        print_profile(timings, optim_total, sum(times["minigrad"]), len(times["minigrad"]))
        fakegpu = named_test_backend(device)
        if fakegpu is not None:
            print_launches(fakegpu, step, batches[1])
    result.update(_probe_subprocess("minigrad", cfg, batch_size, device))
    if vs_torch:
        tms = statistics.median(times["torch"]) * 1000
        result.update({"torch_ms_per_iter": round(tms, 2), "torch_tokens_per_s": round(tokens / tms * 1000, 1),
                       "speedup_vs_torch": round(tms / ms, 3)})
        t_mem = _probe_subprocess("torch", cfg, batch_size, device)
        result.update({"torch_peak_mem_mb": t_mem["peak_mem_mb"], "torch_step_mem_mb": t_mem["step_mem_mb"]})
    if sample:
        result.update(sampling_speed(model))
    result.update({"config": asdict(cfg), "batch_size": batch_size, "device": device, "iters": len(times["minigrad"])})
    return result


def format_table(r: dict[str, Any]) -> str:
    """run_bench's result for people: one column per library, one row per measure."""
    c = r["config"]
    vs = "torch_ms_per_iter" in r
    rows = [("ms per step", r["ms_per_iter"], r.get("torch_ms_per_iter"), "{:,.1f}"),
            ("tokens per second", r["tokens_per_s"], r.get("torch_tokens_per_s"), "{:,.0f}"),
            ("peak memory (MB)", r["peak_mem_mb"], r.get("torch_peak_mem_mb"), "{:,.0f}"),
            ("the step's own memory (MB)", r["step_mem_mb"], r.get("torch_step_mem_mb"), "{:,.0f}")]
    lines = [f"{c['n_layer']} layers, {c['n_head']} heads, n_embd {c['n_embd']}, block {c['block_size']}, "
             f"batch {r['batch_size']}, on {r['device']}: median of {r['iters']} steps",
             f"{'':28s}{'minigrad':>10s}" + (f"{'PyTorch':>10s}" if vs else "")]
    for name, mine, theirs, fmt in rows:
        lines.append(f"{name:28s}{fmt.format(mine):>10s}" + (f"{fmt.format(theirs):>10s}" if vs else ""))
    if vs:
        lines.append(f"{'speed vs PyTorch':28s}{r['speedup_vs_torch']:>9.2f}x")
    if "sample_tokens_per_s_cached" in r:
        lines.append(f"sampling 256 tokens: {r['sample_tokens_per_s_cached']:,.0f} tokens/s with the KV cache, "
                     f"{r['sample_tokens_per_s_uncached']:,.0f} without ({r['sample_cache_speedup']:.1f}x)")
    return "\n".join(lines)


def print_profile(timings: dict[str, float], optimizer_s: float, total_s: float, iters: int) -> None:
    """Where minigrad's step time goes: op categories, the optimizer, and the rest (Python overhead)."""
    by_cat: dict[str, float] = {}
    for key, sec in timings.items():
        op = key.split(".")[0]
        cat = next((c for c, ops in CATEGORIES.items() if op in ops), "elementwise/shape")
        by_cat[cat] = by_cat.get(cat, 0.0) + sec
    by_cat["optimizer (clip + AdamW)"] = optimizer_s
    by_cat["python overhead / other"] = total_s - sum(by_cat.values())
    print(f"{'where':28s} {'ms/iter':>8s} {'share':>6s}   (minigrad, {iters} steps)")
    for cat, sec in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"{cat:28s} {sec * 1000 / iters:8.1f} {sec / total_s:6.1%}")
    print("top ops:")
    for key, sec in sorted(timings.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {key:36s} {sec / total_s:6.1%}")


def print_launches(fakegpu: ModuleType, step: Callable[[np.ndarray], float], batch: np.ndarray) -> None:
    """On the strict test backend (--device fakegpu, `named_test_backend`): the array operations of one
    step, each a kernel launch on a GPU, and the times the step waits for the device."""
    with fakegpu.record() as rec:
        step(batch)
    print(f"array operations per step: {sum(rec.ops.values()):,}; device-to-host waits: {len(rec.syncs)}")
    for name, n in rec.ops.most_common(12):
        print(f"  {name:36s} {n:6,d}")
