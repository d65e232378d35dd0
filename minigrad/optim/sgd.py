"""SGD with momentum, dampening, Nesterov momentum and (L2) weight decay, as torch.optim.SGD.

Each step, on a stretch of a group's flat buffers (p, g and the momentum buffer b)
whose parameters take their t-th step (each parameter counts its own, see optimizer.py):

    g = g + weight_decay * p
    b = momentum * b + (1 - dampening) * g      (b = g at t = 1, as PyTorch)
    g = g + momentum * b  if nesterov  else  b
    p = p - lr * g

Read next: adam.py.
"""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.optim.optimizer import Optimizer


class SGD(Optimizer):
    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                "maximize": False, "foreach": None, "differentiable": False, "fused": None}
    unsupported = ("maximize", "differentiable")
    state_names = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        super().__init__(params, **hyper)

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        super()._check_hyper(hyper)
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError("SGD: nesterov=True needs a momentum > 0 and dampening=0")

    def update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any], step: int) -> None:
        momentum = group["momentum"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        if momentum:
            buf = state["momentum_buffer"]
            if step == 1:
                buf[...] = grad
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * grad
