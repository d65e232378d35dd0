"""Pruning: zero the smallest weights of a GPT (global magnitude pruning, the masks kept through
fine-tuning), or cut whole MLP hidden units out so that the layers really shrink. It leaves out
storing the zeros sparsely (a pruned model here keeps its dense arrays: as many bytes, the same
speed), pruning schedules (prune a little, fine-tune, repeat) and movement pruning.

What is pruned: the weights of every Linear layer (c_attn, attn.c_proj, c_fc, mlp.c_proj of each
block). The embeddings stay dense, and with them the tied LM head (its weight is the token
embedding table), as do LayerNorms and biases: together about a tenth of a small GPT's parameters.

Global magnitude pruning (Han et al. 2015; torch.nn.utils.prune.global_unstructured with
L1Unstructured): rank the |w| of all those weights together and zero the smallest `amount` of
them, exactly round(amount * count). One threshold for all layers: a layer with many small
weights loses more of them than one whose weights all matter.

The mask. Each pruned layer becomes a MaskedLinear holding a 0/1 buffer `weight_mask` (the name
torch.nn.utils.prune gives it), and its forward uses weight * weight_mask:

    W_eff = W ⊙ M            (out, in)      y = x W_effᵀ + b
    dW = dW_eff ⊙ M                          (elementwise multiplication's backward: the chain rule)

So a pruned weight's gradient is exactly zero, and the forward itself computes with a zero there
whatever the optimizer does (AdamW's momentum from before pruning, weight decay): no step after
each optimizer step to forget, no hook. With a fresh optimizer the stored weight stays zero too
(its gradient and moments are zero, and decay keeps a zero at zero). The price is one
multiplication per layer per forward; remove_masks() folds the mask in for inference. (PyTorch
keeps the original as `weight_orig` and recomputes `weight`; here the Parameter keeps its name
and is zeroed where pruned, so a state dict after remove_masks loads into a plain GPT.)

Structured pruning (prune_mlp_hidden): remove hidden units of every MLP. Unit j of a block's MLP
adds W_proj[:, j] gelu(W_fc[j] · x + b_fc[j]) to the residual stream; since |gelu(a)| <= |a|,

    |its output| <= max|W_proj[:, j]| (|W_fc[j]|_1 + |b_fc[j]|) max(1, max|x|)

and its score is (|W_fc[j]|_1 + |b_fc[j]|) |W_proj[:, j]|_1, a bound of the same kind (x is
LayerNorm's output). A unit of score 0 adds nothing for any input (gelu(0) = 0), so removing it
changes no output. The lowest-scoring `amount` of each block's units go: c_fc becomes (4C -> k),
mlp.c_proj (k -> C); fewer parameters, fewer bytes, a faster forward. The model's GPTConfig no
longer describes its MLP, so gpt.train.load_model cannot rebuild it from a checkpoint.

Read next: t5.py (T5's text-to-text recipe), then cli.py.
"""
from __future__ import annotations

from typing import Any

import minigrad.functional as F
from gpt.model import MLP
from minigrad.backend import get_array_module
from minigrad.nn import Embedding, Linear, Module, Parameter
from minigrad.tensor import Tensor


class MaskedLinear(Linear):
    """A Linear whose weight is multiplied by a fixed 0/1 mask (the buffer weight_mask) in every
    forward: a masked weight contributes nothing and gets a zero gradient."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        xp = get_array_module(self.weight.data)
        self.register_buffer("weight_mask", Tensor(xp.ones_like(self.weight.data)))  # (out, in), 1 = kept

    @classmethod
    def from_linear(cls, linear: Linear, mask: Any) -> MaskedLinear:
        """`linear`'s own weight and bias Parameters (the same objects) behind `mask`, an (out, in)
        array of 0s and 1s on the weight's device; the weight is zeroed where the mask is 0."""
        m = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        m.weight, m.bias = linear.weight, linear.bias
        m.weight_mask = Tensor(mask.astype(linear.weight.dtype, copy=False))  # (out, in)
        m.weight.data[...] = m.weight.data * m.weight_mask.data  # pruned weights are zeros, also when stored
        return m

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.weight_mask, self.bias)  # (..., in) -> (..., out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sparsity={1 - float(self.weight_mask.data.mean()):.3f}"


def prunable_linears(model: Module) -> dict[str, Linear]:
    """name -> every Linear layer whose weight is not an Embedding's (the tied LM head is the token
    table: it stays dense with the embeddings)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, Embedding)}
    return {name: m for name, m in model.named_modules() if isinstance(m, Linear) and id(m.weight) not in tables}


def _effective(layer: Linear) -> Any:
    """The weight the layer computes with: masked for a MaskedLinear."""
    if isinstance(layer, MaskedLinear):
        return layer.weight.data * layer.weight_mask.data
    return layer.weight.data


def _replace(model: Module, name: str, new: Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name]
    parent._modules[child] = new  # in place: a ModuleList keeps its order
    object.__setattr__(parent, child, new)


def _check_amount(fn: str, amount: Any) -> None:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0.0 <= amount < 1.0:
        raise ValueError(f"{fn}: amount must be in [0, 1) (the fraction of weights to remove), got {amount!r}")


def global_magnitude_prune(model: Module, amount: float) -> list[str]:
    """Zero the round(amount * count) smallest-magnitude weights of all prunable Linear layers taken
    together; each becomes a MaskedLinear (or, pruned again, gets a new mask from its masked weights,
    so what was pruned stays pruned as long as amount does not fall). Returns the layers' names."""
    _check_amount("global_magnitude_prune", amount)
    layers = prunable_linears(model)
    if not layers:
        raise ValueError(f"global_magnitude_prune: {type(model).__name__} has no Linear layer to prune")
    for name, m in layers.items():  # a LoRA or QAT layer rebuilt as a MaskedLinear would lose what it adds
        if type(m) not in (Linear, MaskedLinear):
            raise TypeError(f"global_magnitude_prune: {name} is a {type(m).__name__}, not a plain Linear: "
                            "prune before adding LoRA adapters, fake quantization or quantizing")
    weights = {name: _effective(m) for name, m in layers.items()}  # name -> (out, in)
    xp = get_array_module(next(iter(weights.values())))
    scores = xp.concatenate([xp.abs(w).ravel() for w in weights.values()])  # (count,) every weight's |w|
    k = round(amount * scores.size)  # how many to zero: exactly this many
    keep = xp.ones(scores.size, dtype=scores.dtype)  # (count,)
    keep[xp.argsort(scores)[:k]] = 0.0  # the k smallest (zeros from an earlier pruning come first)
    start = 0
    for name, w in weights.items():
        mask = keep[start : start + w.size].reshape(w.shape)  # (out, in)
        start += w.size
        layer = layers[name]
        if isinstance(layer, MaskedLinear):
            layer.weight_mask = Tensor(mask)
            layer.weight.data[...] = w * mask
        else:
            _replace(model, name, MaskedLinear.from_linear(layer, mask))
    return list(layers)


