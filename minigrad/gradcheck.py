"""gradcheck: prove a hand-written backward right by central finite differences.

For f: inputs -> out, pick a random cotangent u (the shape of out) and look at the
scalar F(x) = sum(u * f(x)). Backward with dout = u gives dF/dx_i for every input.
Finite differences give the same numbers independently:

    dF/dx . v  ~=  (F(x + eps v) - F(x - eps v)) / (2 eps)     error O(eps^2)

Why a random u and not ones: sum(softmax(x)) = 1 for every x, so with u = ones
every gradient of softmax is 0 and a wrong backward that also returns 0 passes.

Fast mode checks a few random directions v (2 forward passes each); if one
disagrees, the full check perturbs every element and names the worst one.
Use float64: in float32, eps must be large and the truncation error hides bugs.

Read next: backend.py (devices), then testing/fakegpu.py; the tests (tests/test_ops_*.py)
use gradcheck.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from minigrad.autograd import no_grad
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor

# (eps, atol, rtol) per dtype
TOLERANCES = {
    np.dtype(np.float64): (1e-6, 1e-6, 1e-4),
    np.dtype(np.float32): (1e-3, 2e-2, 2e-2),
}


class GradcheckError(AssertionError):
    pass


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    *,
    fast_mode: bool = True,
    n_directions: int = 3,
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> bool:
    """Check d(fn)/d(input) for every input Tensor with requires_grad; raise GradcheckError or return True.

    `fn(*inputs)` must return one Tensor and be deterministic (seed any dropout inside it).
    """
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    dtype = checked[0].dtype
    d_eps, d_atol, d_rtol = TOLERANCES.get(dtype, TOLERANCES[np.dtype(np.float32)])
    eps = d_eps if eps is None else eps
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    rng = np.random.default_rng(seed)

    out = fn(*inputs)
    xp = get_array_module(out.data)
    u = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)  # random cotangent, never ones
    for t in checked:
        t.grad = None
    out.backward(u)
    analytic = [t.grad.data.copy() if t.grad is not None else xp.zeros_like(t.data) for t in checked]

    def F() -> float:
        with no_grad():
            return float((fn(*inputs).data * u).sum())

    def directional(dirs: list[Any]) -> float:
        originals = [t.data for t in checked]
        try:
            # xp.asarray: for a 0-d input NumPy's x0 + eps * d is a scalar, not an array
            for t, x0, d in zip(checked, originals, dirs):
                t.data = xp.asarray(x0 + eps * d)
            f_plus = F()
            for t, x0, d in zip(checked, originals, dirs):
                t.data = xp.asarray(x0 - eps * d)
            f_minus = F()
        finally:
            for t, x0 in zip(checked, originals):
                t.data = x0
        return (f_plus - f_minus) / (2 * eps)

    def close(num: float, ana: float) -> bool:
        return abs(num - ana) <= atol + rtol * max(abs(num), abs(ana))

    if fast_mode:
        ok = True
        for _ in range(n_directions):
            dirs = [xp.asarray(rng.standard_normal(t.shape)).astype(t.dtype) for t in checked]
            num = directional(dirs)
            ana = sum(float((a * d).sum()) for a, d in zip(analytic, dirs))
            if not close(num, ana):
                ok = False
                break
        if ok:
            return True

    # Full check: one element at a time, report the worst.
    worst: tuple[float, str] | None = None
    for i, (t, ana) in enumerate(zip(checked, analytic)):
        host_ana = np.asarray(ana.get() if hasattr(ana, "get") else ana)
        for idx in np.ndindex(*t.shape):
            e = np.zeros(t.shape, dtype=t.dtype)
            e[idx] = 1
            num = directional([xp.asarray(e) if j == i else xp.zeros_like(c.data) for j, c in enumerate(checked)])
            a = float(host_ana[idx])
            if not close(num, a):
                err = abs(num - a) - rtol * max(abs(num), abs(a))
                if worst is None or err > worst[0]:
                    worst = (err, f"input {i} (shape {t.shape}) at index {idx}: analytic {a:.8g}, numeric {num:.8g}")
    if worst is not None:
        raise GradcheckError(f"gradcheck failed: worst element is {worst[1]} (atol {atol}, rtol {rtol}, eps {eps})")
    if fast_mode:
        raise GradcheckError(f"gradcheck failed along a random direction, though no single element exceeds the tolerance (atol {atol}, rtol {rtol})")
    return True
