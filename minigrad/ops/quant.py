"""Quantized weights: int8 and NF4 codes, the matmul that reads them, and fake quantization for training.

A weight W (out, in) quantized is integer codes plus float scales; dequantize(codes, scales) gives
back W up to the rounding. Two ways, each as bitsandbytes defines it:

    int8 absmax, per output channel (LLM.int8's row-wise weights):
        scale = absmax(W[o, :]) / 127        (out, 1)
        codes = round(W / scale)             (out, in) int8 in [-127, 127]
        W ~= codes * scale                   error <= scale / 2 per element
    NF4, blockwise (QLoRA): each row cut into blocks of block_size values, each block divided by
    its absmax to [-1, 1] and every value replaced by the nearest of 16 levels, NF4_LEVELS
    (quantiles of N(0, 1), so each level is about equally used by normally distributed weights):
        absmax = max |W[o, block]|           (out, in / block_size)
        code   = argmin_k |W / absmax - NF4_LEVELS[k]|   a 4-bit index, two per byte (the first high)
        W ~= NF4_LEVELS[code] * absmax       error <= half the widest gap between levels (0.139) * absmax

Double quantization (QLoRA section 3) stores the NF4 block scales themselves in 8 bits: absmax
minus its mean, in blocks of 256, each with one float scale, so 32 bits per 64 weights become
8 + 32/256: 0.127 bits per weight instead of 0.5. bitsandbytes codes them on its 8-bit "dynamic"
float map; here on the int8 absmax grid above (simpler to read, error <= scale / 2 as before).

The ops with gradients:

    dequant_linear(x, kind, codes, scale, bias)   y = x @ dequantize(codes, scale).T + b
        gradients for x and b only: the codes are integers, frozen (LoRA adapters on top train
        instead: QLoRA). Its simple twin, dequant_linear_simple, dequantizes to a float tensor
        and calls the ordinary linear; the fused op never keeps the float W (it dequantizes again
        in backward), so the model's memory stays that of the codes.
    fake_quantize_per_channel_affine(x, scale, zero_point, axis, quant_min, quant_max)
        PyTorch's op: forward rounds x to the grid and clamps it (what quantizing gives), backward
        is the straight-through estimator, so a model can train while seeing its quantized weights
        (quantization-aware training). fake_quantize_simple builds the same from primitives.

Shapes: x, dout (..., in) and (..., out), N rows once the leading axes are flattened; W (out, in);
int8 codes (out, in), scale (out, 1); NF4 codes (out, in / 2) uint8, absmax (out, in / block_size).

Leaves out: quantized activations (LLM.int8's outlier decomposition, int8 matmul kernels: here
the weight is dequantized and the matmul runs in float), FP4, 3-bit and 2-bit grids.

Read next: ../functional.py.
"""
from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import Array, get_array_module
from minigrad.ops.matmul import linear
from minigrad.ops.reduce import col_sum
from minigrad.tensor import Tensor

# The 16 NF4 levels as bitsandbytes writes them (functional.py, get_4bit_type("nf4")), from the
# QLoRA paper: 8 quantiles of N(0, 1) for the positive half and 7 for the negative, so that 0 is
# exactly a level, each half scaled to end at +-1 (tests/test_quantize.py rebuilds them from quantiles).
NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip
INT8_MAX = 127  # symmetric: codes in [-127, 127], -128 unused (bitsandbytes does the same)
KINDS = ("int8", "nf4")


# ---- pure arrays, no gradient: quantize and dequantize ---------------------------------------


def _safe(absmax: Array) -> Array:
    """absmax with zeros replaced by 1: an all-zero row or block divides by 1, its codes stay 0."""
    return get_array_module(absmax).where(absmax > 0, absmax, 1)


def quantize_int8_absmax(w: Array) -> tuple[Array, Array]:
    """(codes (out, in) int8, scale (out, 1)) with W ~= codes * scale, scale = absmax of the row / 127."""
    xp = get_array_module(w)
    scale = _safe(xp.abs(w).max(axis=-1, keepdims=True)) / INT8_MAX  # (out, 1)
    codes = xp.clip(xp.rint(w / scale), -INT8_MAX, INT8_MAX).astype(xp.int8)  # (out, in)
    return codes, scale.astype(w.dtype)


def dequantize_int8(codes: Array, scale: Array, dtype: Any) -> Array:
    return codes.astype(dtype) * scale.astype(dtype)  # (out, in)


