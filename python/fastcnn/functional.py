"""fastcnn.functional: the fast backend, name for name and signature for signature the same as
fastcnn.reference.functional.

Convolution and pooling run on the C++ kernels, affine layers on fastcnn's GEMM (below
SMALL_AFFINE_MACS on the reference's own numpy expression, cheaper than a kernel call there);
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
from fastcnn.reference import functional as _reference
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
    return a.astype(dt, copy=False)


# Below this many multiply-adds an affine layer costs less as the reference's numpy
# expression than as a kernel call, whose fixed cost (pybind11 converting three arrays,
# releasing the GIL, the driver's setup: 3-5 us) exceeds numpy's whole product, and whose
# products stay on one thread (under common/tuning.h's kMinNsPerThread per thread) where
# OpenBLAS uses two. Measured on the Zen 4 machine with bench_small's affine shapes (one call,
# idle): 1x50x10 numpy 1.6 us vs kernel 3.2; 3x1024x50 9.4 vs 7.9; 8x1024x100 forward 17-20
# vs 22-27 us (0.8 M multiply-adds); 32x1024x100 forward 65 vs 50 us (3.3 M, two threads).
SMALL_AFFINE_MACS = 1 << 20

# Except one product: numpy computes the weight gradient of a single sample, the outer product
# x^T (D x 1) . dy (1 x M), without BLAS at ~1.5 ns per element (1024x100 float32: 167 us
# against the kernel's 17 us; 256x50: 22 vs 5 us; 100x10: 3.4 vs 3.7 us), so from this many
# weights the kernel computes it.
OUTER_PRODUCT_KERNEL_MIN = 2048


def affine_forward(x: Any, w: Any, b: Any) -> np.ndarray:
    """Fully connected layer as fastcnn.reference.affine_forward: y = x.reshape(N, D) @ w + b.

    x is (N, ...) with D features per sample, w is (D, M), b is (M,); y is (N, M).
    """
    x, w, b, dt = V.check_affine_forward(x, w, b)
    if x.shape[0] * w.size < SMALL_AFFINE_MACS:
        return _reference._affine_forward(x, w, b, dt)
    x2 = _as(x.reshape(x.shape[0], w.shape[0]), dt)
    y = np.empty((x.shape[0], w.shape[1]), dtype=dt)
    y[...] = b
    return product_into(x2, _as(w, dt), y, 1.0, 1.0)


def affine_backward(dy: Any, x: Any, w: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of affine_forward, as fastcnn.reference.affine_backward.

    dy is (N, M), x is (N, ...), w is (D, M); dx has x's shape, dw is (D, M), db is (M,).
    """
    dy, x, w, dt = V.check_affine_backward(dy, x, w)
    n = x.shape[0]
    small = n * w.size < SMALL_AFFINE_MACS
    if small and not (n == 1 and w.size >= OUTER_PRODUCT_KERNEL_MIN):
        return _reference._affine_backward(dy, x, w, dt)
    dy = _as(dy, dt)
    x2 = _as(x.reshape(n, w.shape[0]), dt)
    if small:  # one sample: numpy's dx, the kernel's outer product for dw; db is dy's row
        dx = dy @ _as(w, dt).T
        dw = product_into(x2.T, dy, np.empty(w.shape, dt), 1.0, 0.0)
        return dx.reshape(x.shape), dw, dy[0].copy()
    # Checked above, so the products skip gemm's checks (they cost more than a few-image
    # product).
    dx = product_into(dy, _as(w, dt).T, np.empty((n, w.shape[0]), dt), 1.0, 0.0)
    dw = product_into(x2.T, dy, np.empty(w.shape, dt), 1.0, 0.0)
    return dx.reshape(x.shape), dw, dy.sum(axis=0)
