"""fastcnn.gemm against numpy: shapes around the micro-tiles, transposes, alpha/beta, out,
strided views, bad arguments, and bitwise equality between thread counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastcnn
from fastcnn import _validation as V
from fastcnn.reference import functional as reference

DTYPES = [np.float32, np.float64]


def _tol(dtype: type, k: int) -> float:
    # Absolute tolerance for standard-normal operands: grows like sqrt(K) with the reduction.
    eps = 2e-6 if dtype == np.float32 else 4e-15
    return eps * 8 * max(1.0, np.sqrt(k))


def _check(a, b, out, alpha=1.0, beta=0.0, c0=None, trans_a=False, trans_b=False):
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    ref = alpha * (op_a.astype(np.float64) @ op_b.astype(np.float64))
    if c0 is not None:
        ref += beta * c0.astype(np.float64)
    k = op_a.shape[1]
    np.testing.assert_allclose(out, ref, rtol=0, atol=_tol(a.dtype.type, k))


# Sizes around every micro-tile in use (MR in {4, 6, 12}, NR in {4, 8, 16, 32}) plus primes.
SIZES = [1, 3, 5, 6, 7, 11, 12, 13, 16, 17, 31, 33, 67]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sizes_around_micro_tiles(isa, dtype, rng):
    for m, n in itertools.product(SIZES, [1, 4, 7, 8, 9, 15, 16, 17, 32, 33, 50]):
        k = int(rng.integers(1, 40))
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        _check(a, b, fastcnn.gemm(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k",
    [
        (0, 5, 3),
        (5, 0, 3),
        (5, 3, 0),
        (0, 0, 0),
        (1, 1, 1),
        (1, 200, 1),
        (300, 1, 7),
        (2, 3, 5000),  # K >> M, N: split-K
        (9, 16, 4099),
        (1000, 16, 9),
        (513, 257, 300),  # K blocks: 256 + remainder
        (131, 97, 600),
        (37, 1100, 20),  # N past one NC panel in the narrow config
    ],
)
def test_shapes_transposes_alpha_beta(isa, dtype, m, n, k, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    for ta, tb in itertools.product([False, True], repeat=2):
        aa = np.ascontiguousarray(a.T) if ta else a
        bb = np.ascontiguousarray(b.T) if tb else b
        out = c0.copy()
        res = fastcnn.gemm(aa, bb, trans_a=ta, trans_b=tb, alpha=-1.5, beta=0.25, out=out)
        assert res is out
        _check(aa, bb, out, alpha=-1.5, beta=0.25, c0=c0, trans_a=ta, trans_b=tb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_ignores_nan_in_out(dtype, rng):
    a = rng.standard_normal((20, 30)).astype(dtype)
    b = rng.standard_normal((30, 40)).astype(dtype)
    out = np.full((20, 40), np.nan, dtype=dtype)
    fastcnn.gemm(a, b, out=out, beta=0.0)
    _check(a, b, out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_zero_and_k_zero_scale_out(dtype, rng):
    a = rng.standard_normal((7, 5)).astype(dtype)
    b = rng.standard_normal((5, 9)).astype(dtype)
    c0 = rng.standard_normal((7, 9)).astype(dtype)
    out = c0.copy()
    fastcnn.gemm(a, b, alpha=0.0, beta=3.0, out=out)
    np.testing.assert_array_equal(out, (3.0 * c0).astype(dtype))
    out = np.full((7, 9), np.nan, dtype=dtype)
    fastcnn.gemm(a[:, :0], b[:0], out=out)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views_and_submatrices(isa, dtype, rng):
    big_a = rng.standard_normal((90, 70)).astype(dtype)
    big_b = rng.standard_normal((80, 110)).astype(dtype)
    views = [
        (big_a[::2, 1:40:3], big_b[5:18, ::4]),  # non-unit strides on both axes
        (big_a[10:50, 5:25], big_b[20:40, 30:95]),  # plain sub-matrices
        (big_a[::-3, ::-2][:13], big_b[:35, ::-5]),  # negative strides
        (np.asfortranarray(big_a[:40, :30]), np.asfortranarray(big_b[:30, :50])),
    ]
    for a, b in views:
        _check(a, b, fastcnn.gemm(a, b))
    # out may be a row-strided view with unit inner stride
    base = np.zeros((20, 60), dtype=dtype)
    a, b = big_a[:10, :7], big_b[:7, :25]
    out = base[::2, 3:28]
    fastcnn.gemm(a, b, out=out)
    _check(a, b, out)
    assert np.all(base[1::2] == 0) and np.all(base[:, :3] == 0) and np.all(base[:, 28:] == 0)


def test_byte_misaligned_views_are_copied(rng):
    raw = np.zeros(4 * 6 * 4 + 1, dtype=np.uint8)[1:].view(np.float32).reshape(4, 6)
    raw[...] = rng.standard_normal((4, 6))
    b = rng.standard_normal((6, 3)).astype(np.float32)
    _check(raw, b, fastcnn.gemm(raw, b))


# Small products (a few rows of micro-tiles: 8- and 12-row tiles, up to 4 rows of them) read
# both operands in place: B's rows through their stride with masked edge columns, or, for a B
# with contiguous columns, C^T = B^T A^T. Rows 1..2*MR+3, columns around NR, K around KC.
SMALL_M = [1, 2, 3, 5, 7, 8, 9, 11, 12, 13, 16, 17, 24, 25, 31, 33, 48, 49]
SMALL_N = [1, 2, 15, 16, 17, 31, 32, 33, 50]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["rows", "columns", "strided"])
def test_small_products_in_place(isa, dtype, layout, rng):
    for m, n in itertools.product(SMALL_M, SMALL_N):
        k = int(rng.choice([1, 3, 17, 255, 256, 257, 784]))
        a = rng.standard_normal((m, k)).astype(dtype)
        if layout == "rows":  # row-major B inside a wider array: row stride > n
            b = rng.standard_normal((k, n + 5)).astype(dtype)[:, 2 : 2 + n]
        elif layout == "columns":  # B = W^T, as in affine_backward's dx
            b = rng.standard_normal((n, k)).astype(dtype).T
        else:  # neither axis contiguous: the general path
            b = rng.standard_normal((2 * k, 2 * n)).astype(dtype)[::2, ::2]
        c0 = rng.standard_normal((m, n)).astype(dtype)
        out = c0.copy()
        fastcnn.gemm(a, b, alpha=0.5, beta=-2.0, out=out)
        _check(a, b, out, alpha=0.5, beta=-2.0, c0=c0)
        out = np.full((m, n), np.nan, dtype=dtype)  # beta = 0 never reads out
        fastcnn.gemm(a, b, out=out)
        _check(a, b, out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_products_odd_strides(isa, dtype, rng):
    a = rng.standard_normal((3, 40)).astype(dtype)
    b = rng.standard_normal((40, 21)).astype(dtype)
    cases = [
        (a, np.broadcast_to(b[:1], b.shape)),  # B rows of stride 0
        (np.broadcast_to(a[:1], a.shape), b),  # A rows of stride 0
        (a[::-1], b[::-1]),  # negative row strides
        (a[:, ::-1], b[::-1, ::-1].T.copy().T),  # B with contiguous columns, A reversed
        (np.asfortranarray(a), b),  # column-major A
    ]
    for x, y in cases:
        _check(x, y, fastcnn.gemm(x, y))


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,trans_b", [(3, 50, 784, False), (1, 300, 33, False),
                                           (3, 784, 50, True), (24, 200, 100, False)])  # fmt: skip
def test_small_products_bitwise_identical_for_any_thread_count(dtype, m, n, k, trans_b, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    results = []
    for nt in (1, 2, 3):
        with fastcnn.threads(nt):
            results.append(fastcnn.gemm(a, b, trans_b=trans_b))
    _check(a, b, results[0], trans_b=trans_b)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(300, 200, 700), (1000, 16, 9), (9, 16, 5000), (50, 300, 40)])
def test_bitwise_identical_for_any_thread_count(dtype, m, n, k, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    results = []
    for nt in (1, 2, 3):
        with fastcnn.threads(nt):
            results.append(fastcnn.gemm(a, b))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_bad_arguments_name_what_is_wrong(rng):
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match=r"gemm: a must be a real .* got dtype complex64"):
        fastcnn.gemm(a.astype(np.complex64), b)
    with pytest.raises(TypeError, match="gemm: b could not be converted"):
        fastcnn.gemm(a, [[1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"a must be 2-D .* got 3-D a.shape=\(3, 4, 1\)"):
        fastcnn.gemm(a[..., None], b)
    with pytest.raises(ValueError, match=r"inner dimensions differ.*\(3, 4\).*\(5, 4\)"):
        fastcnn.gemm(a, b, trans_b=True)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\) but expected \(3, 5\)"):
        fastcnn.gemm(a, b, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match="out.dtype=float64 but the product of a and b is float32"):
        fastcnn.gemm(a, b, out=np.empty((3, 5), np.float64))
    with pytest.raises(TypeError, match="out must be a numpy array"):
        fastcnn.gemm(a, b, out=[[0.0] * 5] * 3)
    for flag in ("no", 1, None):
        with pytest.raises(TypeError, match="trans_a must be a bool"):
            fastcnn.gemm(a, b, trans_a=flag)
        with pytest.raises(TypeError, match="trans_b must be a bool"):
            fastcnn.gemm(a, b, trans_b=flag)
    for value in ("0.5", None, 1j):
        with pytest.raises(TypeError, match="alpha must be a real number"):
            fastcnn.gemm(a, b, alpha=value)
        with pytest.raises(TypeError, match="beta must be a real number"):
            fastcnn.gemm(a, b, beta=value)
    with pytest.raises(ValueError, match="alpha must be finite"):
        fastcnn.gemm(a, b, alpha=np.inf)
    with pytest.raises(ValueError, match="overlap"):
        sq = np.ones((4, 4), np.float32)
        fastcnn.gemm(sq, sq, out=sq)
    ro = np.empty((3, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastcnn.gemm(a, b, out=ro)


def test_operands_numpy_would_take(rng):
    """Mixed dtypes promote, other real dtypes and byte orders convert, a strided out is
    written in place: as the reference (numpy's matmul) computes."""
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5))
    for x, y in [
        (a, b),
        (a.astype(">f4"), b.astype(">f8")),
        (a.astype(np.float16), b.astype(np.float32)),
        ((a * 10).astype(np.int8), b),
        (a > 0, (b * 3).astype(np.int64)),
    ]:
        got = fastcnn.gemm(x, y, alpha=np.float32(2.0), beta=np.int64(1))
        want = reference.gemm(x, y, alpha=2.0)
        assert got.dtype == want.dtype == np.result_type(V.compute_dtype(x.dtype), y.dtype)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    out = np.ones((5, 3), np.float64).T
    got = fastcnn.gemm(a, b, alpha=0.5, beta=2.0, out=out)
    assert got is out
    np.testing.assert_allclose(out, 0.5 * (a.astype(np.float64) @ b) + 2.0, rtol=1e-12)
    assert fastcnn.gemm(np.ones((0, 4)), b).shape == (0, 5)
    np.testing.assert_array_equal(fastcnn.gemm(np.ones((2, 0)), np.ones((0, 3))), 0)
