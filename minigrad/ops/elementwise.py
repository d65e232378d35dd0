"""Elementwise ops: each output element depends on the matching input element(s) only.

So every Jacobian is diagonal and every backward is an elementwise product:
dx = dout * f'(x). Binary ops broadcast their inputs in forward; in backward the
adjoint of broadcasting is summation, done by the one helper `unbroadcast`.

Shapes: x, y, dout are (...) of any shape; a and b broadcast to the output's shape.

Read next: reduce.py.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import Array, backend_of_array, get_array_module, get_default_dtype, to_device
from minigrad.speed import chunks, is_plain, library_erf
from minigrad.tensor import Tensor, as_operands, as_tensor, result_type


def unbroadcast(grad: Array, shape: tuple[int, ...]) -> Array:
    """Sum `grad` down to `shape`: the adjoint of broadcasting `shape` up to grad.shape.

    Broadcasting copies an input along new leading axes and along its size-1 axes,
    so each copy's gradient flows back to the one original element: sum over those axes.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


# ---- binary ops ---------------------------------------------------------------


class Add(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    # y = a + b  =>  da = dout, db = dout (each summed over its broadcast axes)
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        return unbroadcast(dout, self.a_shape), unbroadcast(dout, self.b_shape)


class Sub(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    # y = a - b  =>  da = dout, db = -dout
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        db = -unbroadcast(dout, self.b_shape) if self.needs_grad[1] else None
        return unbroadcast(dout, self.a_shape), db


class Mul(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a, self.b = a, b
        return a * b

    # y = a * b  =>  da = dout * b, db = dout * a
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        da = unbroadcast(dout * self.b, self.a.shape) if self.needs_grad[0] else None
        db = unbroadcast(dout * self.a, self.b.shape) if self.needs_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a_shape, self.b = a.shape, b
        self.y = a / b
        return self.y

    # y = a / b  =>  da = dout / b,  db = -dout * a / b^2 = -dout * y / b
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        da = unbroadcast(dout / self.b, self.a_shape) if self.needs_grad[0] else None
        db = unbroadcast(-dout * self.y / self.b, self.b.shape) if self.needs_grad[1] else None
        return da, db


class Remainder(Function):
    def forward(self, a: Array, b: Array) -> Array:
        xp = get_array_module(a)
        self.a_shape, self.b_shape = a.shape, b.shape
        self.q = xp.floor_divide(a, b) if self.needs_grad[1] else None
        return xp.remainder(a, b)

    # y = a - b * q, q = floor(a / b)  (Python's %: y takes b's sign)
    #   =>  da = dout,  db = -dout * q   (q is flat between its jumps; PyTorch's gradient too)
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        db = unbroadcast(-dout * self.q, self.b_shape) if self.needs_grad[1] else None
        return unbroadcast(dout, self.a_shape), db


class Maximum(Function):
    def forward(self, a: Array, b: Array) -> Array:
        self.a, self.b = a, b
        return get_array_module(a).maximum(a, b)

    # y = max(a, b)  =>  dout goes to the larger input; at ties (a == b) each gets half,
    # as in torch.maximum, so the two halves still sum to dout.
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        a, b = self.a, self.b
        share_a = (a > b) + 0.5 * (a == b)  # 1, 1/2 or 0 (float, broadcast to the output's shape)
        da = unbroadcast(dout * share_a.astype(dout.dtype), a.shape)
        db = unbroadcast(dout * (1 - share_a).astype(dout.dtype), b.shape)
        return da, db


class Where(Function):
    def forward(self, a: Array, b: Array, cond: Array) -> Array:
        self.cond, self.a_shape, self.b_shape = cond, a.shape, b.shape
        return get_array_module(a).where(cond, a, b)

    # y = cond ? a : b  =>  da = dout where cond else 0,  db = dout where not cond else 0
    def backward(self, dout: Array) -> tuple[Array | None, Array | None]:
        xp = get_array_module(dout)
        zero = xp.zeros((), dtype=dout.dtype)
        da = unbroadcast(xp.where(self.cond, dout, zero), self.a_shape) if self.needs_grad[0] else None
        db = unbroadcast(xp.where(self.cond, zero, dout), self.b_shape) if self.needs_grad[1] else None
        return da, db


def add(a: Any, b: Any) -> Tensor:
    return Add.apply(*as_operands("add", a, b))


def sub(a: Any, b: Any) -> Tensor:
    return Sub.apply(*as_operands("sub", a, b))


def mul(a: Any, b: Any) -> Tensor:
    return Mul.apply(*as_operands("mul", a, b))


def div(a: Any, b: Any) -> Tensor:
    """True division: integers give the default float dtype (int / int is float32), as in PyTorch."""
    a, b = as_operands("div", a, b)
    return Div.apply(_float(a), _float(b))


def floor_divide(a: Any, b: Any) -> Tensor:
    """a // b, rounded toward minus infinity (PyTorch's floor_divide), in result_type(a, b).
    Piecewise constant, so not differentiable: the result requires no grad."""
    a, b = _dividing("floor_divide", a, b)
    xp = get_array_module(a.data)
    return Tensor._make(xp.asarray(xp.floor_divide(a.data, b.data)), False)


def remainder(a: Any, b: Any) -> Tensor:
    """a % b with the sign of b, as Python's % and PyTorch's remainder, in result_type(a, b)."""
    return Remainder.apply(*_dividing("remainder", a, b))


def _dividing(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """The operands of // and %, which PyTorch refuses for bools and for integer division by zero
    (NumPy would give 0 and a warning)."""
    a, b = as_operands(op, a, b)
    kind = a.data.dtype.kind
    if kind == "b":
        raise TypeError(f"{op}: not supported for bool tensors")
    if kind in "iu" and bool((b.data == 0).any()):
        raise ZeroDivisionError(f"{op}: integer division by zero")
    return a, b


def maximum(a: Any, b: Any) -> Tensor:
    return Maximum.apply(*as_operands("maximum", a, b))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise `cond ? a : b`; cond is a boolean Tensor or array on the same device."""
    a, b = as_operands("where", a, b)
    c = cond.data if isinstance(cond, Tensor) else cond
    if type(c) is not type(a.data):
        raise RuntimeError(f"where: condition is a {type(c).__name__}, values are on {a.device}")
    if c.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got {c.dtype}")
    return Where.apply(a, b, cond=c)


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """x with `value` wherever mask is True (PyTorch's masked_fill); the result keeps x's dtype."""
    return where(mask, cast(as_tensor(value, x), x.dtype), x)


def compare(op: str, a: Any, b: Any) -> Tensor:
    a, b = as_operands(op, a, b)
    xp = get_array_module(a.data)
    fn = {"lt": xp.less, "le": xp.less_equal, "gt": xp.greater, "ge": xp.greater_equal,
          "eq": xp.equal, "ne": xp.not_equal}[op]
    return Tensor._make(xp.asarray(fn(a.data, b.data)), False)  # (NumPy gives a scalar for 0-d inputs)


# ---- unary ops ------------------------------------------------------------------


class Neg(Function):
    def forward(self, x: Array) -> Array:
        return -x

    # y = -x  =>  dx = -dout
    def backward(self, dout: Array) -> tuple[Array]:
        return (-dout,)


class Pow(Function):
    def forward(self, x: Array, p: float) -> Array:
        self.x, self.p = x, p
        return x**p

    # y = x^p  =>  dx = dout * p * x^(p-1)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * (self.p * self.x ** (self.p - 1)),)


class Exp(Function):
    def forward(self, x: Array) -> Array:
        self.y = get_array_module(x).exp(x)
        return self.y

    # y = e^x  =>  dx = dout * y
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.y,)


class Log(Function):
    def forward(self, x: Array) -> Array:
        self.x = x
        return get_array_module(x).log(x)

    # y = ln x  =>  dx = dout / x
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout / self.x,)


class Sqrt(Function):
    def forward(self, x: Array) -> Array:
        self.y = get_array_module(x).sqrt(x)
        return self.y

    # y = x^(1/2)  =>  dx = dout / (2 y)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout / (2 * self.y),)


class Tanh(Function):
    def forward(self, x: Array) -> Array:
        self.y = get_array_module(x).tanh(x)
        return self.y

    # y = tanh x  =>  dx = dout * (1 - y^2)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * (1 - self.y * self.y),)


class Sigmoid(Function):
    def forward(self, x: Array) -> Array:
        # 1 / (1 + e^-x) overflows e^-x for x << 0; the tanh form never does.
        self.y = 0.5 * (1 + get_array_module(x).tanh(0.5 * x))
        return self.y

    # y = 1 / (1 + e^-x)  =>  dx = dout * y * (1 - y)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.y * (1 - self.y),)


class ReLU(Function):
    def forward(self, x: Array) -> Array:
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    # y = max(x, 0)  =>  dx = dout where x > 0, else 0 (also 0 at the kink x = 0)
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.positive,)


def _erf(x: Array) -> Array:
    """erf x = 2/sqrt(pi) * integral_0^x e^(-s^2) ds, elementwise, to float64 precision.

    NumPy has no erf, so unless the array library brings one (speed.library_erf) it comes
    from the series erf x = 2/sqrt(pi) e^(-x^2) sum_n x (2x^2)^n / (1 * 3 * ... * (2n + 1)),
    whose terms all share x's sign (no cancellation). Past |x| = 6, erf x = +-1 in float64."""
    xp = get_array_module(x)
    fast = library_erf(xp)
    if fast is not None:
        return fast(x)
    x = xp.clip(x, -6.0, 6.0)
    two_x2 = 2 * x * x
    term = x.copy()  # x (2x^2)^n / (1 * 3 * ... * (2n + 1)), n = 0
    total = x.copy()
    for n in range(1, 200):  # |x| = 6 needs about 110 terms
        term *= two_x2 * (1.0 / (2 * n + 1))
        total += term
        if not bool((xp.abs(term) > 1e-17 * xp.abs(total)).any()):
            break
    return total * xp.exp(-x * x) * (2 / math.sqrt(math.pi))


class Erf(Function):
    def forward(self, x: Array) -> Array:
        self.x = x
        return _erf(x)

    # y = erf x  =>  dx = dout * 2/sqrt(pi) e^(-x^2)
    def backward(self, dout: Array) -> tuple[Array]:
        xp = get_array_module(dout)
        return (dout * ((2 / math.sqrt(math.pi)) * xp.exp(-self.x * self.x)),)


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_tanh_piece(x: Array, y: Array, dydx: Array | None) -> None:
    """y = GELU(x) by the tanh approximation and, if dydx is given, dydx = its derivative,
    written into y and dydx (same shapes as x). Names that share a buffer say so."""
    xp = get_array_module(x)
    x2 = x * x  # x^2
    u = x2 * (0.044715 * _GELU_C)
    u += _GELU_C
    u *= x  # u = c (x + 0.044715 x^3)
    t = xp.tanh(u, out=u)  # t = tanh u (in u's buffer)
    cdf = t + 1
    cdf *= 0.5  # (1 + t)/2, the tanh form of Phi(x), the normal CDF
    xp.multiply(x, cdf, out=y)  # y = x (1 + t)/2
    if dydx is None:
        return
    xp.multiply(t, t, out=t)
    sech2 = xp.subtract(1, t, out=t)  # 1 - t^2 = tanh'(u) (in t's buffer)
    x_du_dx_half = xp.multiply(x2, 3 * 0.044715 * _GELU_C / 2, out=x2)
    x_du_dx_half += _GELU_C / 2
    x_du_dx_half *= x  # x du/dx / 2, du/dx = c (1 + 3 * 0.044715 x^2) (in x2's buffer)
    xp.multiply(sech2, x_du_dx_half, out=dydx)
    dydx += cdf  # dy/dx = (1 + t)/2 + x (1 - t^2) du/dx / 2


def _gelu_erf_piece(x: Array, y: Array, dydx: Array | None) -> None:
    """y = GELU(x) = x Phi(x) exactly and, if dydx is given, dydx = Phi(x) + x phi(x)."""
    xp = get_array_module(x)
    cdf = _erf(x * (1 / math.sqrt(2)))
    cdf += 1
    cdf *= 0.5  # Phi(x) = (1 + erf(x / sqrt 2))/2, the standard normal's CDF
    xp.multiply(x, cdf, out=y)  # y = x Phi(x)
    if dydx is None:
        return
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= 1 / math.sqrt(2 * math.pi)  # phi(x) = e^(-x^2/2) / sqrt(2 pi), the normal's density
    xp.multiply(x, pdf, out=dydx)
    dydx += cdf  # dy/dx = Phi(x) + x phi(x)


class GELU(Function):
    """GELU, y = x Phi(x) with Phi the standard normal CDF, in PyTorch's two forms:
    approximate="none" computes Phi from erf (nanoGPT's nn.GELU()), approximate="tanh" is GPT-2's
    y = x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi), within 5e-4 of the exact form.
    simple.gelu composes both forms from primitives.

    An MLP's activations are the largest arrays of a GPT. Forward computes dy/dx next to y
    (both need the same intermediate values) and keeps it instead of x, so backward is one
    multiply and the op holds one such array, as it would holding x. The chain runs on
    cache-sized pieces (speed.chunks), so its temporaries are small and stay in cache."""

    def forward(self, x: Array, approximate: str) -> Array:
        xp = get_array_module(x)
        piece = _gelu_tanh_piece if approximate == "tanh" else _gelu_erf_piece
        x = xp.ascontiguousarray(x).reshape(x.shape)  # (ascontiguousarray makes 0-d arrays 1-d)
        y = xp.empty_like(x)
        dydx = xp.empty_like(x) if any(self.needs_grad) else None
        x1, y1, d1 = x.reshape(-1), y.reshape(-1), None if dydx is None else dydx.reshape(-1)
        for s in chunks(x1):
            piece(x1[s], y1[s], None if d1 is None else d1[s])
        self.dydx = dydx
        return y

    # dx = dout * dy/dx   (dy/dx was computed in forward, by the piece functions above:
    #   exact:  y = x Phi(x),           dy/dx = Phi(x) + x phi(x)
    #   tanh:   y = x/2 (1 + tanh u),   dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) du/dx)
    def backward(self, dout: Array) -> tuple[Array]:
        if self.reuse_saved:  # dy/dx is ours alone and dies now: one (B, T, 4C) array less at the peak
            return (get_array_module(dout).multiply(dout, self.dydx, out=self.dydx),)
        return (dout * self.dydx,)


class Cast(Function):
    def forward(self, x: Array, dtype: Any) -> Array:
        self.in_dtype = x.dtype
        return x.astype(dtype)

    # y = x in another dtype  =>  dx = dout in x's dtype
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout.astype(self.in_dtype),)


class ToDevice(Function):
    def forward(self, x: Array, device: str) -> Array:
        self.in_device = backend_of_array(x).device
        return to_device(x, device)

    # y = x on another device  =>  dx = dout moved back to x's device (explicitly, through backend.to_device)
    def backward(self, dout: Array) -> tuple[Array]:
        return (to_device(dout, self.in_device),)


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


def pow(x: Tensor, exponent: float) -> Tensor:
    """x ** exponent in result_type(x, exponent): int ** 2 stays int, int ** 0.5 is the default float."""
    if isinstance(exponent, np.generic):
        exponent = exponent.item()
    if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float)):
        raise TypeError(f"pow: the exponent must be a Python number, got {type(exponent).__name__}")
    if x.data.dtype.kind != "f":  # (a float x keeps its dtype whatever the number)
        x = cast(x, result_type(x, exponent))
    return Pow.apply(x, p=exponent)


def _float(x: Tensor) -> Tensor:
    """x, with integers and bools in the default float dtype: PyTorch's float ops (exp, sqrt, true
    division, ...) take them so, and exp of an int64 tensor is float32."""
    return x if x.data.dtype.kind == "f" else cast(x, get_default_dtype())


def exp(x: Tensor) -> Tensor:
    return Exp.apply(_float(x))


def log(x: Tensor) -> Tensor:
    return Log.apply(_float(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(_float(x))


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(_float(x))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(_float(x))


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


def erf(x: Tensor) -> Tensor:
    return Erf.apply(_float(x))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU as torch.nn.functional.gelu: approximate="none" (exact, erf) or "tanh"."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    if x.data.dtype.kind != "f":
        raise TypeError(f"gelu: needs a floating tensor, got {x.dtype} (as PyTorch)")
    if is_plain():  # the op exists for speed and memory: plain mode takes its simple twin (speed.py)
        from minigrad import simple  # (simple.py is built on this module, so it is imported here)

        return simple.gelu(x, approximate)
    return GELU.apply(x, approximate=approximate)


def cast(x: Tensor, dtype: Any) -> Tensor:
    dtype = np.dtype(dtype) if dtype is not None else get_default_dtype()
    if dtype == x.dtype:
        return x
    if x.requires_grad and dtype.kind != "f":
        return Tensor._make(x.data.astype(dtype), False)  # integer results carry no gradient
    return Cast.apply(x, dtype=dtype)
