"""Max and average pooling on the compiled core, with the reference's names and signatures.

Arguments go through the same ``_validation`` checkers as ``fastcnn.reference``, so both
backends accept and reject the same calls; inputs are made C-contiguous, outputs are allocated
here, and each function is one ``_core`` call. Results match the reference bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn._env import _core
from fastcnn.reference import functional as _reference

__all__ = [
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]

IntOrPair = V.IntOrPair


def max_pool2d_forward(
    x: np.ndarray,
    window: IntOrPair,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    argmax_dtype: Any = np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling. x is (N,C,H,W); returns y (N,C,P,Q) (x's dtype) and argmax (N,C,P,Q) of
    argmax_dtype: int64, or uint8 for windows of at most 256 elements.

    window, stride, pad are an int or an (h, w) pair with 0 <= pad < window per axis.
    argmax[n,c,p,q] = r*window_w + s of the max inside its window; ties go to the first max in
    row-major order; the first NaN counts as the max; padding never wins.
    """
    where = "max_pool2d_forward"
    x, g = V.check_pool2d_forward(x, window, stride, pad, where)
    dt = V.check_argmax_dtype(argmax_dtype, g, where)
    if g.empty:  # an empty result (or, for an empty image, windows of padding only)
        return _reference.max_pool2d_forward(x, g.window, g.stride, g.pad, dt)
    y = np.empty(g.y_shape, dtype=x.dtype)
    argmax = np.empty(g.y_shape, dtype=dt)
    _core.max_pool2d_forward(V.kernel_array(x), y, argmax, g.astuple())
    return y, argmax


def max_pool2d_backward(
    dy: np.ndarray,
    argmax: np.ndarray,
    x_shape: tuple[int, int, int, int],
    window: IntOrPair,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """Gradient of max_pool2d_forward: dy (N,C,P,Q) routed to argmax; returns dx of x_shape.

    argmax is any integer array shaped like dy with values in [0, window_h*window_w).
    Overlapping windows accumulate. Same dtype as dy.
    """
    where = "max_pool2d_backward"
    dy, argmax, g = V.check_max_pool2d_backward(
        dy, argmax, x_shape, window, stride, pad, where, check_range=False
    )
    if g.empty:
        return _reference.max_pool2d_backward(dy, argmax, g.x_shape, g.window, g.stride, g.pad)
    dx = np.empty(g.x_shape, dtype=dy.dtype)
    # The kernels read int64 or uint8 indices (uint8 where it holds the window); others convert.
    compact = V.smallest_argmax_dtype(g.r * g.s)
    am = V.kernel_array(argmax, compact if argmax.dtype == compact else np.int64)
    try:
        _core.max_pool2d_backward(V.kernel_array(dy), am, dx, g.astuple())
    except ValueError:  # the kernel found an argmax out of range: the reference's message
        V.check_argmax_range(argmax, g, where)
        raise
    return dx


def avg_pool2d_forward(
    x: np.ndarray, window: IntOrPair, stride: IntOrPair = 1, pad: IntOrPair = 0
) -> np.ndarray:
    """Average pooling. x is (N,C,H,W); y is (N,C,P,Q), x's dtype.

    Padding counts as zeros and the divisor is always window_h*window_w (PyTorch's
    count_include_pad=True). Requires 0 <= pad < window per axis.
    """
    x, g = V.check_pool2d_forward(x, window, stride, pad, "avg_pool2d_forward")
    if g.empty:
        return _reference.avg_pool2d_forward(x, g.window, g.stride, g.pad)
    y = np.empty(g.y_shape, dtype=x.dtype)
    _core.avg_pool2d_forward(V.kernel_array(x), y, g.astuple())
    return y


def avg_pool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, int, int, int],
    window: IntOrPair,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """Gradient of avg_pool2d_forward: dy (N,C,P,Q) -> dx of x_shape (N,C,H,W), dy's dtype."""
    dy, g = V.check_pool2d_backward(dy, x_shape, window, stride, pad, "avg_pool2d_backward")
    if g.empty:
        return _reference.avg_pool2d_backward(dy, g.x_shape, g.window, g.stride, g.pad)
    dx = np.empty(g.x_shape, dtype=dy.dtype)
    _core.avg_pool2d_backward(V.kernel_array(dy), dx, g.astuple())
    return dx
