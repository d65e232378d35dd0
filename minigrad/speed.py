"""Speed tricks, kept apart so that the rest reads as plain array code: read this file last.

Nothing here changes a result, only how fast it comes:

- `chunks`: elementwise chains (GELU, the optimizers' updates) run on cache-sized pieces.
- `library_erf`: the array library's own erf (SciPy's, CuPy's) where there is one, instead
  of ops/elementwise.py's portable series.
- `tune_malloc`: glibc's malloc keeps freed memory for the next step. Not done on import: a
  program asks for it (`python -m gpt train` and `bench` do; `MINIGRAD_MALLOPT=0` says no).

- `set_blas_threads`: how many threads BLAS runs matrix products on (the command line's
  `--threads`), by default as many as there are idle cores.

Threads: NumPy runs each elementwise operation on one core and hands matrix products to
BLAS, which uses every core it is allowed. So matrix products run at the machine's speed,
and everything else runs at one core's: README.md's speed section measures what that costs
against PyTorch, which runs both on every core.

Other speed tricks live beside the code they speed up, each saying what it bought: row and
column sums as matrix products (ops/reduce.py), GELU keeping dy/dx (ops/elementwise.py),
blocks of queries in attention (ops/attention.py), indexing's `ScatteredGrad` (ops/shape.py), the
embedding's sorted sums (ops/embedding.py), `Function.reuse_saved` (autograd.py).

Plain mode turns every trick that shapes a code path off, so that a debugger stepping through
a training step meets the math, not the tricks: `minigrad.set_plain(True)`, `with
minigrad.plain():`, or `MINIGRAD_PLAIN=1` in the environment. Per trick, plain mode takes
either the same op with the trick off or, where the op exists only for the trick, its simple
twin (simple.py):

    trick                                  where                 in plain mode
    cache-sized pieces (`chunks`)          GELU, optimizers      one piece: the whole array
    blocks of queries (`QUERY_BLOCK`)      ops/attention.py      the same op in one block of all queries
    tiles of keys (flash attention)        ops/flash_attention.py  the simple twin, the window as a mask
    GELU keeping dy/dx, `out=` buffers     ops/elementwise.py    the simple twin, simple.gelu (tanh or erf,
                                                                 products and sums, each its own backward)
    `reuse_saved`: backward writes into    autograd.py (GELU,    never: backward allocates its result
      what forward saved                   LayerNorm use it)
    sparse gradients (`SparseGrad`)        ops/shape.py          indexing's backward returns the dense array
    sorted ids and `add.reduceat`          ops/embedding.py      the same op with its one line of math,
                                                                 `add.at(dweight, ids, dout)`
    row and column sums as matrix products ops/reduce.py         NumPy's mean and sum along the axis
    `library_erf`, malloc, BLAS threads    here                  kept: no code path to step through

Kept in both modes: temporaries one function writes twice under two names (attention's S
becoming P, LayerNorm's centered becoming xhat, Adam's `tmp`), and `Function.retained_output`,
which is no trick but what `retain_grad` needs. Results agree to rounding (tests/test_plain.py).
The switch costs one call to `is_plain()` where a trick begins, a function that returns a global:
about two hundred calls per training step, too few for `python -m gpt bench` to see (docs/results.md).

Read next: the learner's tools: viz.py (the graph behind a tensor, drawn) with graph_layout.py,
then exercises/ (write each backward yourself).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

from minigrad.backend import Array, backend_of_array

# ---- plain mode: the tricks off, for a debugger ------------------------------------

_plain = os.environ.get("MINIGRAD_PLAIN", "0") not in ("", "0")


def is_plain() -> bool:
    """Is plain mode on? Each op with a speed trick asks where the trick begins."""
    return _plain


def set_plain(on: bool = True) -> None:
    """Turn plain mode on (or off): every speed trick off, the same results to rounding. What
    each trick does then (the simple twin, or the same op with the trick off): the table above."""
    global _plain
    _plain = bool(on)


@contextlib.contextmanager
def plain(on: bool = True) -> Iterator[None]:
    """Plain mode inside the block; after it (an exception included) as it was before."""
    prev = _plain
    set_plain(on)
    try:
        yield
    finally:
        set_plain(prev)


# ---- elementwise chains in cache-sized pieces --------------------------------

CHUNK_ELEMENTS: dict[str, int] = {"cpu": 1 << 18}  # per device; devices not listed take arrays whole


def chunks(a: Array) -> list[slice]:
    """Slices that cut a flat array into the pieces an elementwise chain should take at a time.

    NumPy runs a chain like GELU's a line at a time, each line one pass over the array. On
    a whole (16, 256, 1536) activation (25 MB) every pass goes to main memory; on pieces of
    256K elements (1 MiB of float32) each line reads what the one before just wrote from
    cache. The size is a trade: a piece must leave room in the cache for the chain's few
    temporaries, and each piece costs a Python loop turn per line, so much smaller pieces
    lose to the overhead (the timings: docs/results.md, speed). A GPU fuses nothing this way
    and pays a launch per line per piece, so there the chain takes the array whole."""
    n = a.size
    step = n if _plain else CHUNK_ELEMENTS.get(backend_of_array(a).device) or n  # plain: the array whole
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


_malloc_tuned = False


def tune_malloc() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.
    True if it did; False with `MINIGRAD_MALLOPT=0` in the environment, or without glibc.

    It changes the whole process and cannot be undone, so importing minigrad never does it: a
    program asks (`python -m gpt train` and `bench` do, gpt/cli.py). A training step allocates
    and frees the same few hundred arrays every time. By default glibc serves blocks over
    ~128 KiB with a fresh mmap and unmaps them on free, so each step gets new pages from the
    kernel, zeroed and faulted in one by one. Serving blocks up to 32 MiB from the heap and
    never trimming it lets the next step reuse the same pages. Measured on the default GPT of
    `python -m gpt bench` (batch 12, one BLAS thread, 6 runs each, alternating): a step's page
    faults 7,311 -> 2 and its CPU time 94 -> 82 ms (the kernel's share 10 -> 0 ms); the bench's
    own ms per step, 11 alternating pairs on a busy 2-core machine, 0.86x the untuned median
    (single pairs 0.48x to 1.9x: too noisy to say more); peak resident memory 83.2 -> 84.7 MB."""
    global _malloc_tuned
    if os.environ.get("MINIGRAD_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's maximum
    libc.mallopt(m_trim_threshold, 2**30)
    _malloc_tuned = True
    return True


def malloc_tuned() -> bool:
    """Has this process called tune_malloc (with effect)? The bench asks, to measure memory in
    a fresh process under the same settings."""
    return _malloc_tuned


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
    core stalls the others, and a busy machine can make more threads far slower than one
    (docs/results.md, speed, has the timings)."""
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    threadpool_limits(limits=threads, user_api="blas")
