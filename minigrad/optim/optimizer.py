"""Optimizer: parameter groups whose parameters, gradients and state live in flat buffers.

When an optimizer takes its parameters, it copies each group's parameters into
one contiguous array and makes every parameter's `.data` a view into it; the
gradients get a flat buffer of views too, and so does every piece of optimizer
state (momentum, Adam's moments). An update rule is then a handful of whole-buffer
array operations per group, however many parameters the model has, instead of a
Python loop over parameters.

Only parameters that require grad go into the buffers: a frozen parameter
(`requires_grad=False`) is skipped by `step()` and keeps no state, as in
PyTorch, and freezing or unfreezing after the optimizer was made takes effect at
the next `step()` (the buffers are rebuilt, the others' state carried over). A
group may be empty, or become empty by freezing.

`zero_grad()` zeroes the gradient buffer and leaves each `.grad` as a view into
it, so backward accumulates straight into the buffer. A gradient that lives
elsewhere (say after `model.zero_grad()`, which sets grads to None) is copied
in at `step()`; a missing gradient of a trainable parameter counts as zero, so
weight decay and momentum still move it (PyTorch skips it).

`param_groups` is a list of dicts, as in PyTorch: `for g in opt.param_groups:
g["lr"] = lr` sets a learning rate. After `model.to(device)` the optimizer
notices, at its next `zero_grad()` or `step()`, that its parameters live
elsewhere, and moves its buffers and state after them.

Read next: sgd.py, adam.py, lr_scheduler.py.
"""
from __future__ import annotations

from typing import Any, Iterable

from minigrad.backend import backend_of_array, get_array_module, to_device
from minigrad.nn.module import Parameter
from minigrad.speed import chunks
from minigrad.tensor import Tensor


class ParamGroup(dict):
    """One entry of `optimizer.param_groups`: a dict, as in PyTorch (`g["params"]`, `g["lr"]`,
    `g["weight_decay"]`, ...; `g["lr"] = ...` changes a rate), which also holds, as attributes,
    flat buffers for the values, grads and state of the parameters that require grad."""

    def __init__(self, params: list[Parameter], hyper: dict[str, Any], state_names: tuple[str, ...]) -> None:
        super().__init__(params=params, **hyper)  # params: all, trainable or not
        self.state_names = state_names
        self.trainable: list[Parameter] = []  # those that required grad at the last build: in the buffers
        self.mask: tuple[bool, ...] = ()  # p.requires_grad for each of params at the last build
        self.flat: Any = None  # the trainable parameters, end to end (P,); None when there are none
        self.grad: Any = None  # their gradients (P,)
        self.state: dict[str, Any] = {}  # name -> (P,)
        self.build({})

    def param_state(self) -> dict[int, dict[str, Any]]:
        """id(parameter) -> {state name: view of the state in the parameter's shape}, trainable ones only."""
        per_name = {n: self.views(self.state[n]) for n in self.state_names if n in self.state}
        return {id(p): {n: views[i] for n, views in per_name.items()} for i, p in enumerate(self.trainable)}

    def build(self, state: dict[int, dict[str, Any]], device: str | None = None) -> None:
        """(Re)make the flat buffers over the parameters that require grad now, from their current
        values, on `device` if given; `state` (id(parameter) -> {name: array}) is carried over,
        missing state starts at zero."""
        self.mask = tuple(p.requires_grad for p in self["params"])
        self.trainable = [p for p, trains in zip(self["params"], self.mask) if trains]
        self.flat = self.grad = None
        self.state, self.param_views, self.grad_views = {}, [], []
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
            pieces = [xp.zeros(p.numel(), d.dtype) if a is None else to_device(a, dev).reshape(-1) for p, d, a in zip(self.trainable, datas, pieces)]
            self.state[n] = xp.concatenate(pieces)
        self.param_views = self.views(self.flat)
        self.grad_views = self.views(self.grad)
        old_grads = [p.grad for p in self.trainable]
        for p, view, gview, old in zip(self.trainable, self.param_views, self.grad_views, old_grads):
            p.data = view
            if old is not None:
                gview[...] = to_device(old.data, dev)
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

    def zero_grad(self) -> None:
        self.follow_device()
        if self.grad is None:
            return
        self.grad.fill(0)
        for p, gview in zip(self.trainable, self.grad_views):
            p.grad = Tensor._make(gview, False)

    def follow_requires_grad(self) -> None:
        """Rebuild the buffers if a parameter was frozen or unfrozen since the last build."""
        if tuple(p.requires_grad for p in self["params"]) != self.mask:
            self.build(self.param_state())

    def sync(self) -> None:
        """Bring values that were put elsewhere back into the flat buffers: a parameter whose .data
        was replaced, a gradient that backward made afresh (copied in) or None (zero). A parameter
        frozen or unfrozen, or moved to another device, since the last build rebuilds the buffers first."""
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
            if p.grad is None or p.grad.data is not gview:
                gview[...] = 0 if p.grad is None else p.grad.data
                p.grad = Tensor._make(gview, False)


