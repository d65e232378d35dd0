"""Making a model smaller by storing its weights in fewer bits: int8 and NF4 layers, QLoRA, and
quantization-aware training.

    quantize(model, "int8" | "nf4")   every Linear becomes a QuantizedLinear, in place: its weight kept
                                      as integer codes and scales (buffers, so state_dict, checkpoints
                                      and minigrad.save carry them), dequantized at each call by
                                      minigrad/ops/quant.py's dequant_linear. Frozen: gradients reach
                                      the input and the bias, never the codes.
    weight_bytes(model)               the bytes of every parameter and buffer as stored (a byte holds
                                      two NF4 codes), each shared tensor counted once
    QLoRA                             quantize(model, "nf4"), then nn.apply_lora(model, targets): each
                                      LoRALinear keeps the quantized layer whole as its frozen base
                                      (`...c_attn.base_layer.weight_codes`, as PEFT names it) and only
                                      the adapters train, in float
    prepare_qat(model, kind) and      quantization-aware training: every Linear becomes a FakeQuantLinear
    convert_qat(model)                that uses its weight rounded to the int8 grid (or NF4's levels) in
                                      forward, with a straight-through gradient (ops/quant.py), so training
                                      learns weights that survive rounding; convert_qat quantizes for real.
                                      qat_finetune(model, batches, steps, kind) does all three.

What quantize leaves in float: the tied embedding and LM head (GPT's wte is also lm_head: one (V, C)
table read by an embedding lookup, which is not a Linear), LayerNorms and biases, as bitsandbytes and
Hugging Face's `load_in_4bit` do (they keep lm_head in float by default too). With a character
vocabulary the table is about 1% of the weights (GPT-2's 50257 tokens would make it 31%, worth
quantizing there); docs/quantization.md gives the bytes.

Leaves out: quantized activations and int8 matmuls (the speed side of LLM.int8: here every call
dequantizes, so a quantized model is smaller but not faster), outlier columns kept in float16, paged
optimizers, learned quantization scales (LSQ).

Read next: distill.py, prune.py (making a model smaller), t5.py (T5's text-to-text recipe), then cli.py.
"""
from __future__ import annotations

from typing import Iterable

import minigrad.functional as F
from gpt.data import Batches
from minigrad import nn
from minigrad.backend import Array, get_array_module, get_backend, get_default_device, get_default_dtype
from minigrad.nn.lora import LoRALinear
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import AdamW
from minigrad.ops.quant import (
    INT8_MAX,
    KINDS,
    dequant_linear,
    dequantize,
    dequantize_double,
    dequantize_nf4,
    double_quantize,
    fake_quantize_per_channel_affine,
    quantize_int8_absmax,
    quantize_nf4,
)
from minigrad.tensor import Tensor


class WeightNotStored(AttributeError):
    """`layer.weight` on a quantized layer: there is no float weight to read or train."""


