"""Shared fixtures: every test that takes `device` runs once per backend.

Backends: "cpu" (NumPy), "fakegpu" (the test-only backend that fails wherever CuPy
would, see minigrad/testing/fakegpu.py) and "cuda" when CuPy and a GPU are present.
MINIGRAD_TEST_DEVICES="cpu,cuda" picks a subset.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minigrad
import minigrad.testing.fakegpu  # noqa: F401  (registers the "fakegpu" device)
from minigrad.speed import CHUNK_ELEMENTS

# function_scoped_fixture: @given tests take the `device` and `float64` fixtures, which are
# the same for every example, so running them once per test (not per example) is right.
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("default", max_examples=12, deadline=None, suppress_health_check=_SUPPRESS, derandomize=True)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_wanted = os.environ.get("MINIGRAD_TEST_DEVICES")
DEVICES = [d for d in minigrad.available_devices() if _wanted is None or d in _wanted.split(",")]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[d for d in DEVICES if d != "cpu"] or [pytest.param("none", marks=pytest.mark.skip("no device"))])
def gpu_device(request: pytest.FixtureRequest) -> str:
    """Each device but the CPU: fakegpu, and cuda when present."""
    return request.param


@pytest.fixture
def float64():
    """Run the test with float64 as the default dtype (gradient checks need it)."""
    prev = minigrad.get_default_dtype()
    minigrad.set_default_dtype(np.float64)
    yield
    minigrad.set_default_dtype(prev)


@pytest.fixture(autouse=True)
def _seed():
    minigrad.manual_seed(0)
    yield


@pytest.fixture
def small_chunks():
    """Cut elementwise chains (minigrad.speed.chunks) into 7-element pieces on every device,
    so that a test crosses piece boundaries with small arrays."""
    prev = dict(CHUNK_ELEMENTS)
    CHUNK_ELEMENTS.update({d: 7 for d in DEVICES})
    yield
    CHUNK_ELEMENTS.clear()
    CHUNK_ELEMENTS.update(prev)
