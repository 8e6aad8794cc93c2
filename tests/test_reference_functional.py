"""Tests of fastcnn.reference.functional against naive loops and finite differences.

Covers forward values, exact gradients, dtype promotion, non-contiguous inputs, argument errors
and the dropout RNG definition. Speed is not tested here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import naive
from fastcnn.reference import functional as F
from naive import numerical_gradient, rel_error

# ---------------------------------------------------------------------------------------------
# Shape sweeps (deterministic)
# ---------------------------------------------------------------------------------------------


def _conv_cases(count: int, seed: int) -> list[tuple]:
    """(x_shape, w_shape, stride, pad) with N 1-3, C 1-5, H,W 1-9, R,S 1-4, stride 1-3, pad 0-2.

    Square draws use the int form of stride/pad, the others (h, w) pairs."""
    rng = np.random.default_rng(seed)
    cases = [
        ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0),
        ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
        ((1, 2, 9, 4), (3, 2, 4, 1), (3, 1), (0, 2)),
        ((3, 5, 2, 7), (2, 5, 2, 4), (1, 3), (2, 1)),
        ((1, 1, 4, 4), (1, 1, 4, 4), 1, 0),  # kernel covers the input exactly
        ((2, 2, 1, 9), (2, 2, 1, 3), (1, 2), 0),  # H = 1
        ((1, 3, 3, 3), (2, 3, 4, 4), 2, 2),  # kernel larger than the input, padding helps
    ]
    while len(cases) < count:
        n, c, k = (int(v) for v in rng.integers(1, [4, 6, 5]))
        h, w, r, s, sh, sw = (int(v) for v in rng.integers(1, [10, 10, 5, 5, 4, 4]))
        ph, pw = (int(v) for v in rng.integers(0, 3, 2))
        if rng.random() < 0.3:
            s, sw, pw = r, sh, ph
            stride, pad = sh, ph
        else:
            stride, pad = (sh, sw), (ph, pw)
        if h + 2 * ph >= r and w + 2 * pw >= s:
            cases.append(((n, c, h, w), (k, c, r, s), stride, pad))
    return cases


def _pool_cases(count: int, seed: int) -> list[tuple]:
    """(x_shape, window, stride, pad) with 0 <= pad < window and a non-empty output."""
    rng = np.random.default_rng(seed)
    cases = [
        ((1, 1, 1, 1), 1, 1, 0),
        ((2, 3, 6, 6), 2, 2, 0),
        ((1, 2, 5, 7), 3, 2, 1),
        ((2, 1, 9, 4), (4, 2), (3, 1), (2, 1)),
        ((1, 3, 4, 4), 3, 1, 2),  # overlapping windows with pad = window - 1
    ]
    while len(cases) < count:
        n, c = (int(v) for v in rng.integers(1, [4, 6]))
        h, w, r, s, sh, sw = (int(v) for v in rng.integers(1, [10, 10, 5, 5, 4, 4]))
        ph, pw = int(rng.integers(0, min(r, 3))), int(rng.integers(0, min(s, 3)))
        if rng.random() < 0.3:
            s, sw, pw = r, sh, ph
            window, stride, pad = r, sh, ph
        else:
            window, stride, pad = (r, s), (sh, sw), (ph, pw)
        if h + 2 * ph >= r and w + 2 * pw >= s:
            cases.append(((n, c, h, w), window, stride, pad))
    return cases


CONV_CASES = _conv_cases(80, seed=1)
POOL_CASES = _pool_cases(60, seed=2)


def _randn(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _distinct(rng: np.random.Generator, shape) -> np.ndarray:
    """Values at least 0.1 apart, so max pooling has no near-ties under finite differences."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.1 - size * 0.05).reshape(shape)


def _assert_close(actual, expected, dtype=np.float64, scale_tol=None):
    tol = scale_tol if scale_tol is not None else (1e-12 if dtype == np.float64 else 2e-5)
    assert rel_error(actual, expected) < tol, rel_error(actual, expected)


def _check_grad(f, x: np.ndarray, analytic: np.ndarray, tol: float = 1e-6) -> None:
    num = numerical_gradient(f, x)
    assert analytic.shape == num.shape
    err = rel_error(analytic, num)
    assert err < tol, f"relative error {err:.2e}"


def test_importing_the_reference_never_loads_the_compiled_core():
    code = (
        "import sys, fastcnn.reference, fastcnn._validation; "
        "assert not [m for m in sys.modules if m.startswith('fastcnn._core')]"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, env=env)


