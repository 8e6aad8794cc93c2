"""Shared fixtures: seeded RNG, and an `isa` fixture that runs a test once per kernel ISA."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


def _isas() -> list[str]:
    try:
        import fastcnn

        return fastcnn.available_isas()
    except ImportError:  # the compiled core is missing: reference-only tests still run
        return []


@pytest.fixture(params=_isas())
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test with each ISA's micro-kernels (generic, avx2, avx512 where available)."""
    import fastcnn

    old = fastcnn.get_isa()
    fastcnn.set_isa(request.param)
    try:
        yield request.param
    finally:
        fastcnn.set_isa(old)


def _conv_algorithms() -> list[str]:
    try:
        import fastcnn

        lists = fastcnn.conv_algorithms().values()
    except ImportError:  # the compiled core is missing
        return []
    return ["default", *dict.fromkeys(name for names in lists for name in names)]


@pytest.fixture(params=_conv_algorithms())
def conv_algorithm(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test with the default choice of convolution algorithm, then with each
    algorithm of any pass's list pinned (fastcnn.conv_algorithm: it runs wherever it can
    compute the call), Winograd allowed on any number of images (by default a call with few
    output tiles takes a direct form)."""
    import fastcnn
    from fastcnn import _config

    pinned = None if request.param == "default" else request.param
    with (
        fastcnn.winograd(True),
        _config.winograd_min_tiles(0, 0),
        fastcnn.conv_algorithm(pinned),
    ):
        yield request.param


@pytest.fixture
def any_size_threads() -> Iterator[None]:
    """Lets every parallel region with two or more work items use all the threads whatever
    its size (by default a call too small to pay for a second thread runs on one), so the
    thread-count tests exercise the multithreaded paths on small shapes."""
    from fastcnn import _config

    with _config.min_thread_work(0):
        yield
