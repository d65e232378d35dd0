"""Attention at long context on this CPU: time and peak memory of one forward + backward for
attention.py's op, flash attention (ops/flash_attention.py), flash attention with a 256-key window,
and PyTorch's F.scaled_dot_product_attention when torch is installed.

    python tools/attention_bench.py                      # T = 512 ... 8192: a markdown table, then a JSON line
    python tools/attention_bench.py --tiles              # flash attention's tile sizes at T = 2048
    python tools/attention_bench.py --gpt-memory         # the largest GPT block_size that trains within 2 GB
    python tools/attention_bench.py --ops "flash, window 256" --lengths 1024 2048   # some cells only

Shapes: B 1, H 6, D 64, causal, float32, as the issue asks. Time: the best of --repeat runs of
forward + backward (a random cotangent), each after one warm-up run. Memory: the peak of Python's
tracemalloc over forward + backward, less what was allocated before (q, k, v and the cotangent):
NumPy reports every array's data to tracemalloc, so this counts exactly the arrays the op makes and
keeps. PyTorch's allocations are invisible to tracemalloc; its column gives the growth of the
process's peak resident memory over one forward + backward instead (Linux's VmHWM, reset through
/proc/self/clear_refs just before, in a fresh process per T), which also counts allocator slack.

--gpt-memory: the default GPTConfig (4 layers, 4 heads, n_embd 128, 65 characters), batch 12 (the
training default), float32; one training step (forward, backward, AdamW step) at block_size
256, 512, 1024, ... under tracemalloc, for full attention (today's op), flash attention over the
whole block (attn_window = block_size, the same attention computed in tiles) and a 256-position
window. Each column stops at the first block_size whose peak passes 2 GB.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
from minigrad.ops.flash_attention import flash_attention  # noqa: E402

B, H, D = 1, 6, 64
LENGTHS = (512, 1024, 2048, 4096, 8192)
WINDOW = 256
MB = 2**20

OPS: dict[str, Callable[..., Any]] = {
    "today": lambda q, k, v, bq, bk: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "flash": lambda q, k, v, bq, bk: flash_attention(q, k, v, is_causal=True, block_q=bq, block_k=bk),
    f"flash, window {WINDOW}": lambda q, k, v, bq, bk: flash_attention(q, k, v, is_causal=True, window=WINDOW,
                                                                        block_q=bq, block_k=bk),
}


def inputs(t: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((B, H, t, D)).astype(np.float32) for _ in range(4)]  # q, k, v, cotangent


def step(op: Callable[..., Any], arrays: list[Any], bq: int, bk: int) -> None:
    q, k, v = (minigrad.tensor(a, requires_grad=True) for a in arrays[:3])
    op(q, k, v, bq, bk).backward(minigrad.tensor(arrays[3]))


def seconds(op: Callable[..., Any], t: int, repeat: int, bq: int = 128, bk: int = 128) -> float:
    arrays = inputs(t)
    step(op, arrays, bq, bk)  # warm-up
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        step(op, arrays, bq, bk)
        best = min(best, time.perf_counter() - start)
    return best


def peak_mb(op: Callable[..., Any], t: int) -> float:
    arrays = inputs(t)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    step(op, arrays, 128, 128)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak / MB


def torch_step(t: int, repeat: int, threads: int) -> tuple[float, float]:
    """(seconds, peak resident growth in MB) of torch's forward + backward, in this process."""
    import torch

    torch.set_num_threads(threads)
    arrays = [torch.tensor(a) for a in inputs(t)]

    def run() -> None:
        q, k, v = (a.clone().requires_grad_(True) for a in arrays[:3])
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(arrays[3])

    run()  # warm-up: torch's own buffers and thread pool
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from the current RSS
    rss_before = status_kb("VmRSS")
    run()
    grown = (status_kb("VmHWM") - rss_before) / 1024
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best, grown


def status_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1])


