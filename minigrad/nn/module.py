"""Module and Parameter: the containers that hold a model's weights, as in PyTorch.

A Module records every Parameter and sub-Module assigned to it as an attribute,
so `named_parameters()` can walk the tree and give dotted names
("h.0.attn.c_attn.weight") that `state_dict()` and `load_state_dict()` use.
`register_buffer` adds a fixed tensor (no gradient, no optimizer) that `.to()` moves
and, unless persistent=False, `state_dict()` saves, as PyTorch's.

Read next: layers.py.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from minigrad.backend import backend_of_array, to_device
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})  # name -> Tensor or None
        object.__setattr__(self, "_non_persistent_buffers", set())  # names that state_dict leaves out
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting {name!r}")
        if name in self._buffers and not isinstance(value, Parameter | Module):  # a buffer's new tensor
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} (a Tensor or None)")
            self._buffers[name] = value
            object.__setattr__(self, name, value)
            return
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor the module keeps but does not learn (a fixed table, running statistics): `.to()`
        moves it, state_dict() saves it if persistent. Read and assign it as an attribute."""
        if "_buffers" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before register_buffer")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        if tensor is not None and (not isinstance(tensor, Tensor) or isinstance(tensor, Parameter)):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor (not a Parameter) or None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        self._non_persistent_buffers.discard(name)
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for prefix, m in self.named_modules():
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        for hook in self.__dict__.get("_forward_hooks", {}).values():
            hook(self, args, out)
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple[Any, ...], Any], None]) -> HookHandle:
        """Call hook(module, args, output) after every forward, as PyTorch's; `.remove()` on the
        returned handle stops it. (gpt/plot.py catches attention's q and k this way.)"""
        hooks = self.__dict__.setdefault("_forward_hooks", {})
        handle = HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    # ---- the tree ------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by two modules (tied weights) comes once."""
        seen: set[int] = set()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if remove_duplicate and id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    # ---- modes and grads --------------------------------------------------------
    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every submodule, then on this one (as PyTorch's; GPT initialises its weights so)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Set every parameter's .grad to None (PyTorch's default), or with set_to_none=False zero it in place."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    # ---- devices -------------------------------------------------------------------
    def to(self, device: str) -> Module:
        """Move every parameter's data and grad to `device`, keeping the Parameter objects (an
        optimizer holding them sees the move at its next zero_grad() or step() and moves its
        buffers and state after them, optim/optimizer.py), and every buffer."""
        for p in self.parameters():
            p.data = to_device(p.data, device)
            if p.grad is not None:
                p.grad = p.grad.to(device)
        for m in self.modules():
            for name, b in m._buffers.items():
                if b is not None:
                    setattr(m, name, b.to(device))
        return self

    # ---- saving and loading ------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Every parameter under its dotted name, tied ones under each of their names, and every
        persistent buffer (as PyTorch)."""
        state = {}
        for prefix, m in self.named_modules():  # each module's parameters, then its buffers, as PyTorch orders them
            pre = f"{prefix}." if prefix else ""
            state.update((pre + name, p.detach()) for name, p in m._parameters.items())
            state.update((pre + name, b.detach()) for name, b in m._buffers.items()
                         if b is not None and name not in m._non_persistent_buffers)
        return state

    def _persistent_buffers(self) -> dict[str, Tensor]:
        return {(f"{prefix}.{name}" if prefix else name): b.detach() for prefix, m in self.named_modules()
                for name, b in m._buffers.items() if b is not None and name not in m._non_persistent_buffers}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays or tensors into the parameters and persistent buffers by name; shapes must match,
        devices are converted."""
        own = {**dict(self.named_parameters(remove_duplicate=False)), **self._persistent_buffers()}
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in own:
                continue
            p = own[name]
            arr = value.data if isinstance(value, Tensor) else value
            if tuple(arr.shape) != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {tuple(arr.shape)} in the state dict, {p.shape} in the model")
            p.data[...] = to_device(arr, backend_of_array(p.data).device)  # in place: optimizers keep views

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def __repr__(self) -> str:
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}({extra}\n" + "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""


class HookHandle:
    """What register_forward_hook returns: `remove()` takes the hook away again."""

    _next_id = 0

    def __init__(self, hooks: dict[int, Any]) -> None:
        self.hooks, self.id = hooks, HookHandle._next_id
        HookHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


class Sequential(Module):
    """Modules applied one after another: Sequential(Linear(2, 16), ReLU(), Linear(16, 1))."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)


class ModuleList(Module):
    """A list of modules whose parameters are registered under "0", "1", ..."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m: Module) -> None:
        setattr(self, str(len(self._modules)), m)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)


class ModuleDict(Module):
    """Modules registered under the given names: ModuleDict(wte=Embedding(...), h=ModuleList(...))."""

    def __init__(self, modules: dict[str, Module] | None = None, **kw: Module) -> None:
        super().__init__()
        for name, m in {**(modules or {}), **kw}.items():
            setattr(self, name, m)

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self._modules