def quantize_nf4(w: Array, block_size: int = 64) -> tuple[Array, Array]:
    """(codes (out, in/2) uint8, two 4-bit indices per byte, absmax (out, in/block_size)): blocks run
    along each row, so in must be a multiple of block_size (and block_size even)."""
    xp = get_array_module(w)
    out_f, in_f = w.shape
    if block_size <= 0 or block_size % 2 or in_f % block_size:
        raise ValueError(f"quantize_nf4: in_features {in_f} is not a multiple of block_size {block_size} "
                         f"(an even positive integer)")
    blocks = w.reshape(out_f, in_f // block_size, block_size)  # (out, nb, block)
    absmax = xp.abs(blocks).max(axis=-1)  # (out, nb)
    normed = blocks / _safe(absmax)[..., None]  # (out, nb, block) in [-1, 1]
    levels = xp.asarray(NF4_LEVELS, dtype=w.dtype)  # (16,)
    midpoints = (levels[1:] + levels[:-1]) / 2  # (15,) the nearest level changes here
    idx = xp.searchsorted(midpoints, normed.reshape(-1)).astype(xp.uint8)  # (out * in,) in [0, 16)
    return pack_nibbles(idx).reshape(out_f, in_f // 2), absmax.astype(w.dtype)


def dequantize_nf4(codes: Array, absmax: Array, dtype: Any) -> Array:
    """codes (out, in/2) uint8, absmax (out, nb) -> W (out, in); block_size = in / nb."""
    xp = get_array_module(codes)
    out_f, nb = absmax.shape
    idx = unpack_nibbles(codes.reshape(-1))  # (out * in,)
    values = xp.asarray(NF4_LEVELS, dtype=dtype)[idx]  # (out * in,)
    w = values.reshape(out_f, nb, -1) * absmax.astype(dtype)[..., None]  # (out, nb, block)
    return w.reshape(out_f, -1)


def pack_nibbles(idx: Array) -> Array:
    """(2n,) uint8 values in [0, 16) -> (n,) bytes, element 2i in the high 4 bits (as bitsandbytes)."""
    xp = get_array_module(idx)
    return xp.bitwise_or(xp.left_shift(idx[0::2], 4), idx[1::2])


def unpack_nibbles(packed: Array) -> Array:
    xp = get_array_module(packed)
    high, low = xp.right_shift(packed, 4), xp.bitwise_and(packed, 15)  # (n,) each
    return xp.stack([high, low], axis=-1).reshape(-1)  # (2n,) high first


def double_quantize(absmax: Array, block_size: int = 256) -> tuple[Array, Array, Array]:
    """NF4's block scales in 8 bits: (codes int8 like absmax, scale (ceil(n/256),), mean (1,)), with
    absmax ~= codes * scale[block] + mean: the mean taken out first (absmax is all positive; centred,
    it uses the signed grid's negative half too), then int8 absmax in blocks of block_size."""
    xp = get_array_module(absmax)
    flat = absmax.reshape(-1)
    mean = flat.mean(keepdims=True)  # (1,)
    centred = flat - mean
    pad = -flat.size % block_size
    blocks = xp.concatenate([centred, xp.zeros(pad, dtype=flat.dtype)]).reshape(-1, block_size)  # (nb2, 256)
    codes, scale = quantize_int8_absmax(blocks)  # (nb2, 256), (nb2, 1)
    return codes.reshape(-1)[: flat.size].reshape(absmax.shape), scale.reshape(-1), mean


def dequantize_double(codes: Array, scale: Array, mean: Array, dtype: Any, block_size: int = 256) -> Array:
    xp = get_array_module(codes)
    flat = codes.reshape(-1)
    pad = -flat.size % block_size
    blocks = xp.concatenate([flat, xp.zeros(pad, dtype=flat.dtype)]).reshape(-1, block_size)  # (nb2, 256)
    absmax = dequantize_int8(blocks, scale.reshape(-1, 1), dtype).reshape(-1)[: flat.size] + mean.astype(dtype)
    return absmax.reshape(codes.shape)


def dequantize(kind: str, codes: Array, scale: Array, dtype: Any) -> Array:
    """The float weight (out, in) that codes and scale stand for."""
    if kind == "int8":
        return dequantize_int8(codes, scale, dtype)
    if kind == "nf4":
        return dequantize_nf4(codes, scale, dtype)
    raise ValueError(f"dequantize: kind must be one of {KINDS}, got {kind!r}")


# ---- dequantize-matmul: y = x @ dequantize(codes, scale).T + b --------------------------------


class DequantLinear(Function):
    def forward(self, x: Array, *b: Array, kind: str, codes: Array, scale: Array) -> Array:
        w = dequantize(kind, codes, scale, x.dtype)  # (out, in), for this call only
        self.x_shape, self.kind, self.codes, self.scale = x.shape, kind, codes, scale
        y = x.reshape(-1, w.shape[1]) @ w.T  # (N, out)
        if b:
            y += b[0]
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    # As Linear's backward (matmul.py) without dW: the codes are integers, nothing to learn there.
    #   y = x2 @ W.T + b   =>   dx = dout @ W   (N, in) = (N, out) @ (out, in)
    #                           db = sum_n dout[n]   (out,)
    # W is dequantized again rather than saved: keeping the float W would hold 4 (int8) or 8 (NF4)
    # times the memory of the codes for every layer until backward.
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        dy2 = dout.reshape(-1, dout.shape[-1])  # (N, out)
        dx = None
        if self.needs_grad[0]:
            w = dequantize(self.kind, self.codes, self.scale, dout.dtype)  # (out, in)
            dx = (dy2 @ w).reshape(self.x_shape)
        if len(self.needs_grad) == 1:
            return (dx,)
        return dx, (col_sum(dy2) if self.needs_grad[1] else None)


def dequant_linear(x: Tensor, kind: str, codes: Tensor, scale: Tensor, bias: Tensor | None = None,
                   name: str = "dequant_linear") -> Tensor:
    """x @ dequantize(codes, scale).T + bias, with gradients for x and bias; `name` (the layer)
    is what an error names. Codes and scale are frozen: asking for their gradient is an error."""
    if scale.requires_grad:
        raise RuntimeError(f"{name}: training a quantized weight directly is not possible: its weight is "
                           f"{kind} codes (integers, no gradient); train LoRA adapters on top of it (QLoRA) or "
                           f"train with gpt.quantize.prepare_qat before quantizing")
    in_f = codes.shape[1] * (2 if kind == "nf4" else 1)
    if x.ndim < 1 or x.shape[-1] != in_f:
        raise ValueError(f"{name}: input {x.shape} does not fit a quantized weight with in_features {in_f}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating point, got {x.dtype}")
    return DequantLinear.apply(x, *([bias] if bias is not None else []), kind=kind, codes=codes.data,
                               scale=scale.data)


def dequant_linear_simple(x: Tensor, kind: str, codes: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """The same, the simple way: dequantize to a float tensor (a constant), then the ordinary linear."""
    w = Tensor(dequantize(kind, codes.data, scale.data, x.dtype), device=x.device)  # (out, in), no grad
    return linear(x, w, bias)


# ---- fake quantization with the straight-through estimator --------------------------------------


class FakeQuantize(Function):
    def forward(self, x: Array, *, scale: Array, zero_point: Array, quant_min: int, quant_max: int) -> Array:
        xp = get_array_module(x)
        q = xp.rint(x / scale) + zero_point  # the integer each element would be stored as, before clamping
        self.inside = (q >= quant_min) & (q <= quant_max)  # bool, x's shape: where no clamping happened
        return ((xp.clip(q, quant_min, quant_max) - zero_point) * scale).astype(x.dtype)

    # y = (clamp(round(x / s) + z, qmin, qmax) - z) * s. Its true derivative is 0 almost everywhere
    # (round is a staircase: flat between steps, a jump at each), so a model trained through it
    # would never learn. The straight-through estimator (Bengio et al. 2013) pretends round was the
    # identity, because y stays within s/2 of x on the grid's range:
    #   inside qmin <= round(x / s) + z <= qmax:  y ~= x          =>  dx = dout
    #   outside (clamped):                        y = const edge  =>  dx = 0
    # that is dx = dout * inside, as PyTorch's fake_quantize backward (a clamped weight moving
    # further out changes nothing, so no gradient pulls it there). Per channel, absmax scales clamp
    # nothing (the largest element is the grid's edge); a fixed or learned scale does.
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout * self.inside,)


def fake_quantize_per_channel_affine(input: Tensor, scale: Tensor, zero_point: Tensor, axis: int, quant_min: int,
                                     quant_max: int) -> Tensor:
    """input rounded to the grid (k - zero_point) * scale, k in [quant_min, quant_max], one scale
    and zero point per index along `axis`, as torch.fake_quantize_per_channel_affine; gradient
    straight through inside the grid's range, 0 where clamped. scale is a constant here."""
    n = input.shape[axis] if input.ndim else 0
    if scale.shape != (n,) or zero_point.shape != (n,):
        raise ValueError(f"fake_quantize_per_channel_affine: scale {scale.shape} and zero_point {zero_point.shape} "
                         f"must be ({n},), one per index of axis {axis} of input {input.shape}")
    if not quant_min < quant_max:
        raise ValueError(f"fake_quantize_per_channel_affine: quant_min {quant_min} must be below quant_max {quant_max}")
    shape = [1] * input.ndim
    shape[axis] = n  # scale and zero point broadcast along `axis`
    return FakeQuantize.apply(input, scale=scale.data.reshape(shape).astype(input.dtype),
                              zero_point=zero_point.data.reshape(shape).astype(input.dtype),
                              quant_min=quant_min, quant_max=quant_max)


def fake_quantize_simple(x: Tensor, scale: Tensor, zero_point: Tensor, axis: int, quant_min: int,
                         quant_max: int) -> Tensor:
    """The same from primitives: y = x * inside + const(q - x * inside), value q, gradient `inside`."""
    xp = get_array_module(x.data)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    s, z = scale.data.reshape(shape).astype(x.dtype), zero_point.data.reshape(shape).astype(x.dtype)
    k = xp.rint(x.data / s) + z  # the stored integer, unclamped
    q = Tensor((xp.clip(k, quant_min, quant_max) - z) * s, device=x.device)  # the grid value, a constant
    inside = Tensor(((k >= quant_min) & (k <= quant_max)).astype(x.dtype), device=x.device)
    passed = x * inside  # the gradient path: 1 inside, 0 where clamped
    return passed + (q - passed.detach())  # value q; gradient that of x * inside