class QuantizedLinear(nn.Module):
    """A frozen Linear whose weight is stored as int8 codes per output row (kind "int8") or packed
    NF4 codes in blocks of block_size along each row (kind "nf4", optionally with double-quantized
    block scales). Buffers: weight_codes, and weight_scale, or with double_quant weight_scale_codes,
    weight_scale_scale, weight_scale_mean. The bias stays a float Parameter, frozen."""

    def __init__(self, in_features: int, out_features: int, kind: str = "nf4", bias: bool = True,
                 block_size: int = 64, double_quant: bool = False, name: str = "QuantizedLinear") -> None:
        super().__init__()
        check_kind(kind, "QuantizedLinear")
        if kind == "nf4":
            check_block_size(name, in_features, block_size, "QuantizedLinear")
        self.in_features, self.out_features, self.kind, self.name = in_features, out_features, kind, name
        self.block_size = in_features if kind == "int8" else block_size  # int8: one scale per whole row
        self.double_quant = double_quant and kind == "nf4"
        # zeros until from_linear or load_state_dict fills them: no draw from the random stream, so
        # quantizing a model leaves the numbers drawn after it (LoRA's adapters, say) as they were
        xp, dtype = get_backend(get_default_device()).xp, get_default_dtype()
        self.bias = nn.Parameter(xp.zeros(out_features, dtype), requires_grad=False) if bias else None
        self._store(xp.zeros((out_features, in_features), dtype))

    @classmethod
    def from_linear(cls, linear: nn.Linear, kind: str, block_size: int = 64, double_quant: bool = False,
                    name: str = "QuantizedLinear") -> QuantizedLinear:
        layer = cls(linear.in_features, linear.out_features, kind, linear.bias is not None, block_size, double_quant,
                    name)
        layer._store(linear.weight.data)
        if linear.bias is not None:
            layer.bias = linear.bias.requires_grad_(False)  # the same Parameter, now frozen
        return layer

    def _store(self, w: Array) -> None:
        """Quantize the float weight w (out, in) into this layer's buffers."""
        if self.kind == "int8":
            codes, scale = quantize_int8_absmax(w)  # (out, in) int8, (out, 1)
        else:
            codes, scale = quantize_nf4(w, self.block_size)  # (out, in/2) uint8, (out, in/block)
        self.register_buffer("weight_codes", Tensor._make(codes, False))
        if self.double_quant:
            scale_codes, scale_scale, mean = double_quantize(scale)
            self.register_buffer("weight_scale_codes", Tensor._make(scale_codes, False))  # (out, in/block) int8
            self.register_buffer("weight_scale_scale", Tensor._make(scale_scale, False))  # (ceil(n/256),)
            self.register_buffer("weight_scale_mean", Tensor._make(mean, False))  # (1,)
        else:
            self.register_buffer("weight_scale", Tensor._make(scale, False))

    def scale(self) -> Tensor:
        """The float scales: stored as they are, or with double_quant dequantized from their 8-bit codes."""
        if not self.double_quant:
            return self.weight_scale
        s = dequantize_double(self.weight_scale_codes.data, self.weight_scale_scale.data, self.weight_scale_mean.data,
                              self.weight_scale_scale.dtype)
        return Tensor._make(s, False)

    def dequantize_weight(self) -> Tensor:
        """The float weight (out, in) these codes stand for: a copy, no gradient."""
        return Tensor._make(dequantize(self.kind, self.weight_codes.data, self.scale().data,
                                       self.scale().dtype), False)

    def frozen_error(self) -> str:
        return (f"{self.name!r} stores its weight as {self.kind} codes, not as a float Parameter: training a "
                f"quantized weight directly is not possible (integers have no gradient); train LoRA adapters on "
                f"top of it (QLoRA: nn.apply_lora) or train with prepare_qat before quantizing")

    @property
    def weight(self) -> Tensor:
        raise WeightNotStored(self.frozen_error() + "; .dequantize_weight() gives a float copy")

    def forward(self, x: Tensor) -> Tensor:
        if any(b.requires_grad for b in self.buffers()):  # someone set a scale to train
            raise RuntimeError(self.frozen_error())
        return dequant_linear(x, self.kind, self.weight_codes, self.scale(), self.bias, name=repr(self.name))

    def extra_repr(self) -> str:
        block = f", block_size={self.block_size}, double_quant={self.double_quant}" if self.kind == "nf4" else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"kind={self.kind!r}{block}")

    @property
    def quantized(self) -> str:
        """The kind: what nn.apply_lora looks for to keep this layer whole as a frozen base (QLoRA)."""
        return self.kind


def check_kind(kind: str, where: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be 'int8' (8 bits) or 'nf4' (4 bits), got {kind!r}; "
                         f"no other bit width exists here")


def check_block_size(name: str, in_features: int, block_size: int, where: str) -> None:
    """NF4 blocks run along each row: in_features must be a multiple of an even block_size."""
    if not isinstance(block_size, int) or block_size <= 0 or block_size % 2 or in_features % block_size:
        raise ValueError(f"{where}: layer {name!r} has in_features {in_features}, not a multiple of block_size "
                         f"{block_size} (an even positive integer): pass a block_size that divides {in_features}, "
                         f"or skip=[{name!r}]")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p or name.endswith("." + p) for p in patterns)


def _tied_linears(model: nn.Module) -> set[int]:
    """ids of the Linear layers whose weight is also another module's (GPT's lm_head is wte)."""
    owners: dict[int, int] = {}
    for m in model.modules():
        for p in m._parameters.values():
            owners[id(p)] = owners.get(id(p), 0) + 1
    return {id(m) for m in model.modules() if isinstance(m, nn.Linear) and owners[id(m.weight)] > 1}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name]
    parent._modules[child] = new  # in place: a ModuleList keeps its order
    object.__setattr__(parent, child, new)


def _targets(model: nn.Module, kind: str, block_size: int, skip: Iterable[str], where: str) -> list[str]:
    """The dotted names of the Linear layers to replace (not tied, not skipped), each checked first."""
    skip = [skip] if isinstance(skip, str) else list(skip)
    tied = _tied_linears(model)
    targets = []
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            raise TypeError(f"{where}: {name!r} is a LoRALinear: quantize first, then apply LoRA (QLoRA)")
        if isinstance(m, nn.Linear) and id(m) not in tied and not _matches(name, skip):
            if kind == "nf4":
                check_block_size(name, m.in_features, block_size, where)
            targets.append(name)
    return targets


