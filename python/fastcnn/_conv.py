"""Fast conv2d_forward / conv2d_backward: the reference's signatures and checks, C++ kernels.

Validates with the same checkers as fastcnn.reference (so the same calls are accepted and
rejected), converts operands to the result dtype and C order, allocates outputs, and makes one
call into fastcnn._core per kernel.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from fastcnn import _validation as V
from fastcnn._env import _core
from fastcnn.reference import functional as _reference

_c = V.kernel_array  # C-contiguous and aligned, as the kernels take arrays

IntOrPair = Union[int, tuple[int, int]]


def conv2d_forward(
    x: Any, w: Any, b: Any = None, stride: IntOrPair = 1, pad: IntOrPair = 0
) -> np.ndarray:
    """Convolution (cross-correlation, zero padding) as fastcnn.reference.conv2d_forward.

    x is (N,C,H,W), w is (K,C,R,S), b is (K,) or None; returns y (N,K,P,Q) with
    P = (H + 2*ph - R)//sh + 1 and Q likewise; dtype = numpy's promotion of the inputs.
    """
    return _forward(x, w, b, stride, pad, relu=False)


def conv2d_relu_forward(
    x: Any, w: Any, b: Any = None, stride: IntOrPair = 1, pad: IntOrPair = 0
) -> np.ndarray:
    """relu(conv2d_forward(...)) with the ReLU fused into the kernel's output pass."""
    return _forward(x, w, b, stride, pad, relu=True)


def _forward(x: Any, w: Any, b: Any, stride: IntOrPair, pad: IntOrPair, relu: bool) -> np.ndarray:
    x, w, b, g, dt = V.check_conv2d_forward(x, w, b, stride, pad)
    if g.empty:  # bias-only or empty: nothing for the kernels, and nothing to allocate
        reference = _reference.conv2d_relu_forward if relu else _reference.conv2d_forward
        return reference(x, w, b, g.stride, g.pad)
    y = np.empty(g.y_shape, dtype=dt)
    bb = None if b is None else _c(b, dt)
    _core.conv2d_forward(_c(x, dt), _c(w, dt), bb, y, g.astuple(), relu)
    return y


def conv2d_backward(
    dy: Any,
    x: Any,
    w: Any,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of conv2d_forward, as fastcnn.reference.conv2d_backward.

    dy is (N,K,P,Q); dx (N,C,H,W) is None when need_dx is False; dw is (K,C,R,S); db is (K,).
    The sums over the batch are done in a fixed order: the same bits for any thread count.
    """
    dy, x, w, g, dt = V.check_conv2d_backward(dy, x, w, stride, pad, need_dx)
    if g.empty:  # zero or empty gradients
        return _reference.conv2d_backward(dy, x, w, g.stride, g.pad, need_dx)
    dy, w = _c(dy, dt), _c(w, dt)
    geom = g.astuple()
    dw = np.empty(g.w_shape, dtype=dt)
    db = np.empty((g.k,), dtype=dt)
    _core.conv2d_backward_weights(dy, _c(x, dt), dw, db, geom)
    dx = None
    if need_dx:
        dx = np.empty(g.x_shape, dtype=dt)
        _core.conv2d_backward_data(dy, w, dx, geom)
    return dx, dw, db