# ---------------------------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES[:16])
def test_im2col_matches_naive_layout(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(10)
    x = _randn(rng, x_shape)
    r, s = w_shape[2:]
    col = F.im2col(x, r, s, stride, pad)
    np.testing.assert_array_equal(col, naive.im2col(x, r, s, stride, pad))


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES[:16])
def test_col2im_is_the_adjoint_of_im2col(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(11)
    r, s = w_shape[2:]
    x = _randn(rng, x_shape)
    col = F.im2col(x, r, s, stride, pad)
    c = _randn(rng, col.shape)
    back = F.col2im(c, x_shape, r, s, stride, pad)
    assert back.shape == x_shape
    assert np.isclose(np.vdot(col, c), np.vdot(x, back), rtol=1e-12, atol=1e-12)


def test_col2im_adds_overlapping_windows():
    x_shape = (1, 1, 3, 3)
    col = np.ones((4, 4))  # 2x2 windows, stride 1: every window adds 1 to each cell it covers
    np.testing.assert_array_equal(
        F.col2im(col, x_shape, 2, 2)[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    )


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv2d_forward_matches_naive(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(20)
    x, w, b = _randn(rng, x_shape), _randn(rng, w_shape), _randn(rng, w_shape[0])
    y = F.conv2d_forward(x, w, b, stride, pad)
    _assert_close(y, naive.conv2d(x, w, b, stride, pad))
    assert y.dtype == np.float64 and y.flags.c_contiguous
    _assert_close(F.conv2d_forward(x, w, None, stride, pad), naive.conv2d(x, w, None, stride, pad))


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES[::2])
def test_conv2d_backward_matches_naive(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(21)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    dy = _randn(rng, F.conv2d_forward(x, w, None, stride, pad).shape)
    dx, dw, db = F.conv2d_backward(dy, x, w, stride, pad)
    ndx, ndw, ndb = naive.conv2d_backward(dy, x, w, stride, pad)
    _assert_close(dx, ndx)
    _assert_close(dw, ndw)
    _assert_close(db, ndb)
    _assert_close(db, dy.sum((0, 2, 3)))
    dx2, dw2, db2 = F.conv2d_backward(dy, x, w, stride, pad, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pad",
    [
        ((2, 2, 4, 5), (3, 2, 2, 3), (1, 2), (1, 0)),
        ((1, 3, 5, 4), (2, 3, 3, 3), 2, 1),
        ((2, 1, 3, 3), (2, 1, 1, 1), 1, 0),
    ],
)
def test_conv2d_backward_numerical(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(22)
    x, w, b = _randn(rng, x_shape), _randn(rng, w_shape), _randn(rng, w_shape[0])
    dy = _randn(rng, F.conv2d_forward(x, w, b, stride, pad).shape)

    def loss() -> float:
        return float(np.sum(F.conv2d_forward(x, w, b, stride, pad) * dy))

    dx, dw, db = F.conv2d_backward(dy, x, w, stride, pad)
    _check_grad(loss, x, dx)
    _check_grad(loss, w, dw)
    _check_grad(loss, b, db)


@pytest.mark.parametrize(
    "xd, wd, bd, expected",
    [
        (np.float32, np.float32, np.float32, np.float32),
        (np.float32, np.float32, None, np.float32),
        (np.float32, np.float64, None, np.float64),
        (np.float64, np.float32, np.float32, np.float64),
        (np.float32, np.float32, np.float64, np.float64),
    ],
)
def test_conv2d_dtype_promotion(xd, wd, bd, expected):
    rng = np.random.default_rng(23)
    x, w = _randn(rng, (2, 3, 6, 5), xd), _randn(rng, (4, 3, 3, 2), wd)
    b = None if bd is None else _randn(rng, 4, bd)
    y = F.conv2d_forward(x, w, b, (2, 1), 1)
    assert y.dtype == expected
    ref = naive.conv2d(x, w, b, (2, 1), 1)
    _assert_close(y, ref, expected)
    dy = _randn(rng, y.shape, xd)
    dx, dw, db = F.conv2d_backward(dy, x, w, (2, 1), 1)
    grad_dtype = np.result_type(xd, wd)
    assert dx.dtype == dw.dtype == db.dtype == grad_dtype
    for got, want in zip((dx, dw, db), naive.conv2d_backward(dy, x, w, (2, 1), 1)):
        _assert_close(got, want, grad_dtype)


def test_conv2d_non_contiguous_inputs():
    rng = np.random.default_rng(24)
    x = _randn(rng, (2, 6, 9, 3)).transpose(0, 3, 1, 2)[:, :, ::2]  # (2, 3, 5, 6), strided
    w = _randn(rng, (3, 2, 3, 5))[:, :, :, ::2].transpose(2, 0, 1, 3)[:, :, :2]  # (3,3,2,3)
    w = np.ascontiguousarray(w).transpose(0, 1, 3, 2)  # (3, 3, 3, 2) F-ish view
    b = _randn(rng, 6)[::2]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous and not b.flags.c_contiguous
    xc, wc, bc = (np.ascontiguousarray(a) for a in (x, w, b))
    y = F.conv2d_forward(x, w, b, 1, (1, 0))
    np.testing.assert_allclose(y, F.conv2d_forward(xc, wc, bc, 1, (1, 0)), rtol=1e-13)
    dy = _randn(rng, (2, y.shape[2], y.shape[3], 3)).transpose(0, 3, 1, 2)
    for got, want in zip(
        F.conv2d_backward(dy, x, w, 1, (1, 0)),
        F.conv2d_backward(np.ascontiguousarray(dy), xc, wc, 1, (1, 0)),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_accepts_pairs_as_lists_and_numpy_ints():
    rng = np.random.default_rng(25)
    x, w = _randn(rng, (1, 2, 7, 6)), _randn(rng, (2, 2, 3, 2))
    y1 = F.conv2d_forward(x, w, None, [np.int64(2), 1], np.int32(1))
    y2 = F.conv2d_forward(x, w, None, (2, 1), (1, 1))
    np.testing.assert_array_equal(y1, y2)


def test_conv2d_zero_batch():
    x, w = np.zeros((0, 2, 5, 5)), np.ones((3, 2, 3, 3))
    y = F.conv2d_forward(x, w, np.ones(3))
    assert y.shape == (0, 3, 3, 3)
    dx, dw, db = F.conv2d_backward(np.zeros((0, 3, 3, 3)), x, w)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape, window, stride, pad", POOL_CASES)
def test_max_pool2d_matches_naive(x_shape, window, stride, pad):
    rng = np.random.default_rng(30)
    x = _randn(rng, x_shape)
    y, arg = F.max_pool2d_forward(x, window, stride, pad)
    ny, narg = naive.max_pool2d(x, window, stride, pad)
    np.testing.assert_array_equal(y, ny)
    np.testing.assert_array_equal(arg, narg)
    assert arg.dtype == np.int64 and arg.shape == y.shape
    dy = _randn(rng, y.shape)
    dx = F.max_pool2d_backward(dy, arg, x_shape, window, stride, pad)
    _assert_close(dx, naive.max_pool2d_backward(dy, arg, x_shape, window, stride, pad))


@pytest.mark.parametrize("x_shape, window, stride, pad", POOL_CASES)
def test_avg_pool2d_matches_naive(x_shape, window, stride, pad):
    rng = np.random.default_rng(31)
    x = _randn(rng, x_shape)
    y = F.avg_pool2d_forward(x, window, stride, pad)
    _assert_close(y, naive.avg_pool2d(x, window, stride, pad))
    dy = _randn(rng, y.shape)
    dx = F.avg_pool2d_backward(dy, x_shape, window, stride, pad)
    _assert_close(dx, naive.avg_pool2d_backward(dy, x_shape, window, stride, pad))


def test_max_pool2d_ties_pick_first_in_row_major_order():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 0] = x[0, 0, 0, 1] = 5.0  # same max twice in window (0, 0): (0, 1) comes first
    y, arg = F.max_pool2d_forward(x, 2, 2)
    assert y[0, 0, 0, 0] == 5.0 and arg[0, 0, 0, 0] == 1
    np.testing.assert_array_equal(arg[0, 0, :, :], [[1, 0], [0, 0]])  # all-zero windows -> 0
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), arg, x.shape, 2, 2)
    assert dx[0, 0, 0, 1] == 1 and dx[0, 0, 1, 0] == 0


def test_max_pool2d_padding_never_wins():
    x = -np.ones((1, 1, 2, 2)) * np.array([[1.0, 2.0], [3.0, 4.0]])  # all negative
    y, arg = F.max_pool2d_forward(x, 2, 1, 1)
    assert y.shape == (1, 1, 3, 3)
    assert np.all(y < 0)  # padding (-inf) never beats a real element
    np.testing.assert_array_equal(y[0, 0], [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])


def test_max_pool2d_overlapping_windows_accumulate():
    x = np.array([[[[0.0, 9.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    y, arg = F.max_pool2d_forward(x, 2, 1)
    dx = F.max_pool2d_backward(np.ones_like(y), arg, x.shape, 2, 1)
    assert dx[0, 0, 0, 1] == 2.0  # the two top windows both pick the 9


def test_avg_pool2d_counts_padding_in_the_divisor():
    x = np.ones((1, 1, 2, 2))
    y = F.avg_pool2d_forward(x, 2, 2, 1)
    np.testing.assert_array_equal(y[0, 0], [[0.25, 0.25], [0.25, 0.25]])


@pytest.mark.parametrize("window, stride, pad", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 2))])
def test_pool_backward_numerical(window, stride, pad):
    rng = np.random.default_rng(32)
    x = _distinct(rng, (2, 2, 5, 6))
    y, arg = F.max_pool2d_forward(x, window, stride, pad)
    dy = _randn(rng, y.shape)
    _check_grad(
        lambda: float(np.sum(F.max_pool2d_forward(x, window, stride, pad)[0] * dy)),
        x,
        F.max_pool2d_backward(dy, arg, x.shape, window, stride, pad),
    )
    ya = F.avg_pool2d_forward(x, window, stride, pad)
    dya = _randn(rng, ya.shape)
    _check_grad(
        lambda: float(np.sum(F.avg_pool2d_forward(x, window, stride, pad) * dya)),
        x,
        F.avg_pool2d_backward(dya, x.shape, window, stride, pad),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pools_keep_dtype_and_accept_non_contiguous(dtype):
    rng = np.random.default_rng(33)
    x = _randn(rng, (2, 7, 8, 3), dtype).transpose(0, 3, 1, 2)[:, :, ::2]  # (2, 3, 4, 7)
    xc = np.ascontiguousarray(x)
    y, arg = F.max_pool2d_forward(x, (2, 3), (2, 1), (1, 0))
    yc, argc = F.max_pool2d_forward(xc, (2, 3), (2, 1), (1, 0))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(arg, argc)
    dy = _randn(rng, y.shape[::-1], dtype).T  # F-ordered
    dx = F.max_pool2d_backward(dy, arg.T.copy().T, x.shape, (2, 3), (2, 1), (1, 0))
    assert dx.dtype == dtype
    np.testing.assert_array_equal(
        dx, F.max_pool2d_backward(np.ascontiguousarray(dy), argc, x.shape, (2, 3), (2, 1), (1, 0))
    )
    a = F.avg_pool2d_forward(x, 3, 1, 1)
    assert a.dtype == dtype
    np.testing.assert_array_equal(a, F.avg_pool2d_forward(xc, 3, 1, 1))
    assert F.avg_pool2d_backward(np.ones_like(a), x.shape, 3, 1, 1).dtype == dtype


# ---------------------------------------------------------------------------------------------
# Affine and activations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(3, 5), (2, 2, 3, 4), (1, 7), (4, 1, 1, 1)])
def test_affine_forward_backward(x_shape):
    rng = np.random.default_rng(40)
    d = int(np.prod(x_shape[1:]))
    x, w, b = _randn(rng, x_shape), _randn(rng, (d, 3)), _randn(rng, 3)
    y = F.affine_forward(x, w, b)
    _assert_close(y, x.reshape(x_shape[0], d) @ w + b)
    dy = _randn(rng, y.shape)
    dx, dw, db = F.affine_backward(dy, x, w)
    assert dx.shape == x_shape
    _check_grad(lambda: float(np.sum(F.affine_forward(x, w, b) * dy)), x, dx)
    _check_grad(lambda: float(np.sum(F.affine_forward(x, w, b) * dy)), w, dw)
    _check_grad(lambda: float(np.sum(F.affine_forward(x, w, b) * dy)), b, db)


def test_affine_dtypes_and_non_contiguous():
    rng = np.random.default_rng(41)
    x = _randn(rng, (6, 4), np.float32).T  # (4, 6), non-contiguous
    w, b = _randn(rng, (6, 2), np.float32), _randn(rng, 2, np.float64)
    y = F.affine_forward(x, w, b)
    assert y.dtype == np.float64
    _assert_close(y, x.astype(np.float64) @ w + b, np.float32)
    assert F.affine_forward(x, w, b.astype(np.float32)).dtype == np.float32
    dx, dw, db = F.affine_backward(np.ones((4, 2), np.float32), x, w)
    assert dx.dtype == dw.dtype == db.dtype == np.float32


def test_relu():
    rng = np.random.default_rng(42)
    x = _randn(rng, (3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink
    y = F.relu_forward(x)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    dy = _randn(rng, x.shape)
    dx = F.relu_backward(dy, x)
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))
    _check_grad(lambda: float(np.sum(F.relu_forward(x) * dy)), x, dx)
    assert F.relu_forward(x.astype(np.float32)).dtype == np.float32
    assert F.relu_backward(dy.astype(np.float32), x.astype(np.float32)).dtype == np.float32
    assert F.relu_backward(dy.astype(np.float32), x).dtype == np.float64
    np.testing.assert_array_equal(F.relu_forward(x[:, ::2].T), np.maximum(x[:, ::2].T, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_correct(dtype):
    x = np.array([-1e4, -800.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0, 1e4], dtype=dtype)
    y = F.sigmoid_forward(x)  # -W error: any overflow warning fails the test
    assert y.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))
    mid = np.abs(x) <= 50
    np.testing.assert_allclose(
        y[mid],
        1 / (1 + np.exp(-x[mid].astype(np.float64))),
        rtol=1e-6 if dtype == np.float32 else 1e-15,
    )
    assert y[0] == 0 and y[-1] == 1 and y[4] == 0.5


def test_sigmoid_backward_numerical():
    rng = np.random.default_rng(43)
    x = _randn(rng, (4, 5)) * 3
    dy = _randn(rng, x.shape)
    y = F.sigmoid_forward(x)
    dx = F.sigmoid_backward(dy, y)
    np.testing.assert_allclose(dx, dy * y * (1 - y), rtol=1e-15)
    _check_grad(lambda: float(np.sum(F.sigmoid_forward(x) * dy)), x, dx)
    assert F.sigmoid_backward(dy.astype(np.float32), y.astype(np.float32)).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Softmax and cross-entropy
# ---------------------------------------------------------------------------------------------


def test_softmax_rows_and_stability():
    rng = np.random.default_rng(50)
    x = _randn(rng, (4, 6))
    p = F.softmax(x)
    e = np.exp(x)
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-14)
    big = np.array([[1000.0, 1000.0, -1000.0], [1e4, 0.0, -1e4]], dtype=np.float32)
    pb = F.softmax(big)
    assert pb.dtype == np.float32
    np.testing.assert_allclose(pb, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(F.softmax(x.T.copy().T), p)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_softmax_xent_labels(label_dtype):
    rng = np.random.default_rng(51)
    x = _randn(rng, (5, 4)) * 2
    t = rng.integers(0, 4, 5).astype(label_dtype)
    loss, p = F.softmax_cross_entropy_forward(x, t)
    assert type(loss) is float
    e = np.exp(x)
    ref_p = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(p, ref_p, rtol=1e-14)
    assert loss == pytest.approx(
        -np.mean(np.log(ref_p[np.arange(5), t.astype(np.int64)])), rel=1e-13
    )
    dx = F.softmax_cross_entropy_backward(p, t, 2.0)
    onehot = np.eye(4)[t.astype(np.int64)]
    np.testing.assert_allclose(dx, (ref_p - onehot) * 2.0 / 5, rtol=1e-13, atol=1e-16)
    _check_grad(lambda: 2.0 * F.softmax_cross_entropy_forward(x, t)[0], x, dx)


def test_softmax_xent_one_hot_and_probability_targets():
    rng = np.random.default_rng(52)
    x = _randn(rng, (4, 3))
    labels = np.array([2, 0, 1, 2])
    onehot = np.eye(3)[labels]
    loss_l, p_l = F.softmax_cross_entropy_forward(x, labels)
    loss_o, p_o = F.softmax_cross_entropy_forward(x, onehot)
    assert loss_o == pytest.approx(loss_l, rel=1e-14)
    np.testing.assert_allclose(
        F.softmax_cross_entropy_backward(p_o, onehot),
        F.softmax_cross_entropy_backward(p_l, labels),
        atol=1e-16,
    )
    probs = F.softmax(_randn(rng, (4, 3)))
    loss_p, p = F.softmax_cross_entropy_forward(x, probs)
    log_p = x - np.log(np.exp(x).sum(1, keepdims=True))
    assert loss_p == pytest.approx(-np.sum(probs * log_p) / 4, rel=1e-13)
    dx = F.softmax_cross_entropy_backward(p, probs)
    _check_grad(lambda: F.softmax_cross_entropy_forward(x, probs)[0], x, dx)


def test_softmax_xent_large_logits_and_dtypes():
    x = np.array([[1000.0, 0.0], [-1000.0, 0.0]], dtype=np.float32)
    loss, p = F.softmax_cross_entropy_forward(x, np.array([1, 0]))
    assert loss == pytest.approx(1000.0, rel=1e-6)  # log-sum-exp: no inf, no 1e-7 clamp
    assert p.dtype == np.float32
    assert F.softmax_cross_entropy_backward(p, np.array([1, 0])).dtype == np.float32
    _, p64 = F.softmax_cross_entropy_forward(x, np.eye(2))
    assert p64.dtype == np.float64  # float32 logits with float64 targets promote


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """The definition, written out with Python ints."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_splitmix64_known_answers():
    # The published SplitMix64 stream for state 0 (state advances by the golden gamma).
    gamma = 0x9E3779B97F4A7C15
    assert [_splitmix64((i * gamma) & M64) for i in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 7, M64])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9])
def test_dropout_mask_known_answer(seed, ratio):
    key = _splitmix64(seed)
    u = [(_splitmix64((key + i) & M64) >> 11) * 2.0**-53 for i in range(24)]
    expected = np.array([ui >= ratio for ui in u]).reshape(2, 3, 4)
    np.testing.assert_array_equal(F.dropout_mask((2, 3, 4), ratio, seed), expected)


def test_dropout_mask_properties():
    m1 = F.dropout_mask((200, 300), 0.3, 7)
    assert m1.dtype == np.bool_ and m1.shape == (200, 300)
    np.testing.assert_array_equal(m1, F.dropout_mask((200, 300), 0.3, np.uint64(7)))
    assert not np.array_equal(m1, F.dropout_mask((200, 300), 0.3, 8))
    assert abs(m1.mean() - 0.7) < 0.01
    assert F.dropout_mask(5, 0.0, 1).all() and not F.dropout_mask(5, 1.0, 1).any()
    # The mask only depends on the flat index: reshaping does not change the stream.
    np.testing.assert_array_equal(
        F.dropout_mask(24, 0.5, 3), F.dropout_mask((4, 6), 0.5, 3).ravel()
    )
    assert F.dropout_mask((0, 3), 0.5, 3).shape == (0, 3)
    assert F.dropout_mask((), 0.5, 3).shape == ()


def test_dropout_forward_backward():
    rng = np.random.default_rng(60)
    x = _randn(rng, (4, 5, 3), np.float32)
    y, mask = F.dropout_forward(x, 0.4, seed=99)
    np.testing.assert_array_equal(mask, F.dropout_mask(x.shape, 0.4, 99))
    np.testing.assert_array_equal(y, x * mask)  # no rescaling
    assert y.dtype == np.float32
    y2, mask2 = F.dropout_forward(x, 0.4, True, mask=mask)
    np.testing.assert_array_equal(y2, y)
    assert mask2 is mask
    yi, mi = F.dropout_forward(x, 0.4, train=False)
    assert mi is None and yi.dtype == np.float32
    np.testing.assert_allclose(yi, x * 0.6, rtol=1e-7)
    dy = _randn(rng, x.shape)
    np.testing.assert_array_equal(F.dropout_backward(dy, mask), dy * mask)
    x64 = x.astype(np.float64)
    _check_grad(
        lambda: float(np.sum(F.dropout_forward(x64, 0.4, seed=99)[0] * dy)),
        x64,
        F.dropout_backward(dy, mask),
    )


# ---------------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------------


def test_batchnorm_forward_train_and_running_update():
    rng = np.random.default_rng(70)
    x = _randn(rng, (8, 5)) * 3 + 2
    gamma, beta = _randn(rng, 5), _randn(rng, 5)
    rm, rv = _randn(rng, 5), np.abs(_randn(rng, 5))
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, inv_std = F.batchnorm_forward(x, gamma, beta, rm, rv, 0.8, 1e-5)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(x.var(0) + 1e-5), rtol=1e-14)
    np.testing.assert_allclose(
        y, gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * x.var(0), rtol=1e-14)  # biased var
    # running stats None in training: nothing to update, same output
    y2, _, _ = F.batchnorm_forward(x, gamma, beta, None, None, 0.8, 1e-5)
    np.testing.assert_array_equal(y2, y)


def test_batchnorm_inference_uses_running_stats():
    rng = np.random.default_rng(71)
    x = _randn(rng, (3, 4))
    gamma, beta = _randn(rng, 4), _randn(rng, 4)
    rm, rv = _randn(rng, 4), np.abs(_randn(rng, 4)) + 0.5
    rm0 = rm.copy()
    y, mean, inv_std = F.batchnorm_forward(x, gamma, beta, rm, rv, train=False)
    np.testing.assert_allclose(y, gamma * (x - rm) / np.sqrt(rv + 1e-6) + beta, rtol=1e-13)
    np.testing.assert_array_equal(mean, rm)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(rv + 1e-6), rtol=1e-15)
    np.testing.assert_array_equal(rm, rm0)  # not updated
    assert mean is not rm


def test_batchnorm_backward_numerical():
    rng = np.random.default_rng(72)
    x = _randn(rng, (6, 4)) * 2 + 1
    gamma, beta = _randn(rng, 4), _randn(rng, 4)
    dy = _randn(rng, x.shape)

    def loss() -> float:
        return float(np.sum(F.batchnorm_forward(x, gamma, beta, None, None)[0] * dy))

    _, mean, inv_std = F.batchnorm_forward(x, gamma, beta, None, None)
    dx, dgamma, dbeta = F.batchnorm_backward(dy, x, gamma, mean, inv_std)
    _check_grad(loss, x, dx)
    _check_grad(loss, gamma, dgamma)
    _check_grad(loss, beta, dbeta)


def test_spatial_batchnorm_forward_and_backward():
    rng = np.random.default_rng(73)
    x = _randn(rng, (3, 2, 4, 5)) * 2 - 1
    gamma, beta = _randn(rng, 2), _randn(rng, 2)
    rm, rv = np.zeros(2), np.ones(2)
    y, mean, inv_std = F.spatial_batchnorm_forward(x, gamma, beta, rm, rv, 0.9, 1e-6)
    mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    c = (None, slice(None), None, None)
    np.testing.assert_allclose(
        y, gamma[c] * (x - mu[c]) / np.sqrt(var[c] + 1e-6) + beta[c], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(mean, mu, rtol=1e-14)
    np.testing.assert_allclose(rm, 0.1 * mu, rtol=1e-14)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var, rtol=1e-14)
    assert y.shape == x.shape and y.flags.c_contiguous
    dy = _randn(rng, x.shape)

    def loss() -> float:
        return float(np.sum(F.spatial_batchnorm_forward(x, gamma, beta, None, None)[0] * dy))

    dx, dgamma, dbeta = F.spatial_batchnorm_backward(dy, x, gamma, mean, inv_std)
    _check_grad(loss, x, dx)
    _check_grad(loss, gamma, dgamma)
    _check_grad(loss, beta, dbeta)
    yi, _, _ = F.spatial_batchnorm_forward(x, gamma, beta, rm, rv, train=False)
    np.testing.assert_allclose(
        yi, gamma[c] * (x - rm[c]) / np.sqrt(rv[c] + 1e-6) + beta[c], rtol=1e-12, atol=1e-12
    )


def test_batchnorm_dtypes_and_non_contiguous():
    rng = np.random.default_rng(74)
    x = _randn(rng, (5, 6), np.float32).T  # (6, 5) non-contiguous
    g32, b32 = np.ones(5, np.float32), np.zeros(5, np.float32)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    y, mean, inv_std = F.batchnorm_forward(x, g32, b32, rm, rv)
    assert y.dtype == mean.dtype == inv_std.dtype == np.float32
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6), rtol=1e-4, atol=1e-5)
    y64, _, _ = F.batchnorm_forward(x, g32.astype(np.float64), b32, rm, rv)
    assert y64.dtype == np.float64 and rm.dtype == np.float32
    dx, dg, db = F.batchnorm_backward(np.ones_like(x), x, g32, mean, inv_std)
    assert dx.dtype == dg.dtype == db.dtype == np.float32
    xs = _randn(rng, (2, 5, 3, 4)).transpose(0, 3, 2, 1)  # (2, 4, 3, 5)
    ys, _, _ = F.spatial_batchnorm_forward(xs, np.ones(4), np.zeros(4), None, None)
    yc, _, _ = F.spatial_batchnorm_forward(
        np.ascontiguousarray(xs), np.ones(4), np.zeros(4), None, None
    )
    np.testing.assert_allclose(ys, yc, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# Optimizer updates
# ---------------------------------------------------------------------------------------------


def test_sgd_and_momentum_update_in_place():
    rng = np.random.default_rng(80)
    p, g = _randn(rng, (3, 4)), _randn(rng, (3, 4))
    p0 = p.copy()
    assert F.sgd_update(p, g, 0.1) is None
    np.testing.assert_allclose(p, p0 - 0.1 * g, rtol=1e-15)
    v = _randn(rng, (3, 4))
    p0, v0 = p.copy(), v.copy()
    F.momentum_update(p, g, v, 0.05, 0.8)
    np.testing.assert_allclose(v, 0.8 * v0 - 0.05 * g, rtol=1e-15)
    np.testing.assert_allclose(p, p0 + v, rtol=1e-15)
    p32 = np.ones((2, 2), np.float32)[:, ::-1]  # float32, non-contiguous view, float64 grad
    F.sgd_update(p32, np.full((2, 2), 0.5), 1.0)
    assert p32.dtype == np.float32
    np.testing.assert_array_equal(p32, 0.5)


def test_adam_update_matches_classic_adam():
    rng = np.random.default_rng(81)
    p = _randn(rng, (4, 3))
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    lr, b1, b2 = 0.01, 0.9, 0.999
    for step in range(1, 6):
        g = _randn(rng, p.shape)
        F.adam_update(p, g, m, v, lr, b1, b2, step, eps=1e-7)
        lr_t = lr * np.sqrt(1.0 - b2**step) / (1.0 - b1**step)
        m_ref += (1 - b1) * (g - m_ref)
        v_ref += (1 - b2) * (g**2 - v_ref)
        p_ref -= lr_t * m_ref / (np.sqrt(v_ref) + 1e-7)
    np.testing.assert_allclose(p, p_ref, rtol=1e-14)
    np.testing.assert_allclose(m, m_ref, rtol=1e-14)
    np.testing.assert_allclose(v, v_ref, rtol=1e-14)


def test_nesterov_adagrad_rmsprop_updates_match_their_definitions():
    rng = np.random.default_rng(82)
    p, v, h1, h2 = _randn(rng, (5, 2)), _randn(rng, (5, 2)), np.zeros((5, 2)), np.zeros((5, 2))
    pn, pa, pr = p.copy(), p.copy(), p.copy()
    v_ref, h1_ref, h2_ref = v.copy(), h1.copy(), h2.copy()
    pn_ref, pa_ref, pr_ref = p.copy(), p.copy(), p.copy()
    for _ in range(4):
        g = _randn(rng, p.shape)
        assert F.nesterov_update(pn, g, v, 0.05, 0.8) is None
        v_ref *= 0.8
        v_ref -= 0.05 * g
        pn_ref += 0.8 * 0.8 * v_ref
        pn_ref -= 1.8 * 0.05 * g
        F.adagrad_update(pa, g, h1, 0.1)
        h1_ref += g * g
        pa_ref -= 0.1 * g / (np.sqrt(h1_ref) + 1e-7)
        F.rmsprop_update(pr, g, h2, 0.01, 0.9)
        h2_ref *= 0.9
        h2_ref += 0.1 * g * g
        pr_ref -= 0.01 * g / (np.sqrt(h2_ref) + 1e-7)
    for got, want in ((pn, pn_ref), (v, v_ref), (pa, pa_ref), (h1, h1_ref), (pr, pr_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match=r"rmsprop_update: decay_rate"):
        F.rmsprop_update(pr, g, h2, 0.01, 1.5)
    with pytest.raises(ValueError, match=r"adagrad_update: .*h"):
        F.adagrad_update(pa, g, np.zeros(3), 0.1)


# ---------------------------------------------------------------------------------------------
# Inputs are never written to; every op accepts read-only arrays
# ---------------------------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def test_no_op_writes_into_its_inputs():
    rng = np.random.default_rng(90)
    x, w, b = (_readonly(_randn(rng, s)) for s in [(2, 3, 5, 5), (4, 3, 3, 3), (4,)])
    y = F.conv2d_forward(x, w, b, 1, 1)
    F.conv2d_backward(_readonly(y), x, w, 1, 1)
    col = F.im2col(x, 2, 2)
    F.col2im(_readonly(col), x.shape, 2, 2)
    yp, arg = F.max_pool2d_forward(x, 2, 1, 1)
    F.max_pool2d_backward(_readonly(yp), _readonly(arg), x.shape, 2, 1, 1)
    ya = F.avg_pool2d_forward(x, 2)
    F.avg_pool2d_backward(_readonly(ya), x.shape, 2)
    wa, ba = _readonly(_randn(rng, (75, 2))), _readonly(_randn(rng, 2))
    F.affine_backward(_readonly(F.affine_forward(x, wa, ba)), x, wa)
    F.relu_backward(x, x)
    F.sigmoid_backward(x, _readonly(F.sigmoid_forward(x)))
    logits, labels = _readonly(_randn(rng, (3, 4))), _readonly(np.array([0, 3, 1]))
    _, p = F.softmax_cross_entropy_forward(logits, labels)
    F.softmax_cross_entropy_backward(_readonly(p), labels)
    targets = _readonly(np.eye(4)[[0, 3, 1]])
    F.softmax_cross_entropy_backward(_readonly(p), targets)
    F.softmax(logits)
    _, mask = F.dropout_forward(x, 0.5, seed=1)
    F.dropout_forward(x, 0.5, mask=_readonly(mask))
    F.dropout_backward(x, _readonly(mask))
    x2, g, bt = _readonly(_randn(rng, (4, 3))), _readonly(np.ones(3)), _readonly(np.zeros(3))
    _, mu, inv = F.batchnorm_forward(x2, g, bt, None, None)
    F.batchnorm_forward(x2, g, bt, _readonly(np.zeros(3)), _readonly(np.ones(3)), train=False)
    F.batchnorm_backward(x2, x2, g, _readonly(mu), _readonly(inv))
    gs = _readonly(np.ones(3))
    _, mu, inv = F.spatial_batchnorm_forward(x, gs, gs, None, None)
    F.spatial_batchnorm_backward(x, x, gs, _readonly(mu), _readonly(inv))


# ---------------------------------------------------------------------------------------------
# Argument errors: the right exception, naming the argument (and function / shapes)
# ---------------------------------------------------------------------------------------------

_X = np.zeros((2, 3, 5, 5))
_W = np.zeros((4, 3, 3, 3))
_ARG = np.zeros((2, 3, 4, 4), np.int64)
_ROW = np.zeros((3, 4))
_RO = np.zeros(3)
_RO.flags.writeable = False

BAD_CALLS = [
    # conv
    (lambda: F.conv2d_forward(_X[0], _W), ValueError, r"conv2d_forward: x must be 4-D"),
    (
        lambda: F.conv2d_forward(np.zeros((2, 3, 5, 5)), np.zeros((8, 4, 3, 3))),
        ValueError,
        r"^conv2d_forward: x has 3 channels but w expects 4 "
        r"\(x\.shape=\(2, 3, 5, 5\), w\.shape=\(8, 4, 3, 3\)\)$",
    ),
    (
        lambda: F.conv2d_forward(_X, np.zeros((4, 3, 6, 3))),
        ValueError,
        r"output height would be 0.*x\.shape=\(2, 3, 5, 5\), w\.shape=\(4, 3, 6, 3\)",
    ),
    (lambda: F.conv2d_forward(_X, _W, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: F.conv2d_forward(_X, _W, stride=(1, 0)), ValueError, r"stride"),
    (lambda: F.conv2d_forward(_X, _W, pad=-1), ValueError, r"pad must be >= 0"),
    (lambda: F.conv2d_forward(_X, _W, stride=True), TypeError, r"stride"),
    (lambda: F.conv2d_forward(_X, _W, stride=1.0), TypeError, r"stride"),
    (lambda: F.conv2d_forward(_X, _W, pad=(1, 2, 3)), ValueError, r"pad must be an int or"),
    (lambda: F.conv2d_forward(_X, _W, pad="1"), TypeError, r"pad"),
    (
        lambda: F.conv2d_forward(_X, _W.astype(np.complex128)),
        TypeError,
        r"\bw must be a real \(float, integer or bool\) array, got dtype complex128",
    ),
    (lambda: F.conv2d_forward(_X.astype(object), _W), TypeError, r"\bx must be a real"),
    (lambda: F.conv2d_forward(_X.astype(np.longdouble), _W), TypeError, r"\bx must be a real"),
    (lambda: F.conv2d_forward(_X.astype("U3"), _W), TypeError, r"\bx must be a real"),
    (lambda: F.conv2d_forward(_X, _W, stride=2**31), ValueError, r"stride must be at most"),
    (lambda: F.conv2d_forward(_X, _W, pad=(0, 2**63)), ValueError, r"pad must be at most"),
    (lambda: F.conv2d_forward(_X, _W, np.zeros(3)), ValueError, r"b has shape \(3,\).*\(4,\)"),
    (lambda: F.conv2d_forward(None, _W), TypeError, r"\bx must be an array"),
    (
        lambda: F.conv2d_backward(np.zeros((2, 4, 3, 4)), _X, _W),
        ValueError,
        r"conv2d_backward: dy has shape \(2, 4, 3, 4\) but expected \(2, 4, 3, 3\)",
    ),
    (lambda: F.conv2d_backward(np.zeros((2, 4, 3, 3)), _X, _W, need_dx=1), TypeError, r"need_dx"),
    (lambda: F.im2col(_X, 0, 2), ValueError, r"im2col: filter_h must be in \[1, inf\]"),
    (lambda: F.im2col(_X, 2, 9), ValueError, r"output width"),
    (lambda: F.col2im(np.zeros((5, 12)), _X.shape, 2, 2), ValueError, r"col2im: col has shape"),
    (lambda: F.col2im(np.zeros((32, 12)), (2, 3, 5), 2, 2), ValueError, r"x_shape"),
    (lambda: F.col2im(np.zeros((32, 12)), "abc", 2, 2), TypeError, r"x_shape"),
    # pooling
    (
        lambda: F.max_pool2d_forward(_X, 2, 1, 2),
        ValueError,
        r"max_pool2d_forward: pad must be smaller than window",
    ),
    (
        lambda: F.avg_pool2d_forward(_X, (2, 3), 1, (1, 3)),
        ValueError,
        r"pad must be smaller than window",
    ),
    (lambda: F.max_pool2d_forward(_X, 0), ValueError, r"window must be >= 1"),
    (lambda: F.max_pool2d_forward(_X, 6), ValueError, r"output height would be 0"),
    (lambda: F.avg_pool2d_forward(_X[0], 2), ValueError, r"x must be 4-D"),
    (
        lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4)), _ARG.astype(float), _X.shape, 2),
        TypeError,
        r"argmax must have an integer dtype",
    ),
    (
        lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4)), _ARG + 4, _X.shape, 2),
        ValueError,
        r"argmax values must be in \[0, 4\)",
    ),
    (
        lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4)), _ARG[:1], _X.shape, 2),
        ValueError,
        r"argmax has shape",
    ),
    (
        lambda: F.max_pool2d_backward(np.zeros((2, 3, 3, 3)), _ARG, _X.shape, 2),
        ValueError,
        r"dy has shape \(2, 3, 3, 3\) but expected \(2, 3, 4, 4\)",
    ),
    (
        lambda: F.avg_pool2d_backward(np.zeros((2, 3, 4, 4)), (2, 3, 5, -5), 2),
        ValueError,
        r"x_shape must be non-negative",
    ),
    # affine / activations
    (
        lambda: F.affine_forward(np.zeros((2, 6)), np.zeros((5, 3)), np.zeros(3)),
        ValueError,
        r"x has 6 features per sample but w expects 5 \(x\.shape=\(2, 6\), w\.shape=\(5, 3\)\)",
    ),
    (
        lambda: F.affine_forward(np.zeros((2, 5)), np.zeros((5, 3)), np.zeros(4)),
        ValueError,
        r"b has shape \(4,\)",
    ),
    (
        lambda: F.affine_forward(np.zeros(5), np.zeros((5, 3)), np.zeros(3)),
        ValueError,
        r"x must be at least 2-D",
    ),
    (
        lambda: F.affine_backward(np.zeros((2, 4)), np.zeros((2, 5)), np.zeros((5, 3))),
        ValueError,
        r"dy has shape",
    ),
    (lambda: F.relu_forward(np.arange(3) * 1j), TypeError, r"relu_forward: x must be a real"),
    (
        lambda: F.relu_backward(np.zeros(3), np.zeros(4)),
        ValueError,
        r"dy and x must have the same shape",
    ),
    (lambda: F.sigmoid_backward(np.zeros(3), np.zeros((3, 1))), ValueError, r"dy and y"),
    # softmax / cross-entropy
    (lambda: F.softmax(np.zeros(3)), ValueError, r"softmax: x must be 2-D"),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.array([0, 4, 1])),
        ValueError,
        r"labels in t must be in \[0, 4\)",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.array([0, -1, 1])),
        ValueError,
        r"labels in t",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.array([0.0, 1.0, 1.0])),
        TypeError,
        r"t of shape \(N,\) or \(N, 1\) must hold integer class labels",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.array([0, 1])),
        ValueError,
        r"t has shape \(2,\) but expected \(3,\)",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.zeros((3, 4), np.complex64)),
        TypeError,
        r"\bt must be a real",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.zeros((3, 1))),
        TypeError,
        r"t of shape \(N,\) or \(N, 1\) must hold integer class labels",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.zeros((3, 5))),
        ValueError,
        r"per-class targets \(N, M\) = \(3, 4\), got t.shape=\(3, 5\)",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(_ROW, np.zeros((3, 4, 1))),
        ValueError,
        r"t must be integer labels",
    ),
    (
        lambda: F.softmax_cross_entropy_forward(np.zeros((0, 4)), np.zeros(0, int)),
        ValueError,
        r"at least one row",
    ),
    (
        lambda: F.softmax_cross_entropy_backward(_ROW, np.array([0, 1, 2]), "1"),
        TypeError,
        r"dout must be a real number",
    ),
    (
        lambda: F.softmax_cross_entropy_backward(_ROW, np.array([0, 1, 2]), float("nan")),
        ValueError,
        r"dout must be finite",
    ),
    # dropout
    (lambda: F.dropout_mask((2, 3), 1.5, 0), ValueError, r"dropout_mask: ratio must be in"),
    (lambda: F.dropout_mask((2, 3), 0.5, -1), ValueError, r"seed must be in"),
    (lambda: F.dropout_mask((2, 3), 0.5, 2**64), ValueError, r"seed must be in"),
    (lambda: F.dropout_mask((2, 3), 0.5, 1.5), TypeError, r"seed must be an int"),
    (lambda: F.dropout_mask((2, -3), 0.5, 1), ValueError, r"shape must be non-negative"),
    (lambda: F.dropout_mask("ab", 0.5, 1), TypeError, r"shape must be"),
    (
        lambda: F.dropout_forward(_ROW, 0.5, seed=1, mask=np.ones((3, 4), bool)),
        ValueError,
        r"exactly one of seed and mask",
    ),
    (lambda: F.dropout_forward(_ROW, 0.5), ValueError, r"exactly one of seed and mask"),
    (
        lambda: F.dropout_forward(_ROW, 0.5, mask=np.ones((3, 4))),
        TypeError,
        r"mask must be a bool array",
    ),
    (
        lambda: F.dropout_forward(_ROW, 0.5, mask=np.ones((4, 3), bool)),
        ValueError,
        r"mask has shape \(4, 3\) but expected \(3, 4\)",
    ),
    (lambda: F.dropout_forward(_ROW, -0.1, seed=1), ValueError, r"ratio"),
    (lambda: F.dropout_forward(_ROW, 0.5, train="yes", seed=1), TypeError, r"train"),
    (lambda: F.dropout_backward(_ROW, np.ones(4, bool)), ValueError, r"mask has shape"),
    # batch norm
    (
        lambda: F.batchnorm_forward(_X, np.ones(3), np.zeros(3), None, None),
        ValueError,
        r"batchnorm_forward: x must be 2-D",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(3), np.zeros(4), None, None),
        ValueError,
        r"gamma has shape \(3,\) but expected \(4,\)",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), None, None, train=False),
        ValueError,
        r"inference \(train=False\) needs running_mean",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), np.zeros(4), None),
        ValueError,
        r"running_mean and running_var must both",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), [0.0] * 4, np.ones(4)),
        TypeError,
        r"running_mean is updated in place and must be a numpy array",
    ),
    (
        lambda: F.batchnorm_forward(_ROW[:, :3], np.ones(3), np.zeros(3), _RO, np.ones(3)),
        ValueError,
        r"running_mean is updated in place but is read-only",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), np.zeros(3), np.ones(3)),
        ValueError,
        r"running_mean has shape \(3,\)",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), None, None, momentum=2),
        ValueError,
        r"momentum must be in",
    ),
    (
        lambda: F.batchnorm_forward(_ROW, np.ones(4), np.zeros(4), None, None, eps=-1.0),
        ValueError,
        r"eps must be in",
    ),
    (
        lambda: F.batchnorm_forward(np.zeros((0, 4)), np.ones(4), np.zeros(4), None, None),
        ValueError,
        r"at least one sample",
    ),
    (
        lambda: F.batchnorm_backward(_ROW, np.zeros((4, 4)), np.ones(4), np.zeros(4), np.ones(4)),
        ValueError,
        r"dy and x must have the same shape",
    ),
    (
        lambda: F.batchnorm_backward(_ROW, _ROW, np.ones(4), np.zeros(3), np.ones(4)),
        ValueError,
        r"saved_mean has shape",
    ),
    (
        lambda: F.spatial_batchnorm_forward(_ROW, np.ones(4), np.zeros(4), None, None),
        ValueError,
        r"spatial_batchnorm_forward: x must be 4-D",
    ),
    (
        lambda: F.spatial_batchnorm_backward(_X, _X, np.ones(4), np.zeros(3), np.ones(3)),
        ValueError,
        r"spatial_batchnorm_backward: gamma has shape \(4,\) but expected \(3,\)",
    ),
    # optimizers
    (
        lambda: F.sgd_update([1.0, 2.0], np.zeros(2), 0.1),
        TypeError,
        r"sgd_update: param is updated in place",
    ),
    (lambda: F.sgd_update(np.zeros(2), np.zeros(3), 0.1), ValueError, r"param and grad"),
    (
        lambda: F.sgd_update(np.zeros(2, np.int32), np.zeros(2), 0.1),
        TypeError,
        r"param is updated in place and must be a float16, float32 or float64 array",
    ),
    (lambda: F.sgd_update(np.zeros(2), np.zeros(2), None), TypeError, r"lr must be a real"),
    (
        lambda: F.momentum_update(np.zeros(2), np.zeros(2), np.zeros(3), 0.1),
        ValueError,
        r"velocity has shape \(3,\) but expected \(2,\)",
    ),
    (
        lambda: F.adam_update(
            np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.1, 0.9, 0.999, 0
        ),
        ValueError,
        r"adam_update: step must be in \[1, inf\]",
    ),
    (
        lambda: F.adam_update(
            np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.1, 0.9, 0.999, 1.0
        ),
        TypeError,
        r"step must be an int",
    ),
    (
        lambda: F.adam_update(
            np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.1, 1.0, 0.999, 1
        ),
        ValueError,
        r"beta1 must be in \[0\.0, 1\.0\)",
    ),
    (
        lambda: F.adam_update(np.zeros(2), np.zeros(2), _RO[:2], np.zeros(2), 0.1, 0.9, 0.999, 1),
        ValueError,
        r"\bm is updated in place but is read-only",
    ),
]


@pytest.mark.parametrize("call, exc, match", BAD_CALLS)
def test_bad_arguments_raise_with_a_helpful_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
