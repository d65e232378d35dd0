"""LoRA (Hu et al. 2021): fine-tune a big Linear layer through a small low-rank update.

A pretrained weight W (out, in) stays frozen; the layer learns W's change as the
product of two thin matrices, B (out, r) and A (r, in), with r much smaller than
in and out:

    y = x W^T + b + s * dropout(x) A^T B^T        s = alpha / r     shapes: x (..., in), y (..., out)

A starts uniform (as a Linear's weight) and B at zero, so training starts from the
pretrained model exactly. Only A and B train: r (in + out) numbers instead of
in * out, and the optimizer keeps state for those alone. For inference, `merge()`
folds the update into W (W + s B A, one matmul less per call); `unmerge()` takes
it out again. The wrapped layer keeps the Linear's own `weight` and `bias`
Parameters under their old names, so a pretrained state dict still loads, and
`lora_state_dict` holds only the adapters (`...c_attn.lora_A`, `...lora_B`).

QLoRA: on a layer that gpt/quantize.py has quantized (int8 or NF4 codes, no float weight), the
LoRALinear keeps that layer whole as its frozen `base_layer` (PEFT's name: `...c_attn.base_layer.
weight_codes`) and adds the adapters, which train in float; merge() is refused there, as W + s B A
would not fit the codes.

Leaves out: LoRA for embeddings and convolutions, several adapters per layer,
rank-stabilised scaling (all in Hugging Face's peft).

Read next: gpt/logprobs.py (aligning a model with preferences: reward model, PPO, DPO), then
gpt/cli.py (the command line: train, sample, export to Hugging Face's layout, ...);
examples/finetune_classify.py fine-tunes GPT-2 with it.
"""
from __future__ import annotations

import math
from typing import Any

import minigrad.functional as F
from minigrad.backend import get_array_module
from minigrad.nn.layers import Dropout, Linear, _uniform
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor


