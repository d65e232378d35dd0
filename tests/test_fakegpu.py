"""The strict test backend: each rule that makes fakegpu fail where CuPy would fail or differ, proven here.

The rules come from minigrad/testing/cupy_api.json, written from an installed CuPy by
`python tools/cupy_api.py`; the last test checks that file against CuPy when CuPy is installed.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import need

from minigrad.testing import fakegpu
from minigrad.testing.fakegpu import CUPY, FakeGPUArray, xp


def arr(values, dtype=np.float32):
    return xp.asarray(np.asarray(values, dtype=dtype))


def test_data_file_records_the_cupy_version():
    assert fakegpu.API["cupy_version"] and fakegpu.API["made_by"] == "python tools/cupy_api.py"
    assert "add" in fakegpu.API["cupy"] and "sum" in fakegpu.API["ndarray"]["methods"]


@pytest.mark.parametrize("name", ["insert", "errstate", "geomspace", "block", "memmap"])
def test_refuses_numpy_names_cupy_lacks(name):
    assert hasattr(np, name)
    with pytest.raises(AttributeError, match=f"{CUPY} has no cupy.{name}"):
        getattr(xp, name)


def test_refuses_names_missing_from_cupy_submodules():
    assert hasattr(np.random, "Philox") and hasattr(xp.random, "default_rng")
    with pytest.raises(AttributeError, match="has no cupy.random.Philox"):
        xp.random.Philox


@pytest.mark.parametrize(
    "call",
    [
        lambda a: xp.sum(a, where=a > 0),  # NumPy's reductions take where=, CuPy's do not
        lambda a: a.sum(where=a > 0),
        lambda a: xp.exp(a, where=a > 0),  # neither do CuPy's ufuncs
        lambda a: xp.zeros(3, like=a),
        lambda a: a.max(initial=0.0),
    ],
    ids=["xp.sum(where)", "a.sum(where)", "xp.exp(where)", "zeros(like)", "a.max(initial)"],
)
def test_refuses_keywords_cupy_lacks(call):
    a = arr([1.0, -2.0, 3.0])
    with pytest.raises(TypeError, match=f"in {CUPY} takes no keyword argument"):
        call(a)


def test_refuses_extra_positional_arguments():
    a = arr([1.0, 2.0])
    with pytest.raises(TypeError, match="takes at most 1 positional"):
        xp.flatnonzero(a, 0)


@pytest.mark.parametrize("name", ["resize", "setflags", "ctypes"])
def test_refuses_array_attributes_cupy_lacks(name):
    a = arr([1.0, 2.0])
    assert hasattr(np.ones(2), name)
    with pytest.raises(AttributeError, match="ndarray has no such attribute"):
        getattr(a, name)


@pytest.mark.parametrize("name", ["normal", "choice", "permutation", "bit_generator"])
def test_refuses_generator_methods_cupy_lacks(name):
    rng = xp.random.default_rng(0)
    assert isinstance(rng.standard_normal((2,), dtype=np.float32), FakeGPUArray)
    with pytest.raises(AttributeError, match="random.Generator has no attribute"):
        getattr(rng, name)


@pytest.mark.parametrize(
    "ufunc, method",
    [("maximum", "reduce"), ("multiply", "reduceat"), ("exp", "accumulate"), ("multiply", "at"), ("logical_and", "reduce")],
)
def test_refuses_ufunc_methods_cupy_does_not_support(ufunc, method):
    assert hasattr(getattr(np, ufunc), method)
    with pytest.raises(NotImplementedError, match=f"{ufunc}.{method} is not supported"):
        getattr(getattr(xp, ufunc), method)


def test_allows_the_ufunc_methods_cupy_supports():
    a = arr([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(xp.add.reduce(a, axis=0).get(), [4.0, 6.0])
    np.testing.assert_array_equal(xp.multiply.accumulate(a, axis=1).get(), [[1.0, 2.0], [3.0, 12.0]])
    b = xp.zeros(3, dtype=np.float32)
    xp.maximum.at(b, xp.asarray(np.array([0, 0, 2])), arr([5.0, 7.0, 1.0]))
    np.testing.assert_array_equal(b.get(), [7.0, 0.0, 1.0])


def test_ufunc_at_takes_only_the_dtypes_cupy_takes():
    counts = xp.zeros(3, dtype=np.int64)
    with pytest.raises(TypeError, match="add.at in .* takes only int32"):
        xp.add.at(counts, xp.asarray(np.array([0, 2])), 1)
    ok = xp.zeros(3, dtype=np.int32)
    xp.add.at(ok, xp.asarray(np.array([0, 2, 2])), 1)
    np.testing.assert_array_equal(ok.get(), [1, 0, 2])
    with pytest.raises(IndexError, match="wrap it around"):
        xp.add.at(ok, xp.asarray(np.array([3])), 1)


@pytest.mark.parametrize(
    "index",
    [lambda: xp.asarray(np.array([0, 3])), lambda: xp.asarray(np.array([-4])), lambda: (0, xp.asarray(np.array([1, 5])))],
    ids=["too large", "too negative", "second axis"],
)
def test_out_of_bounds_integer_index_raises_where_cupy_would_wrap(index):
    a = xp.zeros((3, 3), dtype=np.float32)
    with pytest.raises(IndexError, match="would wrap it around silently"):
        a[index()]
    with pytest.raises(IndexError, match="would wrap it around silently"):
        a[index()] = 1.0


def test_in_bounds_negative_indices_work():
    a = arr([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(a[xp.asarray(np.array([-1, -3]))].get(), [3.0, 1.0])


def test_add_reduceat_runs_cupys_cumulative_sum_algorithm():
    # float32: 1e8 + 1 == 1e8, so differences of the running total lose the small segment
    x = np.array([1e8, 1.0, 1.0, 1.0], dtype=np.float32)
    starts = np.array([0, 1])
    np.testing.assert_array_equal(np.add.reduceat(x, starts), [1e8, 3.0])  # NumPy sums each segment alone
    np.testing.assert_array_equal(xp.add.reduceat(xp.asarray(x), xp.asarray(starts)).get(), [1e8, 0.0])  # CuPy
    # and it agrees with NumPy where no precision is lost, including empty segments (indices[i] >= indices[i+1])
    y = np.arange(12.0).reshape(6, 2)
    idx = np.array([0, 2, 2, 5])
    np.testing.assert_array_equal(xp.add.reduceat(xp.asarray(y), xp.asarray(idx), axis=0).get(), np.add.reduceat(y, idx, axis=0))


def test_record_counts_synchronisations_and_ops():
    a = arr([1.0, 0.0, 3.0])
    with fakegpu.record() as rec:
        b = xp.exp(a) * 2 + a  # three ops, no sync
        s = b.sum()
    assert rec.syncs == [] and sum(rec.ops.values()) == 4
    reads = [
        lambda: float(s), lambda: int(s), lambda: bool(s > 0), lambda: s.item(), lambda: a.get(), lambda: a.tolist(),
        lambda: xp.flatnonzero(a), lambda: xp.nonzero(a), lambda: a[a > 0], lambda: xp.asnumpy(a),
        lambda: a.__setitem__(a > 0, 1.0),
    ]
    for read in reads:
        with fakegpu.record() as rec:
            read()
        assert len(rec.syncs) == 1, rec.syncs
        assert "test_fakegpu.py" in rec.syncs[0]  # says where the sync was asked for


def cupy_api_tool() -> ModuleType:
    """tools/cupy_api.py, the maintainer's tool that writes the data file: outside the package."""
    path = Path(__file__).resolve().parents[1] / "tools" / "cupy_api.py"
    spec = importlib.util.spec_from_file_location("cupy_api", path)
    assert spec is not None and spec.loader is not None, f"no {path}"
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_tool_writes_the_file_fakegpu_reads():
    assert cupy_api_tool().OUT == Path(fakegpu.__file__).resolve().with_name("cupy_api.json")


def test_data_file_matches_installed_cupy():
    cupy = need("cupy")
    cupy_api = cupy_api_tool()
    if cupy.__version__ != fakegpu.API["cupy_version"]:
        pytest.skip(f"installed CuPy {cupy.__version__}, data file from {fakegpu.API['cupy_version']}")
    fresh = json.loads(json.dumps({"cupy": cupy_api.describe_namespace(cupy), "ndarray": cupy_api.describe_class(cupy.ndarray)}))
    assert fresh["cupy"] == fakegpu.API["cupy"]
    assert fresh["ndarray"] == fakegpu.API["ndarray"]
