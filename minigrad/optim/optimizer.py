"""Optimizer: parameter groups whose parameters, gradients and state live in flat buffers.

When an optimizer takes its parameters, it copies each group's parameters into
one contiguous array and makes every parameter's `.data` a view into it; the
gradients get a flat buffer of views too, and so does every piece of optimizer
state (momentum, Adam's moments). An update rule is then a handful of whole-buffer
array operations per group, however many parameters the model has, instead of a
Python loop over parameters.

Which parameters step, as in PyTorch: `step()` updates each parameter whose
`.grad` is not None, and skips one whose `.grad` is None (no weight decay, no
momentum, its step count stays). Each parameter counts its own steps (Adam's bias
corrections use them), so one trained from step 10,001 on starts as a fresh one.
Neighbours in the buffer that step together with the same count are updated as one
stretch: in the usual case, the whole buffer at once.

Only parameters that require grad go into the buffers: a frozen parameter
(`requires_grad=False`) is never updated, and freezing or unfreezing after the
optimizer was made takes effect at the next `step()` (the buffers are rebuilt; a
frozen parameter's state is kept, as PyTorch keeps it). A group may be empty.

`zero_grad()` sets every `.grad` to None, as PyTorch's default does; backward then
makes fresh gradients, which `step()` copies into the buffer. `zero_grad(set_to_none=False)`
zeroes the gradient buffer instead and makes every trainable parameter's `.grad` a view
into it, so backward adds straight into the buffer and `step()` copies nothing: the
fast path, which gpt/train.py takes. (PyTorch leaves a `.grad` that is None as None
there; here it becomes a zero, so a parameter the loss never reaches takes a step with
a zero gradient, as in PyTorch one that had a gradient before would.)

`param_groups` is a list of dicts with PyTorch's keys: `for g in opt.param_groups:
g["lr"] = lr` sets a learning rate. After `model.to(device)` the optimizer
notices, at its next `zero_grad()` or `step()`, that its parameters live
elsewhere, and moves its buffers and state after them.

Read next: sgd.py, adam.py, lr_scheduler.py.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from minigrad.autograd import bump_version
from minigrad.backend import backend_of_array, get_array_module, to_device
from minigrad.speed import chunks
from minigrad.tensor import Tensor


class ParamGroup(dict):
    """One entry of `optimizer.param_groups`: a dict, as in PyTorch (`g["params"]`, `g["lr"]`,
    `g["weight_decay"]`, ...; `g["lr"] = ...` changes a rate), which also holds, as attributes,
    flat buffers for the values, grads and state of the parameters that require grad."""

    def __init__(self, params: list[Tensor], hyper: dict[str, Any], state_names: tuple[str, ...]) -> None:
        super().__init__(params=params, **hyper)  # params: all, trainable or not
        self.state_names = state_names
        self.trainable: list[Tensor] = []  # those that required grad at the last build: in the buffers
        self.requires_grad_at_build: tuple[bool, ...] = ()  # p.requires_grad for each of params at the last build
        self.flat: Any = None  # the trainable parameters, end to end (P,); None when there are none
        self.grad: Any = None  # their gradients (P,)
        self.state: dict[str, Any] = {}  # name -> (P,)
        self.steps: list[int] = []  # per trainable parameter: how many steps it has taken
        self.frozen_state: dict[int, dict[str, Any]] = {}  # id(parameter) -> state, for frozen ones that stepped
        self.build({})

    def param_state(self) -> dict[int, dict[str, Any]]:
        """id(parameter) -> {"step": n, state name: array in the parameter's shape} for every parameter
        that has taken a step: views into the buffers for trainable ones, kept copies for frozen ones."""
        per_name = {n: self.views(a) for n, a in self.state.items()}
        out = dict(self.frozen_state)
        for i, p in enumerate(self.trainable):
            if self.steps[i]:
                out[id(p)] = {"step": self.steps[i], **{n: views[i] for n, views in per_name.items()}}
        return out

    def build(self, state: dict[int, dict[str, Any]], device: str | None = None) -> None:
        """(Re)make the flat buffers over the parameters that require grad now, from their current
        values, on `device` if given; `state` (as param_state() gives it) is carried over, a parameter
        without state starts at zero. A gradient already there moves into the buffer; None stays None."""
        self.requires_grad_at_build = tuple(p.requires_grad for p in self["params"])
        self.trainable = [p for p, trains in zip(self["params"], self.requires_grad_at_build) if trains]
        self.frozen_state = {}
        for p, trains in zip(self["params"], self.requires_grad_at_build):
            if not trains and id(p) in state:  # copies: a view would keep the whole old buffer alive
                kept = state[id(p)]
                self.frozen_state[id(p)] = {n: a if n == "step" else to_device(a, device or p.device).copy()
                                            for n, a in kept.items()}
        self.flat = self.grad = None
        self.state, self.steps, self.param_views, self.grad_views = {}, [], [], []
        if not self.trainable:
            return
        datas = [p.data if device is None else to_device(p.data, device) for p in self.trainable]
        dtypes = {str(d.dtype) for d in datas}
        if len(dtypes) > 1:
            raise TypeError(f"optimizer: parameters of one group must share a dtype, got {sorted(dtypes)}")
        xp = get_array_module(datas[0])
        self.flat = xp.concatenate([d.reshape(-1) for d in datas])
        self.grad = xp.zeros_like(self.flat)
        dev = backend_of_array(self.flat).device
        for n in self.state_names:
            pieces = [state.get(id(p), {}).get(n) for p in self.trainable]
            pieces = [xp.zeros(d.size, d.dtype) if a is None else to_device(a, dev).reshape(-1).astype(d.dtype)
                      for d, a in zip(datas, pieces)]
            self.state[n] = xp.concatenate(pieces)
        self.steps = [state.get(id(p), {}).get("step", 0) for p in self.trainable]
        self.param_views = self.views(self.flat)
        self.grad_views = self.views(self.grad)
        for p, view, gview in zip(self.trainable, self.param_views, self.grad_views):
            p.data = view
            if p.grad is not None:
                gview[...] = to_device(p.grad.data, dev)
                p.grad = Tensor._make(gview, False)

    def views(self, flat: Any) -> list[Any]:
        """One view of `flat` per parameter, in the parameter's shape."""
        out, start = [], 0
        for p in self.trainable:
            n = p.numel()
            out.append(flat[start : start + n].reshape(p.shape))
            start += n
        return out

    def follow_device(self) -> None:
        """After `Module.to(device)` the parameters live elsewhere: move the buffers and state after them."""
        if self.flat is None:
            return
        kinds = {type(p.data) for p in self.trainable}
        if len(kinds) > 1:
            devices = sorted({p.device for p in self.trainable})
            raise RuntimeError(f"optimizer: the parameters of one group are on several devices: {devices}")
        if type(self.flat) not in kinds:
            self.build(self.param_state(), self.trainable[0].device)

    def zero_grad(self, set_to_none: bool) -> None:
        self.follow_device()
        if set_to_none:
            for p in self["params"]:
                p.grad = None
            return
        self.follow_requires_grad()
        if self.grad is not None:
            self.grad.fill(0)
        for p, gview in zip(self.trainable, self.grad_views):
            p.grad = Tensor._make(gview, False)  # each trainable grad a zero view: backward adds into the buffer
        for p, trains in zip(self["params"], self.requires_grad_at_build):
            if not trains and p.grad is not None:
                p.grad.data.fill(0)

    def follow_requires_grad(self) -> None:
        """Rebuild the buffers if a parameter was frozen or unfrozen since the last build."""
        if tuple(p.requires_grad for p in self["params"]) != self.requires_grad_at_build:
            self.build(self.param_state())

    def sync(self) -> None:
        """Bring values that were put elsewhere back into the flat buffers: a parameter whose .data
        was replaced, a gradient that backward made afresh (copied in). A parameter frozen or unfrozen,
        or moved to another device, since the last build rebuilds the buffers first."""
        self.follow_device()
        self.follow_requires_grad()
        for p, view, gview in zip(self.trainable, self.param_views, self.grad_views):
            if p.data is not view:
                if p.shape != view.shape or type(p.data) is not type(view):
                    raise RuntimeError(
                        f"optimizer: a parameter was replaced by one of shape {p.shape} on {p.device}; "
                        f"expected {tuple(view.shape)} on {backend_of_array(view).device} (move models with Module.to())"
                    )
                view[...] = p.data
                p.data = view
            if p.grad is not None and p.grad.data is not gview:
                gview[...] = p.grad.data
                p.grad = Tensor._make(gview, False)

    def count_step(self) -> list[tuple[slice, int]]:
        """Count a step for each trainable parameter whose .grad is not None, and return the stretches of
        the buffers to update, each with the step number t its parameters take now: neighbours with the
        same t share a stretch (usually every parameter does: one stretch, the whole buffer)."""
        stretches: list[tuple[slice, int]] = []
        start = 0
        for i, p in enumerate(self.trainable):
            stop = start + p.numel()
            if p.grad is not None:
                self.steps[i] += 1
                t = self.steps[i]
                if stretches and stretches[-1][0].stop == start and stretches[-1][1] == t:
                    stretches[-1] = (slice(stretches[-1][0].start, stop), t)
                else:
                    stretches.append((slice(start, stop), t))
            start = stop
        return stretches


class Optimizer:
    defaults: dict[str, Any] = {}  # every hyperparameter with PyTorch's default, as param_groups show them
    unsupported: tuple[str, ...] = ()  # PyTorch switches taken only at their default (off): minigrad lacks them
    state_names: tuple[str, ...] = ()  # per-parameter state arrays, one flat buffer each
    step_in_state = False  # whether state_dict() shows each parameter's step count (as PyTorch's Adam does)

    def __init__(self, params: Iterable[Any], **defaults: Any) -> None:
        name = type(self).__name__
        unknown = sorted(set(defaults) - set(type(self).defaults))
        if unknown:
            raise TypeError(f"{name}: keyword {unknown[0]!r} is not supported "
                            f"(supported: {', '.join(type(self).defaults)})")
        self.defaults = {**type(self).defaults, **defaults}
        self._check_hyper(self.defaults)
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[ParamGroup] = []
        seen: set[int] = set()
        for g in groups:
            ps = list(g["params"])
            for p in ps:
                if not isinstance(p, Tensor) or not p.is_leaf:
                    raise TypeError(f"{name}: expected leaf Tensors (Parameters), got {type(p).__name__}"
                                    f"{'' if not isinstance(p, Tensor) else ' made by an op'}")
                if id(p) in seen:
                    raise ValueError(f"{name}: a parameter appears in more than one group")
                seen.add(id(p))
            hyper = {**self.defaults, **{k: v for k, v in g.items() if k != "params"}}
            self._check_hyper(hyper)
            self.param_groups.append(ParamGroup(ps, hyper, self.state_names))
        self.step_count = 0  # calls to step(): minigrad's, for gpt's checkpoints (PyTorch counts per parameter only)

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        name = type(self).__name__
        if "lr" in hyper and not hyper["lr"] >= 0:
            raise ValueError(f"{name}: learning rate must be >= 0, got {hyper['lr']}")
        if hyper.get("weight_decay", 0) < 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {hyper['weight_decay']}")
        for k in self.unsupported:
            if hyper.get(k):
                raise ValueError(f"{name}: {k}={hyper[k]!r} is not supported")

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:
        """Per parameter that has stepped, as PyTorch's `optimizer.state[p]`: {"step": n, name: array},
        the arrays views into the buffers (writing them changes the optimizer's state)."""
        out = {}
        for g in self.param_groups:
            per_param = g.param_state()
            out.update({p: per_param[id(p)] for p in g["params"] if id(p) in per_param})
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Set every gradient to None (PyTorch's default), or with set_to_none=False zero it in place:
        then the grads stay views into the flat buffers and backward adds straight into them."""
        for g in self.param_groups:
            g.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter whose .grad is not None (see the module docstring); with a closure,
        call it first (it recomputes the loss and the gradients) and return what it returns."""
        loss = None if closure is None else closure()
        self.step_count += 1
        for g in self.param_groups:
            g.sync()
            stretches = g.count_step()
            for stretch, t in stretches:
                flat, grad, state = g.flat[stretch], g.grad[stretch], {n: a[stretch] for n, a in g.state.items()}
                for s in chunks(flat):  # cache-sized pieces: the rule's dozen passes stay in cache
                    self.update(flat[s], grad[s], {n: a[s] for n, a in state.items()}, g, t)
            if stretches:  # the parameters changed in place: a graph that saved them can no longer backward
                bump_version(g.flat)
        return loss

    def update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any], step: int) -> None:
        """One step for one piece of a group: p, grad and each state array are matching 1-D
        pieces of the flat buffers, updated in place; `group` gives the hyperparameters and
        `step` the number of the step its parameters take now (1 for their first)."""
        raise NotImplementedError

    def to(self, device: str) -> Optimizer:
        """Move the flat buffers (parameters, grads, state) to `device`."""
        for g in self.param_groups:
            g.build(g.param_state(), device)
        return self

    # ---- saving and loading ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """As PyTorch's: {"state": {index: {"step": n, name: array}}, "param_groups": [{hyper...,
        "params": [index, ...]}]}, parameters numbered across groups; state only for parameters that have
        stepped; arrays are copies on the state's device, "step" (where shown) a 0-d float32 array, as
        PyTorch's tensor(n). Plus "step": how many times step() ran (gpt's checkpoints record it)."""
        state, groups, i = {}, [], 0
        for g in self.param_groups:
            idx = list(range(i, i + len(g["params"])))
            i += len(g["params"])
            groups.append({**g, "params": idx})
            per_param = g.param_state()
            for j, p in zip(idx, g["params"]):
                if id(p) in per_param:
                    kept = per_param[id(p)]
                    entry = {n: a.copy() for n, a in kept.items() if n != "step"}
                    if self.step_in_state:  # first, as a 0-d array beside the rest, as PyTorch's tensor(n)
                        xp = get_array_module(*entry.values()) if entry else np
                        entry = {"step": xp.asarray(kept["step"], np.float32), **entry}
                    state[j] = entry
        return {"state": state, "param_groups": groups, "step": self.step_count}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Load hyperparameters and state (PyTorch's layout, or a state dict of an older minigrad whose
        parameters shared one step count, the top-level "step"); a parameter without saved state starts
        afresh, as in PyTorch."""
        if len(sd["param_groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(sd['param_groups'])} parameter groups, this optimizer {len(self.param_groups)}")
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError(f"optimizer state group has {len(saved['params'])} parameters, this one {len(g['params'])}")
        shared_step = sd.get("step")
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            self._check_hyper({**g, **hyper})
            g.update(hyper)
            state = {}
            for j, p in zip(saved["params"], g["params"]):
                entry = sd["state"].get(j, sd["state"].get(str(j)))
                if not entry:
                    continue
                arrays = {n: entry[n] for n in self.state_names if entry.get(n) is not None}
                for n, a in arrays.items():
                    if tuple(a.shape) != p.shape:
                        raise ValueError(f"optimizer state {n!r} of parameter {j} has shape {tuple(a.shape)}, "
                                         f"parameter {p.shape}")
                step = entry.get("step", 1 if shared_step is None else shared_step)
                state[id(p)] = {**arrays, "step": int(_number(step))}
            g.build(state)
        self.step_count = int(sd.get("step", 0))


def _number(x: Any) -> float:
    """A step count saved as a number or as a 0-d array or tensor (PyTorch saves tensor(10.))."""
    return float(x.item()) if hasattr(x, "item") else float(x)
