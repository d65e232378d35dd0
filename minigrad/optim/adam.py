"""Adam and AdamW, as torch.optim.Adam and torch.optim.AdamW.

Each step, on a stretch of a group's flat buffers (p, g, first moment m, second moment v)
whose parameters take their t-th step (each parameter counts its own, see optimizer.py):

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

The bias corrections undo the pull of m and v towards their zero start: at t = 1 the
step is lr * g / (|g| + eps), about lr, whenever the parameter starts. Weight decay
differs: Adam adds weight_decay * p to g (an L2 penalty that then gets rescaled by v),
AdamW shrinks p by lr * weight_decay * p before the step ("decoupled", Loshchilov &
Hutter), which is what GPT training uses; `decoupled_weight_decay=True` makes Adam
AdamW, as in PyTorch.

Read next: lr_scheduler.py.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer

# PyTorch's switches that change no arithmetic here: accepted, and kept in param_groups as PyTorch keeps them
_SWITCHES = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
             "fused": None}


class Adam(Optimizer):
    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, **_SWITCHES,
                "decoupled_weight_decay": False}
    unsupported = ("amsgrad", "maximize", "capturable", "differentiable")
    state_names = ("exp_avg", "exp_avg_sq")
    step_in_state = True

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        super().__init__(params, **hyper)

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        super()._check_hyper(hyper)
        b1, b2 = hyper["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {hyper['betas']}")

    def update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any], step: int) -> None:
        xp = get_array_module(p)
        lr, (b1, b2), eps, wd, t = group["lr"], group["betas"], group["eps"], group["weight_decay"], step
        if wd and group["decoupled_weight_decay"]:
            p *= 1 - lr * wd
        elif wd:
            grad = grad + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]  # pieces of the (P,) buffers, updated in place
        m *= b1
        tmp = grad * (1 - b1)
        m += tmp  # m = b1 m + (1 - b1) g
        v *= b2
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - b2
        v += tmp  # v = b2 v + (1 - b2) g^2
        xp.sqrt(v, out=tmp)
        tmp *= 1 / math.sqrt(1 - b2**t)
        tmp += eps  # sqrt(v / (1 - b2^t)) + eps
        xp.divide(m, tmp, out=tmp)
        tmp *= lr / (1 - b1**t)
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay, 0.01 by default, as torch.optim.AdamW."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2, "decoupled_weight_decay": True}
