"""fastcnn.functional: the fast backend, name for name and signature for signature the same as
fastcnn.reference.functional.

Convolution and pooling run on the C++ kernels, affine layers on fastcnn's GEMM (one-sample
and small products on numpy, faster there: see AFFINE_KERNEL_MACS);
every other name is taken from the compiled core where it has a kernel and from the reference
otherwise (im2col/col2im are kept for code that calls them directly: they are the reference's).
Calls with an empty dimension go to the reference too. Arguments are checked by the same
validators as the reference, so both backends accept and reject exactly the same calls and
compute in the same dtype (numpy's promotion, float16/integer/bool read as
_validation.compute_dtype says).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn._conv import conv2d_backward, conv2d_forward, conv2d_relu_forward
from fastcnn._gemm import gemm, product_into
from fastcnn._ops import (
    adagrad_update,
    adam_update,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    dropout_mask,
    momentum_update,
    nesterov_update,
    relu_backward,
    relu_forward,
    rmsprop_update,
    sgd_update,
    sigmoid_backward,
    sigmoid_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from fastcnn._pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from fastcnn.reference.functional import col2im, im2col, softmax

__all__ = [
    "im2col",
    "col2im",
    "conv2d_forward",
    "conv2d_relu_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "gemm",
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "softmax",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "dropout_mask",
    "dropout_forward",
    "dropout_backward",
    "batchnorm_forward",
    "batchnorm_backward",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "sgd_update",
    "momentum_update",
    "nesterov_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
]


def _as(a: np.ndarray, dt: np.dtype) -> np.ndarray:
    """a in dtype dt, a itself where it is (the identity test first: it costs 30 ns, astype 80)."""
    return a if a.dtype is dt else a.astype(dt, copy=False)


# Where the affine products run. From two samples on, fastcnn's GEMM (its small-product path:
# operands read in place, no packing of W) beats numpy's OpenBLAS at every layer size the
# classic networks have, once the product is worth a kernel call's fixed cost (pybind11
# converting the arrays, releasing the GIL: ~1.5 us). Measured on the Zen 4 machine, one
# process, idle (numpy / kernel, us; the products x.W, x^T.dy, dy.W^T):
#   2x1024x50 float32    12.3 / 5.4,   9.7 / 7.8,  13.0 / 14.7
#   8x1024x50 float32    15.4 / 7.6,  13.0 / 9.6,  14.7 / 13.2
#   2x784x50  float64    18.2 / 4.9,  10.0 / 6.7,  14.7 / 10.4
#   32x100x10 float32     2.2 / 2.0,   2.1 / 3.3,   2.0 / 5.2
#   8x100x10  float32     1.4 / 1.6,   1.4 / 2.4,   1.3 / 2.6
# so the kernel takes products of at least AFFINE_KERNEL_MACS multiply-adds. One sample is a
# matrix-vector product, where numpy's GEMV is as fast as the kernel or faster (1x1024x50
# float32: 3.4 / 3.7 us for x.W, 3.9 / 11.4 for dy.W^T) -- except the weight gradient, the
# outer product x^T (D x 1) . dy (1 x M), which numpy computes without BLAS at ~1.5 ns per
# element (1x1024x50: 60.6 / 5.1 us; 1x100x10: 2.1 / 2.1), so from OUTER_PRODUCT_KERNEL_MIN
# weights the kernel computes it.
AFFINE_KERNEL_MACS = 1 << 16
OUTER_PRODUCT_KERNEL_MIN = 2048


def _affine_on_kernel(n: int, w: np.ndarray) -> bool:
    return n >= 2 and n * w.size >= AFFINE_KERNEL_MACS


def _as2d(x: np.ndarray, d: int, dt: np.dtype) -> np.ndarray:
    """x as the (N, D) matrix of dtype dt (a view where it can be; no call where x is one)."""
    if x.ndim != 2:
        x = x.reshape(x.shape[0], d)
    return _as(x, dt)


def affine_forward(x: Any, w: Any, b: Any) -> np.ndarray:
    """Fully connected layer as fastcnn.reference.affine_forward: y = x.reshape(N, D) @ w + b.

    x is (N, ...) with D features per sample, w is (D, M), b is (M,); y is (N, M).
    """
    x, w, b, dt = V.check_affine_forward(x, w, b)
    x2 = _as2d(x, w.shape[0], dt)
    w = _as(w, dt)
    n = x2.shape[0]
    if not _affine_on_kernel(n, w):
        # The reference's expression with one temporary fewer (the bias added in place);
        # the same result: the product is already in dt and b's dtype is no wider.
        y = x2 @ w
        y += b
        return y
    y = np.empty((n, w.shape[1]), dtype=dt)
    y[...] = b
    return product_into(x2, w, y, 1.0, 1.0)


def affine_backward(dy: Any, x: Any, w: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of affine_forward, as fastcnn.reference.affine_backward.

    dy is (N, M), x is (N, ...), w is (D, M); dx has x's shape, dw is (D, M), db is (M,).
    """
    dy, x, w, dt = V.check_affine_backward(dy, x, w)
    dy = _as(dy, dt)
    x2 = _as2d(x, w.shape[0], dt)
    w = _as(w, dt)
    n = x2.shape[0]
    on_kernel = _affine_on_kernel(n, w)
    if on_kernel or (n == 1 and w.size >= OUTER_PRODUCT_KERNEL_MIN):
        # Checked above, so the products skip gemm's checks (they cost more than a few-image
        # product).
        dw = product_into(x2.T, dy, np.empty(w.shape, dt), 1.0, 0.0)
    else:
        dw = x2.T @ dy
    if on_kernel:
        dx = product_into(dy, w.T, np.empty((n, w.shape[0]), dt), 1.0, 0.0)
    else:
        dx = dy @ w.T
    # np.add.reduce is what dy.sum(axis=0) calls, without its Python-level wrapper (0.3 us).
    return dx.reshape(x.shape) if x.ndim != 2 else dx, dw, np.add.reduce(dy, axis=0)