def quantize(model: nn.Module, kind: str, *, block_size: int = 64, double_quant: bool = False,
             skip: Iterable[str] = ()) -> nn.Module:
    """Replace every nn.Linear of model (FakeQuantLinear included) by a QuantizedLinear of `kind`, in
    place, and return model. Left in float: Linear layers whose dotted name is in `skip` or ends with
    "." + an entry, and a Linear whose weight is tied to another module's (GPT's lm_head, which is wte).
    Every layer is checked before any is replaced: an error leaves the model as it was."""
    check_kind(kind, "quantize")
    targets = _targets(model, kind, block_size, skip, "quantize")
    modules = dict(model.named_modules())
    for name in targets:
        _replace(model, name, QuantizedLinear.from_linear(modules[name], kind, block_size, double_quant, name))
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer as stored (uint8 NF4 codes hold two weights a byte), each
    tensor counted once however many modules share it."""
    seen: dict[int, int] = {}
    for m in model.modules():
        for t in [*m._parameters.values(), *m._buffers.values()]:
            if t is not None:
                seen[id(t.data)] = t.data.nbytes
    return sum(seen.values())


# ---- quantization-aware training ------------------------------------------------------------------


class FakeQuantLinear(nn.Linear):
    """A Linear that, in forward, uses its weight as quantization will store it: rounded to the int8
    absmax grid per output row (fake_quantize_per_channel_affine), or to NF4 levels per block. The
    model sees the error quantization will make, and the straight-through gradient still trains the
    float weight. The weight and bias are the wrapped Linear's own Parameters (same names)."""

    @classmethod
    def from_linear(cls, linear: nn.Linear, kind: str = "int8", block_size: int = 64) -> FakeQuantLinear:
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer.kind, layer.block_size = kind, block_size
        layer.weight, layer.bias = linear.weight, linear.bias  # the same Parameters: an optimizer keeps them
        return layer

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, fake_quantize_weight(self.weight, self.kind, self.block_size), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kind={self.kind!r}"


def fake_quantize_weight(w: Tensor, kind: str, block_size: int = 64) -> Tensor:
    """w (out, in) with the values quantize() would give it, and a straight-through gradient."""
    xp = get_array_module(w.data)
    if kind == "nf4":  # absmax blocks clamp nothing, so the straight-through gradient is 1 everywhere:
        wq = dequantize_nf4(*quantize_nf4(w.data, block_size), w.dtype)  # (out, in) NF4 values
        return w + Tensor._make(wq - w.data, False)  # value wq, gradient that of w
    scale = xp.abs(w.data).max(axis=1) / INT8_MAX  # (out,) absmax per row, a constant to backward
    scale = xp.where(scale > 0, scale, 1)
    zero = xp.zeros(w.shape[0], dtype=w.dtype)  # (out,) a symmetric grid
    return fake_quantize_per_channel_affine(w, Tensor._make(scale, False), Tensor._make(zero, False), 0,
                                            -INT8_MAX, INT8_MAX)  # (out, in) on the grid


def prepare_qat(model: nn.Module, kind: str = "int8", *, block_size: int = 64, skip: Iterable[str] = ()) -> nn.Module:
    """Replace every Linear (but tied ones and `skip`, as quantize) by a FakeQuantLinear of `kind`, in
    place; train as usual afterwards, then convert_qat."""
    check_kind(kind, "prepare_qat")
    targets = _targets(model, kind, block_size, skip, "prepare_qat")
    modules = dict(model.named_modules())
    for name in targets:
        _replace(model, name, FakeQuantLinear.from_linear(modules[name], kind, block_size))
    return model


def convert_qat(model: nn.Module) -> nn.Module:
    """After quantization-aware training: quantize for real, as prepare_qat's kind and block size."""
    fakes = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    if not fakes:
        raise ValueError("convert_qat: the model has no FakeQuantLinear layer (call prepare_qat first)")
    skip = [n for n, m in model.named_modules() if type(m) is nn.Linear]  # left in float by prepare_qat
    return quantize(model, fakes[0].kind, block_size=fakes[0].block_size, skip=skip)


def qat_finetune(model: nn.Module, batches: Batches, steps: int, kind: str = "int8", *, lr: float = 3e-4,
                 block_size: int = 64, device: str = "cpu") -> nn.Module:
    """Quantization-aware fine-tuning of a trained GPT: prepare_qat, `steps` AdamW steps (lr constant,
    gradients clipped at 1) on batches.sample("train"), then convert_qat. Returns the quantized model."""
    prepare_qat(model, kind, block_size=block_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        _, loss = model(*batches.sample("train", device))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(params, 1.0)
        opt.step()
    return convert_qat(model)