def torch_in_fresh_process(t: int, repeat: int, threads: int) -> tuple[float, float] | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import attention_bench as b; " \
           f"print(*b.torch_step({t}, {repeat}, {threads}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def table(repeat: int, threads: int, lengths: tuple[int, ...], names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for t in lengths:
        row: dict[str, Any] = {}
        for name in names:
            if name in OPS:
                row[name] = {"seconds": seconds(OPS[name], t, repeat), "peak_mb": peak_mb(OPS[name], t)}
            elif (theirs := torch_in_fresh_process(t, repeat, threads)) is not None:
                row["torch"] = {"seconds": theirs[0], "peak_rss_mb": theirs[1]}
        rows[str(t)] = row
        print(f"T = {t}: " + ", ".join(f"{n} {r['seconds']:.3f} s" for n, r in row.items()), file=sys.stderr, flush=True)
    names = list(rows[str(lengths[0])])
    ratio = "today" in names and "flash" in names
    print("| T | " + " | ".join(f"{n}: s, MB" for n in names) + (" | today / flash time |" if ratio else " |"))
    print("|---" * (len(names) + 1 + ratio) + "|")
    for t, row in rows.items():
        cells = [f"{r['seconds']:.3f}, {r.get('peak_mb', r.get('peak_rss_mb')):.0f}" for r in row.values()]
        last = f" {row['today']['seconds'] / row['flash']['seconds']:.2f} |" if ratio else ""
        print(f"| {t} | " + " | ".join(cells) + " |" + last)
    return rows


def tiles(repeat: int) -> dict[str, float]:
    found = {}
    for bq in (64, 128, 256):
        for bk in (64, 128, 256):
            found[f"{bq}x{bk}"] = seconds(OPS["flash"], 2048, repeat, bq, bk)
            print(f"tiles {bq} x {bk}: {found[f'{bq}x{bk}']:.3f} s", file=sys.stderr, flush=True)
    return found


def gpt_memory(limit_mb: float = 2048.0) -> dict[str, dict[str, float]]:
    from gpt.model import GPT, GPTConfig

    found: dict[str, dict[str, float]] = {}
    for name in ("today", "flash", f"flash, window {WINDOW}"):
        found[name] = {}
        block = 256
        while True:
            window = None if name == "today" else (block if name == "flash" else WINDOW)
            minigrad.manual_seed(0)
            model = GPT(GPTConfig(block_size=block, attn_window=window))
            opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99))
            ids = np.random.default_rng(0).integers(0, 65, (12, block))
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            _, loss = model(ids, targets=ids)
            loss.backward()
            opt.step()
            peak = (tracemalloc.get_traced_memory()[1] - before) / MB
            tracemalloc.stop()
            found[name][str(block)] = peak
            print(f"GPT {name}, block_size {block}: {peak:.0f} MB", file=sys.stderr, flush=True)
            del model, opt, loss
            if peak > limit_mb:
                break
            block *= 2
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell; the best is kept")
    parser.add_argument("--threads", type=int, default=1, help="BLAS (and torch) threads")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), help="sequence lengths T")
    parser.add_argument("--ops", nargs="+", default=[*OPS, "torch"], choices=[*OPS, "torch"], metavar="OP",
                        help=f"which columns (default: all of {[*OPS, 'torch']})")
    parser.add_argument("--tiles", action="store_true", help="time flash attention's tile sizes at T = 2048")
    parser.add_argument("--gpt-memory", action="store_true", help="the largest GPT block_size within 2 GB per op")
    args = parser.parse_args()
    minigrad.speed.set_blas_threads(args.threads)
    if args.tiles:
        result: Any = {"tiles_seconds_T2048": tiles(args.repeat)}
    elif args.gpt_memory:
        result = {"gpt_step_peak_mb": gpt_memory()}
    else:
        result = {"attention": table(args.repeat, args.threads, tuple(args.lengths), args.ops)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
