"""The oracle's oracle: deliberately naive loop implementations and a finite-difference helper.

Written independently of fastcnn.reference (explicit loops, padding handled by bounds checks,
no im2col) so the vectorised reference is checked against the definitions. Slow; tiny shapes only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def im2col(x: np.ndarray, r_: int, s_: int, stride=1, pad=0) -> np.ndarray:
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    n_, c_, h_, w_ = x.shape
    p_, q_ = out_size(h_, r_, sh, ph), out_size(w_, s_, sw, pw)
    col = np.zeros((n_ * p_ * q_, c_ * r_ * s_), dtype=x.dtype)
    for n in range(n_):
        for p in range(p_):
            for q in range(q_):
                row = (n * p_ + p) * q_ + q
                for c in range(c_):
                    for r in range(r_):
                        for s in range(s_):
                            i, j = p * sh + r - ph, q * sw + s - pw
                            if 0 <= i < h_ and 0 <= j < w_:
                                col[row, (c * r_ + r) * s_ + s] = x[n, c, i, j]
    return col


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride=1, pad=0) -> np.ndarray:
    """Direct convolution: loops over n, k, p, q, r, s; the channel sum is a dot product."""
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n_, c_, h_, w_ = x.shape
    k_, _, r_, s_ = w.shape
    p_, q_ = out_size(h_, r_, sh, ph), out_size(w_, s_, sw, pw)
    y = np.zeros((n_, k_, p_, q_), dtype=np.float64)
    for n in range(n_):
        for k in range(k_):
            for p in range(p_):
                for q in range(q_):
                    acc = 0.0 if b is None else float(b[k])
                    for r in range(r_):
                        for s in range(s_):
                            i, j = p * sh + r - ph, q * sw + s - pw
                            if 0 <= i < h_ and 0 <= j < w_:
                                acc += float(np.dot(x[n, :, i, j], w[k, :, r, s]))
                    y[n, k, p, q] = acc
    return y


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride=1, pad=0):
    """(dx, dw, db) by scattering every output pixel's gradient back, loop by loop."""
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    n_, c_, h_, w_ = x.shape
    k_, _, r_, s_ = w.shape
    _, _, p_, q_ = dy.shape
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(k_)
    for n in range(n_):
        for k in range(k_):
            for p in range(p_):
                for q in range(q_):
                    g = float(dy[n, k, p, q])
                    db[k] += g
                    for r in range(r_):
                        for s in range(s_):
                            i, j = p * sh + r - ph, q * sw + s - pw
                            if 0 <= i < h_ and 0 <= j < w_:
                                dx[n, :, i, j] += g * w[k, :, r, s]
                                dw[k, :, r, s] += g * x[n, :, i, j]
    return dx, dw, db


def _pool_windows(x_shape, window, stride, pad):
    """Yield (n, c, p, q, [(widx, i, j) for in-bounds window cells, row-major])."""
    (r_, s_), (sh, sw), (ph, pw) = pair(window), pair(stride), pair(pad)
    n_, c_, h_, w_ = x_shape
    p_, q_ = out_size(h_, r_, sh, ph), out_size(w_, s_, sw, pw)
    for n in range(n_):
        for c in range(c_):
            for p in range(p_):
                for q in range(q_):
                    cells = []
                    for r in range(r_):
                        for s in range(s_):
                            i, j = p * sh + r - ph, q * sw + s - pw
                            if 0 <= i < h_ and 0 <= j < w_:
                                cells.append((r * s_ + s, i, j))
                    yield n, c, p, q, cells


def pool_out_shape(x_shape, window, stride, pad):
    (r_, s_), (sh, sw), (ph, pw) = pair(window), pair(stride), pair(pad)
    n_, c_, h_, w_ = x_shape
    return (n_, c_, out_size(h_, r_, sh, ph), out_size(w_, s_, sw, pw))


def max_pool2d(x: np.ndarray, window, stride=1, pad=0):
    y = np.zeros(pool_out_shape(x.shape, window, stride, pad), dtype=x.dtype)
    arg = np.zeros(y.shape, dtype=np.int64)
    for n, c, p, q, cells in _pool_windows(x.shape, window, stride, pad):
        best_idx, best = None, None
        for widx, i, j in cells:
            if best is None or x[n, c, i, j] > best:  # strict: the first max wins ties
                best_idx, best = widx, x[n, c, i, j]
        y[n, c, p, q], arg[n, c, p, q] = best, best_idx
    return y, arg


def max_pool2d_backward(dy: np.ndarray, arg: np.ndarray, x_shape, window, stride=1, pad=0):
    dx = np.zeros(x_shape)
    for n, c, p, q, cells in _pool_windows(x_shape, window, stride, pad):
        for widx, i, j in cells:
            if widx == arg[n, c, p, q]:
                dx[n, c, i, j] += float(dy[n, c, p, q])
    return dx


def avg_pool2d(x: np.ndarray, window, stride=1, pad=0) -> np.ndarray:
    r_, s_ = pair(window)
    y = np.zeros(pool_out_shape(x.shape, window, stride, pad))
    for n, c, p, q, cells in _pool_windows(x.shape, window, stride, pad):
        y[n, c, p, q] = sum(float(x[n, c, i, j]) for _, i, j in cells) / (r_ * s_)
    return y


def avg_pool2d_backward(dy: np.ndarray, x_shape, window, stride=1, pad=0) -> np.ndarray:
    r_, s_ = pair(window)
    dx = np.zeros(x_shape)
    for n, c, p, q, cells in _pool_windows(x_shape, window, stride, pad):
        for _, i, j in cells:
            dx[n, c, i, j] += float(dy[n, c, p, q]) / (r_ * s_)
    return dx


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every element of the float64 array x.

    f must read x (it is perturbed in place and restored).
    """
    assert x.dtype == np.float64
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to the larger of the two arrays' magnitudes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


# ---------------------------------------------------------------------------------------------
# Tolerance of the fast-vs-reference comparisons (float32 ~1e-4, float64 ~1e-10 relative to the
# largest expected magnitude), shared by the kernel-family tests.
# ---------------------------------------------------------------------------------------------

TOL = {np.float32: 2e-4, np.float64: 1e-10}


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype) -> None:
    """Same dtype and shape, and equal to within TOL[dtype] times max(1, max |expected|)."""
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)