class LoRALinear(Linear):
    """A Linear whose frozen weight gets a trainable low-rank update s * B A (s = alpha / r)."""

    def __init__(self, in_features: int, out_features: int, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"LoRALinear: rank r must be a positive integer, got {r!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRALinear: dropout must be in [0, 1), got {dropout}")
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.weight.requires_grad_(False)  # the pretrained weights stay as they are
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.lora_A = _uniform(1 / math.sqrt(in_features), r, in_features)  # (r, in), as a Linear(in, r)
        self.lora_B = Parameter(get_array_module(self.lora_A.data).zeros((out_features, r), self.lora_A.dtype))  # (out, r)
        self.lora_dropout = Dropout(dropout)
        self.merged = False
        self.base_layer: Module | None = None  # QLoRA: the quantized layer standing in for weight and bias

    @classmethod
    def from_linear(cls, linear: Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> LoRALinear:
        """Wrap an existing Linear: its weight and bias Parameters (the same objects) become the frozen base;
        a quantized layer (gpt/quantize.py: it has a `quantized` kind) is kept whole as base_layer."""
        quantized = getattr(linear, "quantized", None)
        lora = cls(linear.in_features, linear.out_features, r, alpha, dropout, bias=linear.bias is not None)
        if quantized:
            for p in linear.parameters():
                p.requires_grad_(False)
            like = linear.dequantize_weight()  # the dtype and device of the weight the codes stand for
            lora.weight, lora.bias, lora.base_layer = None, None, linear  # the quantized layer is the base
        else:
            like = linear.weight
            lora.weight = linear.weight.requires_grad_(False)
            if linear.bias is not None:
                lora.bias = linear.bias.requires_grad_(False)
        lora.lora_A = Parameter(lora.lora_A.to(like.device).data.astype(like.dtype, copy=False))
        lora.lora_B = Parameter(lora.lora_B.to(like.device).data.astype(like.dtype, copy=False))
        return lora

    def delta_weight(self) -> Any:
        """s * B A, the update as an (out, in) array."""
        return self.scaling * (self.lora_B.data @ self.lora_A.data)

    def forward(self, x: Tensor) -> Tensor:
        if self.base_layer is not None:  # QLoRA: the quantized layer dequantizes its own weight
            y = self.base_layer(x)  # (..., out)
        else:
            y = F.linear(x, self.weight, self.bias)  # (..., out), the frozen layer
        if self.merged:
            return y
        h = F.linear(self.lora_dropout(x), self.lora_A)  # (..., r)
        return y + F.linear(h, self.lora_B) * self.scaling  # (..., out)

    def merge(self) -> None:
        """W <- W + s B A, in place; forward then skips the adapter path."""
        if self.merged:
            raise RuntimeError("LoRALinear.merge: already merged")
        if self.base_layer is not None:
            raise RuntimeError(f"LoRALinear.merge: the base is quantized ({self.base_layer.quantized}): W + s B A "
                               f"would not fit its codes; keep the adapters separate")
        self.weight.data += self.delta_weight()
        self.merged = True

    def unmerge(self) -> None:
        """W <- W - s B A: the adapter path again (A and B may then train on)."""
        if not self.merged:
            raise RuntimeError("LoRALinear.unmerge: not merged")
        self.weight.data -= self.delta_weight()
        self.merged = False

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, alpha={self.alpha}"


def apply_lora(model: Module, targets: tuple[str, ...] | list[str], r: int = 8, alpha: float = 16.0,
               dropout: float = 0.0, freeze: bool = True) -> list[str]:
    """Replace every Linear whose dotted name is a target or ends with "." + target (so "c_attn" and
    "attn.c_proj" both work) by a LoRALinear; with freeze, every other parameter stops requiring grad,
    so only the adapters train. Returns the names replaced; a target that matches no Linear is an error."""
    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"apply_lora: rank r must be a positive integer, got {r!r}")
    if isinstance(targets, str):
        targets = [targets]
    found: dict[str, list[str]] = {t: [] for t in targets}
    for name, m in model.named_modules():
        for t in targets:
            if name == t or name.endswith("." + t):
                if not (isinstance(m, Linear) or getattr(m, "quantized", None)) or isinstance(m, LoRALinear):
                    raise TypeError(f"apply_lora: {name!r} is a {type(m).__name__}, not a Linear to adapt")
                found[t].append(name)
    unmatched = [t for t, names in found.items() if not names]
    if unmatched:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, Linear)})
        raise ValueError(f"apply_lora: no Linear layer matches {unmatched}; the model's Linear layers are named {linears}")
    names = sorted({n for ns in found.values() for n in ns})
    modules = dict(model.named_modules())
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name]
        lora = LoRALinear.from_linear(modules[name], r, alpha, dropout)
        parent._modules[child] = lora  # in place: a ModuleList keeps its order
        object.__setattr__(parent, child, lora)
    return names


def lora_modules(model: Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: Module) -> None:
    for m in lora_modules(model):
        m.merge()


def unmerge_lora(model: Module) -> None:
    for m in lora_modules(model):
        m.unmerge()


def lora_state_dict(model: Module) -> dict[str, Tensor]:
    """Only the adapters (A and B of every LoRALinear): what a LoRA fine-tune needs to save."""
    return {name: p.detach() for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}


def load_lora_state_dict(model: Module, state: dict[str, Any]) -> None:
    """Load adapters saved by lora_state_dict; the names must be exactly the model's adapters."""
    own = lora_state_dict(model)
    if not own:
        raise ValueError("load_lora_state_dict: the model has no LoRA layers (call apply_lora first)")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"load_lora_state_dict: missing adapters {missing}, unexpected {unexpected}")
    if any(m.merged for m in lora_modules(model)):
        raise RuntimeError("load_lora_state_dict: unmerge the model first (its weights hold the old adapters)")
    model.load_state_dict(state, strict=False)