def sparsity(model: Module) -> dict[str, float]:
    """The fraction of zeros in the weights pruning acts on: "global" over all of them, then each
    prunable Linear layer's by name."""
    zeros = {name: (int((_effective(m) == 0).sum()), m.weight.data.size) for name, m in prunable_linears(model).items()}
    total = sum(n for _, n in zeros.values())
    report = {"global": sum(z for z, _ in zeros.values()) / max(total, 1)}
    report.update({name: z / n for name, (z, n) in zeros.items()})
    return report


def remove_masks(model: Module) -> list[str]:
    """Fold each MaskedLinear's mask into its weight and make it a plain Linear again (the same
    Parameters): for inference, export, or a state dict a plain GPT loads. Returns the names."""
    names = [name for name, m in model.named_modules() if isinstance(m, MaskedLinear)]
    modules = dict(model.named_modules())
    for name in names:
        masked = modules[name]
        plain = Linear(masked.in_features, masked.out_features, bias=masked.bias is not None)
        masked.weight.data[...] = _effective(masked)
        plain.weight, plain.bias = masked.weight, masked.bias
        _replace(model, name, plain)
    return names


def mlp_unit_scores(mlp: MLP) -> Any:
    """(4C,) each hidden unit's score: (|W_fc[j]|_1 + |b_fc[j]|) * |W_proj[:, j]|_1."""
    fc, proj = mlp.c_fc, mlp.c_proj
    xp = get_array_module(fc.weight.data)
    into = xp.abs(fc.weight.data).sum(axis=1)  # (4C,) from (4C, C)
    if fc.bias is not None:
        into = into + xp.abs(fc.bias.data)  # (4C,)
    return into * xp.abs(proj.weight.data).sum(axis=0)  # (4C,) from (C, 4C)


def prune_mlp_hidden(model: Module, amount: float) -> dict[str, int]:
    """Remove the round(amount * hidden) lowest-scoring hidden units of every MLP (mlp_unit_scores):
    c_fc (C -> hidden) becomes (C -> k) and mlp.c_proj (hidden -> C) becomes (k -> C), new Linear
    layers holding the kept rows and columns. Returns each MLP's name -> k, the units it keeps."""
    _check_amount("prune_mlp_hidden", amount)
    mlps = {name: m for name, m in model.named_modules() if isinstance(m, MLP)}
    if not mlps:
        raise ValueError(f"prune_mlp_hidden: {type(model).__name__} has no GPT MLP to prune")
    kept: dict[str, int] = {}
    for name, mlp in mlps.items():
        for part in ("c_fc", "c_proj"):
            if isinstance(getattr(mlp, part), MaskedLinear) or type(getattr(mlp, part)) is not Linear:
                raise TypeError(f"prune_mlp_hidden: {name}.{part} is a {type(getattr(mlp, part)).__name__}, not a "
                                "plain Linear (call remove_masks first, and prune before quantizing)")
        hidden = mlp.c_fc.out_features
        n_remove = round(amount * hidden)
        if n_remove >= hidden:
            raise ValueError(f"prune_mlp_hidden: amount {amount} would remove all {hidden} hidden units of "
                             f"{name} (round({amount} * {hidden}) = {n_remove}); keep at least one")
        xp = get_array_module(mlp.c_fc.weight.data)
        keep = xp.sort(xp.argsort(mlp_unit_scores(mlp))[n_remove:])  # (k,) the units kept, in their order
        fc, proj = mlp.c_fc, mlp.c_proj
        new_fc = Linear(fc.in_features, len(keep), bias=fc.bias is not None)
        new_fc.weight = Parameter(fc.weight.data[keep])  # (k, C): the kept units' rows
        if fc.bias is not None:
            new_fc.bias = Parameter(fc.bias.data[keep])  # (k,)
        new_proj = Linear(len(keep), proj.out_features, bias=proj.bias is not None)
        new_proj.weight = Parameter(proj.weight.data[:, keep])  # (C, k): their columns
        new_proj.bias = proj.bias  # (C,): unchanged
        mlp.c_fc, mlp.c_proj = new_fc, new_proj
        kept[name] = len(keep)
    return kept


def count_nonzero(model: Module) -> int:
    """Nonzero parameters (the tied embedding counted once): what a sparse format would store."""
    return sum(int((p.data != 0).sum()) for p in model.parameters())

