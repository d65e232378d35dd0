"""Shape ops: reshape (and squeeze, unsqueeze, flatten), permute/transpose, indexing (and gather),
concatenate, stack, split, broadcast_to (and expand), clone, tril/triu.

They move elements without changing them, so each backward moves the gradient
back the way the elements came: reshape undoes a reshape, the inverse
permutation undoes a permutation, a scatter (with addition, for repeated
indices) undoes a gather, a split undoes a concatenation.

The functions take PyTorch's names and keywords (dim) and NumPy's (axis), not both at once.

Read next: setitem.py (writing into a tensor), then ../inplace.py.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from minigrad.autograd import Function, SparseGrad
from minigrad.backend import Array, get_array_module
from minigrad.ops.elementwise import unbroadcast, where
from minigrad.speed import is_plain
from minigrad.tensor import Tensor, check_same_device


def either(op: str, torch_name: str, torch_value: Any, numpy_name: str, numpy_value: Any) -> Any:
    """One keyword given in PyTorch's spelling (dim, keepdim) or NumPy's (axis, keepdims): whichever
    is not None; both is an error."""
    if numpy_value is None:
        return torch_value
    if torch_value is not None:
        raise TypeError(f"{op}: got both {torch_name}={torch_value!r} and {numpy_name}={numpy_value!r}; pass one")
    return numpy_value


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None for all, an int or a sequence of ints) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (int(axis),) if isinstance(axis, (int, np.integer)) else tuple(int(a) for a in axis)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
    return tuple(sorted({a % max(ndim, 1) for a in axes}))


class Reshape(Function):
    def forward(self, x: Array, shape: tuple[int, ...]) -> Array:
        self.in_shape = x.shape
        return x.reshape(shape)

    # y = x viewed as another shape, element order kept  =>  dx = dout viewed as x's shape
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout.reshape(self.in_shape),)


class Permute(Function):
    def forward(self, x: Array, axes: tuple[int, ...]) -> Array:
        self.axes = axes
        return x.transpose(axes)

    # y = x with its axes reordered: axis k of y is axis axes[k] of x
    # =>  dx = dout permuted by the inverse permutation (argsort of axes)
    def backward(self, dout: Array) -> tuple[Array]:
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return (dout.transpose(inverse),)


class GetItem(Function):
    def forward(self, x: Array, index: Any) -> Array:
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    # y = x[index] gathers elements  =>  dx = zeros with dout scattered back to the same places.
    # With integer-array indices one element may be gathered several times: its gradient is the
    # sum of all of them, so the scatter uses add.at (a plain dx[index] = dout would keep only one).
    # The zeros are made by ScatteredGrad, below, once for all the pieces of a split (in plain mode,
    # speed.py, at once: the dense dx).
    def backward(self, dout: Array) -> tuple[Array | ScatteredGrad]:
        dx = ScatteredGrad(self.shape, self.dtype, [(self.index, dout, _is_advanced(self.index))])
        return (dx.to_array() if is_plain() else dx,)


class ScatteredGrad(SparseGrad):
    """A gradient that is zero except at some indexed places: what indexing's backward returns.

    q, k, v = c_attn(x).split(...) (the GPT's attention) makes three GetItem ops. If each
    backward returned a zero array of the whole output's shape with its piece filled in, the
    engine would then add the three full arrays: five full-size passes of nothing but zeros and copies. Kept as
    (index, values) parts instead, the pieces of one tensor's gradient are written into a
    single zero array when the gradient is needed (autograd.SparseGrad)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, parts: list[tuple[Any, Any, bool]]) -> None:
        self.shape, self.dtype, self.parts = shape, dtype, parts  # parts: (index, values, index repeats?)
        self.array_type = type(parts[0][1])

    def plus(self, other: Array | SparseGrad) -> Array | SparseGrad:
        if isinstance(other, ScatteredGrad):
            return ScatteredGrad(self.shape, self.dtype, self.parts + other.parts)
        return self.to_array(start=other)

    def to_array(self, start: Array | None = None) -> Array:
        """The dense gradient: zeros (or a copy of `start`) plus every part at its index."""
        xp = get_array_module(self.parts[0][1])
        out = xp.zeros(self.shape, dtype=self.dtype) if start is None else start.copy()
        for index, values, repeats in self.parts:
            if repeats:  # an integer-array index may name one place twice: add every time
                xp.add.at(out, index, values)
            else:
                out[index] += values
        return out


