"""Speed tricks, kept apart so that the rest reads as plain array code: read this file last.

Nothing here changes a result, only how fast it comes:

- `chunks`: elementwise chains (GELU, the optimizers' updates) run on cache-sized pieces.
- `library_erf`: the array library's own erf (SciPy's, CuPy's) where there is one, instead
  of ops/elementwise.py's portable series.
- glibc's malloc is told at import to keep freed memory (`MINIGRAD_MALLOPT=0` turns it off).

- `set_blas_threads`: how many threads BLAS runs matrix products on (the command line's
  `--threads`), by default as many as there are idle cores.

Threads: NumPy runs each elementwise operation on one core and hands matrix products to
BLAS, which uses every core it is allowed. So matrix products run at the machine's speed,
and everything else runs at one core's: README.md's speed section measures what that costs
against PyTorch, which runs both on every core.

Other speed tricks live beside the code they speed up, each saying what it bought: row and
column sums as matrix products (ops/reduce.py), GELU keeping dy/dx (ops/elementwise.py),
blocks of queries in attention (ops/attention.py), indexing's `Scatter` (ops/shape.py), `Function.reuse_saved`.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from minigrad.backend import Array, backend_of_array

# ---- elementwise chains in cache-sized pieces --------------------------------

CHUNK_ELEMENTS: dict[str, int] = {"cpu": 1 << 18}  # per device; devices not listed take arrays whole


def chunks(a: Array) -> list[slice]:
    """Slices that cut a flat array into the pieces an elementwise chain should take at a time.

    NumPy runs a chain like GELU's a line at a time, each line one pass over the array. On
    a whole (16, 256, 1536) activation (25 MB) every pass goes to main memory; on pieces of
    256K elements (1 MiB of float32) each line reads what the one before just wrote from
    cache. Measured on 2 cores: GELU 24 -> 12 ms, AdamW on 10.8M parameters 36 -> 20 ms; 64K
    to 512K elements all do about as well, smaller pieces pay more Python per piece. A GPU
    fuses nothing this way and pays a launch per line per piece, so there the chain takes
    the array whole."""
    n = a.size
    step = CHUNK_ELEMENTS.get(backend_of_array(a).device) or n
    return [slice(i, i + step) for i in range(0, n, max(step, 1))] or [slice(0, 0)]


# ---- erf from the array library, where it has one ------------------------------------


def library_erf(xp: Any) -> Callable[[Array], Array] | None:
    """SciPy's erf for NumPy, cupyx's for CuPy, None otherwise (or without SciPy): one fused
    pass instead of the portable series' dozens."""
    try:
        if xp is np:
            from scipy.special import erf
        elif xp.__name__ == "cupy":
            from cupyx.scipy.special import erf  # type: ignore[import-not-found]
        else:
            return None
    except ImportError:
        return None
    return erf


# ---- malloc ------------------------------------------------------------------------


def _keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same few hundred arrays every time. By default
    glibc serves blocks over ~128 KiB with a fresh mmap and unmaps them on free, so each step
    gets new pages from the kernel, zeroed and faulted in one by one: hundreds of thousands of
    page faults, about 15% of a small model's step time. Serving blocks up to 32 MiB from the
    heap and never trimming it lets the next step reuse the same pages."""
    if os.environ.get("MINIGRAD_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's maximum
    libc.mallopt(m_trim_threshold, 2**30)


_keep_freed_memory()


# ---- BLAS threads ------------------------------------------------------------------


def idle_cores(seconds: float = 0.2) -> float:
    """Cores this process may use that nothing else is using now, measured over `seconds`.

    Linux: the idle share of /proc/stat's CPU time across the interval; elsewhere the
    1-minute load average (slower to see a job start), or all cores where neither exists."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def cpu_times() -> tuple[int, int]:  # (idle + iowait, total) in clock ticks, over all CPUs
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return ticks[3] + ticks[4], sum(ticks)

    try:
        idle0, total0 = cpu_times()
        time.sleep(seconds)
        idle1, total1 = cpu_times()
        busy = (1 - (idle1 - idle0) / max(total1 - total0, 1)) * (os.cpu_count() or 1)
    except OSError:
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(cores - busy, 0.0)


def set_blas_threads(threads: int) -> None:
    """Let BLAS run matrix products on `threads` threads (the command line's `--threads`;
    by default one per idle core).

    A BLAS thread without a core to itself does not just wait: OpenBLAS's threads spin until
    all of them are done with their shares of a product, so one thread that waits for a busy
    core stalls the others. Measured on 2 cores, a step of the default GPT (README, "Two
    commands"): 72 ms with one thread and 60 ms with two on an idle machine; with two other
    CPU-bound processes running, 117 ms with one thread and 624 ms with two."""
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    threadpool_limits(limits=threads, user_api="blas")