class Optimizer:
    defaults: dict[str, Any] = {}
    state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], **defaults: Any) -> None:
        self.defaults = {**type(self).defaults, **defaults}
        self._check_hyper(self.defaults)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[ParamGroup] = []
        seen: set[int] = set()
        for g in groups:
            ps = list(g["params"])
            for p in ps:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
                seen.add(id(p))
            hyper = {**self.defaults, **{k: v for k, v in g.items() if k != "params"}}
            self._check_hyper(hyper)
            self.param_groups.append(ParamGroup(ps, hyper, self.state_names))
        self.step_count = 0

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        if "lr" in hyper and not hyper["lr"] >= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {hyper['lr']}")
        if hyper.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {hyper['weight_decay']}")

    def zero_grad(self) -> None:
        """Zero every gradient in place (the grads stay views into the flat buffers)."""
        for g in self.param_groups:
            g.zero_grad()

    def step(self) -> None:
        self.step_count += 1
        for g in self.param_groups:
            g.sync()
            if g.flat is None:  # nothing trainable in this group
                continue
            for s in chunks(g.flat):  # cache-sized pieces: the rule's dozen passes stay in cache
                self.update(g.flat[s], g.grad[s], {n: a[s] for n, a in g.state.items()}, g)

    def update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """One step for one piece of a group: p, grad and each state array are matching 1-D
        pieces of the flat buffers, updated in place; `group` gives the hyperparameters."""
        raise NotImplementedError

    def to(self, device: str) -> Optimizer:
        """Move the flat buffers (parameters, grads, state) to `device`."""
        for g in self.param_groups:
            g.build(g.param_state(), device)
        return self

    # ---- saving and loading ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: array}}, "param_groups": [{hyper..., "params": [index, ...]}], "step": n}
        with parameters numbered across groups, as in PyTorch; state only for trainable parameters;
        arrays are copies on the state's device."""
        state, groups, i = {}, [], 0
        for g in self.param_groups:
            idx = list(range(i, i + len(g["params"])))
            i += len(g["params"])
            groups.append({**g, "params": idx})
            pstate = g.param_state()
            for j, p in zip(idx, g["params"]):
                if pstate.get(id(p)):
                    state[j] = {n: a.copy() for n, a in pstate[id(p)].items()}
        return {"state": state, "param_groups": groups, "step": self.step_count}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Load hyperparameters and state; a trainable parameter without saved state starts at zero,
        saved state of a parameter that is frozen here is ignored."""
        if len(sd["param_groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(sd['param_groups'])} parameter groups, this optimizer {len(self.param_groups)}")
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError(f"optimizer state group has {len(saved['params'])} parameters, this one {len(g['params'])}")
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})
            g.follow_requires_grad()
            pstate = g.param_state()
            for j, p in zip(saved["params"], g["params"]):
                for n, view in pstate.get(id(p), {}).items():
                    arr = sd["state"].get(j, sd["state"].get(str(j), {})).get(n)
                    if arr is None:
                        view[...] = 0
                        continue
                    if tuple(arr.shape) != p.shape:
                        raise ValueError(f"optimizer state {n!r} of parameter {j} has shape {tuple(arr.shape)}, parameter {p.shape}")
                    view[...] = to_device(arr, p.device)
        self.step_count = int(sd.get("step", 0))