def _is_advanced(index: Any) -> bool:
    """Does the index hold an integer array (which may pick one element twice)? Slices, ints and
    boolean masks never do, so a plain assignment scatters their gradient."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and p.dtype.kind in "iu" and p.ndim > 0 for p in parts)


class Concatenate(Function):
    def forward(self, *xs: Array, axis: int) -> Array:
        self.axis = axis
        self.bounds = []
        total = 0
        for x in xs[:-1]:
            total += x.shape[axis]
            self.bounds.append(total)
        return get_array_module(xs[0]).concatenate(xs, axis=axis)

    # y = [x1 | x2 | ...] along axis  =>  dx_k = the slice of dout where x_k was placed
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        return tuple(get_array_module(dout).split(dout, self.bounds, axis=self.axis))


class Stack(Function):
    def forward(self, *xs: Array, axis: int) -> Array:
        self.axis = axis
        return get_array_module(xs[0]).stack(xs, axis=axis)

    # y[..., k, ...] = x_k  =>  dx_k = dout[..., k, ...]
    def backward(self, dout: Array) -> tuple[Array | None, ...]:
        return tuple(get_array_module(dout).moveaxis(dout, self.axis, 0))


class Clone(Function):
    def forward(self, x: Array) -> Array:
        return x.copy()  # C order, whatever x's layout

    # y = a copy of x  =>  dx = dout
    def backward(self, dout: Array) -> tuple[Array]:
        return (dout,)


class BroadcastTo(Function):
    def forward(self, x: Array, shape: tuple[int, ...]) -> Array:
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    # y = x copied along the broadcast axes  =>  dx = dout summed over them
    def backward(self, dout: Array) -> tuple[Array]:
        return (unbroadcast(dout, self.in_shape),)


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    shape = tuple(int(n) for n in shape)
    known = 1
    for n in shape:
        known *= n if n != -1 else 1
    if shape.count(-1) > 1 or (-1 not in shape and known != x.numel()) or (-1 in shape and (known == 0 or x.numel() % known)):
        raise ValueError(f"reshape: cannot view a tensor of shape {x.shape} ({x.numel()} elements) as {shape}")
    return Reshape.apply(x, shape=shape)


def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Drop the size-1 dims: all of them, or those of dim (an int or a tuple) that have size 1
    (a dim of another size stays, as in PyTorch)."""
    dims = normalize_axes("squeeze", dim, input.ndim)
    return reshape(input, [n for i, n in enumerate(input.shape) if not (i in dims and n == 1)])


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """A new dim of size 1 at position dim (-1: last) of the result."""
    (axis,) = normalize_axes("unsqueeze", dim, input.ndim + 1)
    return reshape(input, input.shape[:axis] + (1,) + input.shape[axis:])


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Dims start_dim..end_dim (both included) merged into one; a 0-d tensor becomes (1,)."""
    if input.ndim == 0:
        return reshape(input, (1,))
    (start,), (end,) = normalize_axes("flatten", start_dim, input.ndim), normalize_axes("flatten", end_dim, input.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {input.shape})")
    return reshape(input, input.shape[:start] + (-1,) + input.shape[end + 1 :])


def permute(x: Tensor, axes: Sequence[int]) -> Tensor:
    n = x.ndim
    if any(not -n <= int(a) < n for a in axes) or sorted(int(a) % n for a in axes) != list(range(n)):
        raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Permute.apply(x, axes=tuple(int(a) % n for a in axes))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permute(x, axes)


def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index] with slices, ints, None, Ellipsis and integer or boolean index arrays (or Tensors).

    An integer index outside its axis raises IndexError, as in NumPy, for indices given as lists
    (checked on the host before they move to the device). CuPy wraps an out-of-bounds index
    around instead, and checking an index array already on a GPU would make the CPU wait for
    it, so there such an index reads a wrapped element; the strict test backend raises."""
    index = as_index("getitem", x, index)
    try:
        return GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None


def as_index(op: str, x: Tensor, index: Any) -> Any:
    """An index into x as the array module takes it: Tensors become their arrays, lists arrays
    on x's device, after a bounds check on the host."""
    xp = get_array_module(x.data)
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for p in parts:
        if isinstance(p, Tensor):
            check_same_device(op, (x, p))
            p = p.data
        elif isinstance(p, list):
            p = np.asarray(p)
        converted.append(p)
    bad = out_of_bounds(x.shape, converted)
    if bad:
        raise IndexError(f"{op}: index {bad[0]} is out of bounds for axis {bad[1]} with size {bad[2]} (tensor shape {x.shape})")
    converted = [xp.asarray(c) if isinstance(p, list) else c for p, c in zip(parts, converted)]
    return tuple(converted) if isinstance(index, tuple) else converted[0]


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """As torch.gather: out[i][j][k] = input[i][index[i][j][k]][k] for dim=1 (alike for any dim);
    index (integer, as many dims as input, no larger than input but along dim) gives out's shape.

    That is input indexed with `index` along dim and with aranges along the other dims, so it is
    GetItem, whose backward scatter-adds dout back: an element picked twice gets both gradients."""
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer Tensor, got {getattr(index, 'dtype', type(index).__name__)}")
    check_same_device("gather", (input, index))
    (axis,) = normalize_axes("gather", dim, input.ndim)
    if index.ndim != input.ndim or any(m > n for d, (m, n) in enumerate(zip(index.shape, input.shape)) if d != axis):
        raise ValueError(f"gather: index of shape {index.shape} does not fit input of shape {input.shape} along dim {dim}")
    ids = index.data
    # bounds checked for host arrays only: on a GPU the check would make the CPU wait (see getitem)
    if isinstance(ids, np.ndarray) and ids.size and (ids.min() < 0 or ids.max() >= input.shape[axis]):
        bad = ids[(ids < 0) | (ids >= input.shape[axis])].flat[0]
        raise IndexError(f"gather: index {bad} is out of bounds for dim {dim} with size {input.shape[axis]}")
    xp = get_array_module(input.data)
    grid = [xp.arange(m).reshape((m,) + (1,) * (index.ndim - 1 - d)) for d, m in enumerate(index.shape)]
    grid[axis] = ids  # (B, T, k) along dim, aranges (B, 1, 1), (1, T, 1) ... broadcast along the others
    return GetItem.apply(input, index=tuple(grid))


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """The int64 indices (n, ndim) of the n elements that are not zero, in row-major order; with
    as_tuple, ndim index arrays of shape (n,) instead. No gradient. On a GPU the CPU waits for the
    count n."""
    found = get_array_module(input.data).argwhere(input.data).astype(np.int64)  # (n, ndim)
    if as_tuple:
        return tuple(Tensor._make(found[:, d], False) for d in range(max(input.ndim, 1)))
    return Tensor._make(found, False)


