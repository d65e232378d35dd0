"""minigrad: a tensor autograd engine on NumPy (CPU) and CuPy (GPU) with every backward written by hand.

Reading order: tensor.py, creation.py, autograd.py (the graph), simple.py (the fused ops the
simple way), ops/ (each op's forward beside its backward, and after ops/setitem.py the in-place
writes of inplace.py), functional.py, nn/, optim/, serialization.py, utils/data.py, gradcheck.py,
backend.py (where arrays live), testing/fakegpu.py; then the GPT, gpt/model.py onwards; then
extras.py, distributed.py, as_torch.py, speed.py (the speed tricks, last), and the learner's
tools: viz.py and graph_layout.py (the graph as a picture), exercises/ (write each backward yourself).
Each file ends by naming the next ("Read next:"); tests/test_reading_order.py checks that the
chain reaches every file once. Shape letters and words: docs/glossary.md; every backward's
math: docs/derivations.md.

The names here are PyTorch's (creation functions, dtypes, devices, torch.X math functions), each
pointing at the op or function where it is written, so that code written for PyTorch's core API
runs with `import minigrad as torch`.

Read next: tensor.py.
"""
import math as _math
from types import SimpleNamespace as _Namespace

import numpy as _np

from minigrad import functional
from minigrad.autograd import is_grad_enabled, no_grad
from minigrad.backend import (
    Generator,
    available_devices,
    cuda_device_count,
    cuda_is_available,
    device,
    get_array_module,
    get_default_device,
    get_default_dtype,
    manual_seed,
    set_default_device,
    set_default_dtype,
)
from minigrad.tensor import Size, Tensor, can_cast, promote_types, result_type
from minigrad.creation import (
    arange,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from minigrad.ops.elementwise import exp, floor_divide, log, maximum, pow, remainder, sigmoid, sqrt, tanh, where
from minigrad.ops.matmul import matmul
from minigrad.ops.quant import fake_quantize_per_channel_affine
from minigrad.ops.reduce import amax, amin, argmax, argmin, max, mean, min, std, sum, topk, var
from minigrad.ops.shape import (
    cat,
    concat,
    concatenate,
    flatten,
    gather,
    nonzero,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    tril,
    triu,
    unsqueeze,
)
from minigrad.ops.softmax import log_softmax, softmax
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.serialization import load, save
from minigrad.speed import is_plain, plain, set_plain
from minigrad import nn, optim, utils

__version__ = "0.1.0"  # as in pyproject.toml

# torch.X(t, ...) where X is composed of other ops rather than one of its own: the Tensor's method
abs, square, clamp, clip, minimum = Tensor.abs, Tensor.square, Tensor.clamp, Tensor.clip, Tensor.minimum
isnan, isinf, isfinite, equal, allclose = Tensor.isnan, Tensor.isinf, Tensor.isfinite, Tensor.equal, Tensor.allclose
numel, is_floating_point, masked_fill = Tensor.numel, Tensor.is_floating_point, Tensor.masked_fill

# dtypes as PyTorch names them. They are NumPy dtypes, so `t.dtype == minigrad.float32`.
float32 = float = _np.dtype("float32")
float64 = double = _np.dtype("float64")
float16 = half = _np.dtype("float16")
int64 = long = _np.dtype("int64")
int32 = int = _np.dtype("int32")
int16 = short = _np.dtype("int16")
int8 = _np.dtype("int8")
uint8 = _np.dtype("uint8")
bool = _np.dtype("bool")

pi, e, inf, nan = _math.pi, _math.e, _math.inf, _math.nan

inference_mode = no_grad  # no graph recorded: all that inference mode means here
cuda = _Namespace(is_available=cuda_is_available, device_count=cuda_device_count)  # torch.cuda's questions
backends = _Namespace(mps=_Namespace(is_available=lambda: False))  # no Apple GPU backend


def __getattr__(name: str) -> object:
    if name == "bfloat16":  # the book's scripts ask for it by name; fail there, saying why
        raise AttributeError("minigrad.bfloat16: NumPy has no bfloat16 dtype; use float16 or float32", name=name)
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}", name=name)


__all__ = [
    "Tensor", "Size", "tensor", "device", "Generator",
    "zeros", "ones", "full", "empty", "eye", "arange", "linspace",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like",
    "rand", "randn", "randint", "randperm", "multinomial", "manual_seed",
    "exp", "log", "sqrt", "tanh", "sigmoid", "pow", "abs", "square", "clamp", "clip", "maximum", "minimum",
    "floor_divide", "remainder", "where", "masked_fill", "matmul", "softmax", "log_softmax",
    "fake_quantize_per_channel_affine",
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "topk",
    "reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "gather", "nonzero",
    "cat", "concat", "concatenate", "stack", "split", "tril", "triu",
    "isnan", "isinf", "isfinite", "equal", "allclose", "numel", "is_floating_point",
    "float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32", "int",
    "int16", "short", "int8", "uint8", "bool", "pi", "e", "inf", "nan",
    "result_type", "promote_types", "can_cast", "no_grad", "inference_mode", "is_grad_enabled",
    "set_plain", "plain", "is_plain", "cuda", "backends",
    "get_array_module", "available_devices", "set_default_device", "get_default_device",
    "set_default_dtype", "get_default_dtype",
    "save", "load", "functional", "nn", "optim", "utils", "gradcheck", "GradcheckError",
]
