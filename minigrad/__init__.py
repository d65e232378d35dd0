"""minigrad: a tensor autograd engine on NumPy (CPU) and CuPy (GPU) with every backward written by hand.

Reading order: tensor.py, autograd.py (the graph), simple.py (the fused ops the simple
way), ops/ (each op's forward and backward), functional.py, nn/, optim/, gradcheck.py,
backend.py (where arrays live), testing/fakegpu.py, and speed.py last.
"""
from minigrad import functional
from minigrad.autograd import is_grad_enabled, no_grad
from minigrad.backend import (
    available_devices,
    get_array_module,
    get_default_device,
    get_default_dtype,
    manual_seed,
    set_default_device,
    set_default_dtype,
)
from minigrad.tensor import Tensor
from minigrad.creation import arange, ones, randn, tensor, zeros
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad import nn, optim

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "randn", "arange",
    "no_grad", "is_grad_enabled",
    "get_array_module", "available_devices", "set_default_device", "get_default_device",
    "set_default_dtype", "get_default_dtype", "manual_seed",
    "functional", "nn", "optim", "gradcheck", "GradcheckError",
]