def out_of_bounds(shape: tuple[int, ...], parts: Sequence[Any]) -> tuple[int, int, int] | None:
    """(index, axis, size) of the first entry of a NumPy integer index array outside [-size, size)
    of its axis, or None. Other parts (slices, ints, None, Ellipsis, masks, device arrays) pass."""
    n_axes = sum(p.ndim if getattr(p, "dtype", None) == bool else 0 if p is None or p is Ellipsis else 1 for p in parts)
    axis = 0
    for p in parts:
        if p is Ellipsis:
            axis += len(shape) - n_axes
        elif p is None:
            continue
        elif getattr(p, "dtype", None) == bool:
            axis += p.ndim
        else:
            if isinstance(p, np.ndarray) and p.dtype.kind in "iu" and p.size and axis < len(shape):
                n = shape[axis]
                bad = p[(p < -n) | (p >= n)]
                if bad.size:
                    return int(bad.flat[0]), axis, n
            axis += 1
    return None


def _same_dtype(op: str, tensors: Sequence[Tensor]) -> list[Tensor]:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    if any(t.dtype != tensors[0].dtype for t in tensors):
        raise TypeError(f"{op}: all tensors need one dtype, got {[str(t.dtype) for t in tensors]}")
    return tensors


def concatenate(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """The tensors joined along dim (0 by default): torch.cat."""
    tensors = _same_dtype("concatenate", tensors)
    return Concatenate.apply(*tensors, axis=either("cat", "dim", dim, "axis", axis) or 0)


cat = concat = concatenate


def stack(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """The tensors, all of one shape, stacked along a new dim (0 by default)."""
    tensors = _same_dtype("stack", tensors)
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: all tensors need one shape, got {[t.shape for t in tensors]}")
    return Stack.apply(*tensors, axis=either("stack", "dim", dim, "axis", axis) or 0)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int | None = None, *,
          axis: int | None = None) -> list[Tensor]:
    """PyTorch's split along dim (0 by default): chunks of one size (the last may be smaller), or a list of sizes."""
    axis = either("split", "dim", dim, "axis", axis) or 0
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: chunk size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the length of axis {axis} of {x.shape}")
    lead = (slice(None),) * (axis % x.ndim)
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, lead + (slice(start, start + s),)))
        start += s
    return out


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return BroadcastTo.apply(x, shape=tuple(shape))


def expand(input: Tensor, *sizes: Any) -> Tensor:
    """input broadcast to `sizes` (given as ints or one sequence), as Tensor.expand: -1 keeps a dim's
    size; new dims may be added in front (not as -1)."""
    sizes = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
    lead = len(sizes) - input.ndim
    if lead < 0 or any(s == -1 for s in sizes[:lead]):
        raise ValueError(f"expand: cannot expand shape {input.shape} to {sizes}")
    shape = [n if s == -1 else s for s, n in zip(sizes, (None,) * lead + input.shape)]
    return broadcast_to(input, shape)


def clone(input: Tensor) -> Tensor:
    """A copy of input, in the graph (the gradient flows through to input)."""
    return Clone.apply(input)


def contiguous(input: Tensor) -> Tensor:
    """input itself if its elements lie in row-major order already, else a copy that does (in the graph)."""
    return input if input.data.flags.c_contiguous else Clone.apply(input)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The elements on and below the diagonal (shifted up by `diagonal`) of the last two dims, zeros
    elsewhere: where(mask, input, 0), so the gradient flows to the elements kept."""
    return _triangle(input, diagonal, lower=True)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The elements on and above the diagonal (shifted up by `diagonal`) of the last two dims, zeros elsewhere."""
    return _triangle(input, diagonal, lower=False)


def _triangle(x: Tensor, diagonal: int, lower: bool) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: needs at least 2 dims, got shape {x.shape}")
    xp = get_array_module(x.data)
    n, m = x.shape[-2:]
    below = xp.tri(n, m, diagonal if lower else diagonal - 1, dtype=bool)  # (n, m): j <= i + k
    zero = Tensor._make(xp.zeros((), dtype=x.dtype), False)
    return where(Tensor._make(below if lower else ~below, False), x, zero)
