"""SGD with momentum and (L2) weight decay, as torch.optim.SGD with dampening 0.

Each step, on a group's flat buffers (p, g and the momentum buffer b):

    g = g + weight_decay * p
    b = momentum * b + g          (b = g on the first step)
    p = p - lr * b

Read next: adam.py.
"""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.optim.optimizer import Optimizer


class SGD(Optimizer):
    defaults = {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.0}
    state_names = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        super().__init__(params, **hyper)

    def update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        if group["momentum"]:
            buf = state["momentum_buffer"]
            if self.step_count == 1:
                buf[...] = grad
            else:
                buf *= group["momentum"]
                buf += grad
            grad = buf
        p -= group["lr"] * grad
