"""Pure-numpy reference of every fastcnn op: the specification the fast backend must match.

Readable, vectorised numpy (Python loops only over kernel offsets r, s), NCHW, float32/float64
with numpy promotion. It deliberately leaves out speed, threading and in-place tricks; argument
checking lives in fastcnn._validation and is shared with the fast backend.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np

from .. import _validation as V

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

IntOrPair = Union[int, tuple[int, int]]
Geometry2d = V.Geometry2d


# ---------------------------------------------------------------------------------------------
# Sliding windows. For kernel offset (r, s) the input pixels seen by all output pixels form one
# strided slice of the padded input, so loops run over the R*S offsets, never over pixels.
# ---------------------------------------------------------------------------------------------


def _pad(x: np.ndarray, g: Geometry2d, value: float = 0.0) -> np.ndarray:
    """Pad H and W of x (N,C,H,W) by (ph, pw) on both sides with ``value``."""
    if g.ph == 0 and g.pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)), constant_values=value)


def _offset(g: Geometry2d, r: int, s: int) -> tuple[slice, slice, slice, slice]:
    """Index of the (N,C,P,Q) slice of the padded input read by kernel offset (r, s)."""
    rows = slice(r, r + g.sh * (g.p - 1) + 1, g.sh)
    cols = slice(s, s + g.sw * (g.q - 1) + 1, g.sw)
    return (slice(None), slice(None), rows, cols)


def _unfold(x: np.ndarray, g: Geometry2d, pad_value: float = 0.0) -> np.ndarray:
    """x (N,C,H,W) -> windows (N,C,R,S,P,Q): out[n,c,r,s,p,q] = xpad[n,c,p*sh+r,q*sw+s]."""
    xp = _pad(x, g, pad_value)
    out = np.empty((g.n, g.c, g.r, g.s, g.p, g.q), dtype=x.dtype)
    for r in range(g.r):
        for s in range(g.s):
            out[:, :, r, s] = xp[_offset(g, r, s)]
    return out


def _fold(windows: np.ndarray, g: Geometry2d) -> np.ndarray:
    """Adjoint of _unfold: windows (N,C,R,S,P,Q) summed back into x (N,C,H,W); padding dropped."""
    xp = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=windows.dtype)
    for r in range(g.r):
        for s in range(g.s):
            xp[_offset(g, r, s)] += windows[:, :, r, s]
    return np.ascontiguousarray(xp[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w])


def _im2col(x: np.ndarray, g: Geometry2d) -> np.ndarray:
    windows = _unfold(x, g)  # (N,C,R,S,P,Q)
    return windows.transpose(0, 4, 5, 1, 2, 3).reshape(g.col_shape)


def _col2im(col: np.ndarray, g: Geometry2d) -> np.ndarray:
    windows = col.reshape(g.n, g.p, g.q, g.c, g.r, g.s).transpose(0, 3, 4, 5, 1, 2)
    return _fold(windows, g)


def im2col(
    x: np.ndarray, filter_h: int, filter_w: int, stride: IntOrPair = 1, pad: IntOrPair = 0
) -> np.ndarray:
    """Unfold sliding windows into rows of a matrix.

    x is (N,C,H,W); returns col (N*P*Q, C*R*S) with R = filter_h, S = filter_w. Row index is
    the output pixel (n, p, q) in C order, column index is (c, r, s) in C order, and
    col[(n,p,q), (c,r,s)] = xpad[n, c, p*sh + r, q*sw + s] (zero padding). Same dtype as x.
    """
    x, g = V.check_im2col(x, filter_h, filter_w, stride, pad)
    return _im2col(x, g)


def col2im(
    col: np.ndarray,
    x_shape: tuple[int, int, int, int],
    filter_h: int,
    filter_w: int,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """Adjoint of im2col: fold col (N*P*Q, C*R*S) back into an x_shape (N,C,H,W) array.

    Overlapping windows add up; entries that fall in the padding are dropped. Same dtype as col.
    """
    col, g = V.check_col2im(col, x_shape, filter_h, filter_w, stride, pad)
    return _col2im(col, g)


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """2-D convolution (cross-correlation, no kernel flip) with zero padding.

    x is (N,C,H,W); w is (K,C,R,S); b is (K,) or None; y is (N,K,P,Q) with
    P = (H + 2*ph - R)//sh + 1, Q = (W + 2*pw - S)//sw + 1 and
    y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * xpad[n, c, p*sh + r, q*sw + s].
    stride and pad are an int or an (h, w) pair. dtype = result_type(x, w, b).
    """
    x, w, b, g, dt = V.check_conv2d_forward(x, w, b, stride, pad)
    col = _im2col(x.astype(dt, copy=False), g)  # (N*P*Q, C*R*S)
    wmat = w.astype(dt, copy=False).reshape(g.k, g.c * g.r * g.s)  # (K, C*R*S)
    y = col @ wmat.T  # (N*P*Q, K)
    if b is not None:
        y += b
    return np.ascontiguousarray(y.reshape(g.n, g.p, g.q, g.k).transpose(0, 3, 1, 2))


def conv2d_relu_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """relu_forward(conv2d_forward(x, w, b, stride, pad)): a convolution followed by a ReLU.

    The fast backend fuses the ReLU into the convolution's output pass; the backward pass is
    relu_backward(dy, y) (y > 0 exactly where the pre-activation was) then conv2d_backward.
    """
    return relu_forward(conv2d_forward(x, w, b, stride, pad))


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of conv2d_forward.

    dy is (N,K,P,Q); x is (N,C,H,W); w is (K,C,R,S). Returns (dx, dw, db) with dx (N,C,H,W)
    (None when need_dx is False), dw (K,C,R,S) and db = dy.sum((0, 2, 3)) of shape (K,).
    dtype = result_type(dy, x, w).
    """
    dy, x, w, g, dt = V.check_conv2d_backward(dy, x, w, stride, pad, need_dx)
    dy2 = dy.astype(dt, copy=False).transpose(0, 2, 3, 1).reshape(g.n * g.p * g.q, g.k)
    col = _im2col(x.astype(dt, copy=False), g)
    dw = (dy2.T @ col).reshape(g.w_shape)
    db = dy2.sum(axis=0)
    dx = None
    if need_dx:
        wmat = w.astype(dt, copy=False).reshape(g.k, g.c * g.r * g.s)
        dx = _col2im(dy2 @ wmat, g)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def max_pool2d_forward(
    x: np.ndarray,
    window: IntOrPair,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    argmax_dtype: Any = np.int64,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling. x is (N,C,H,W); returns y (N,C,P,Q) and argmax (N,C,P,Q) of argmax_dtype:
    int64, or uint8 for windows of at most 256 elements (an eighth of the memory).

    window, stride, pad are an int or an (h, w) pair with 0 <= pad < window per axis, so every
    window holds at least one real element (padding is -inf and never wins).
    argmax[n,c,p,q] = r*window_w + s of the max inside its window; ties go to the first max in
    that row-major order. A NaN counts as the max (the first NaN wins), so NaN propagates.
    """
    where = "max_pool2d_forward"
    x, g = V.check_pool2d_forward(x, window, stride, pad, where)
    dt = V.check_argmax_dtype(argmax_dtype, g, where)
    windows = _unfold(x, g, pad_value=-np.inf).reshape(g.n, g.c, g.r * g.s, g.p, g.q)
    argmax = windows.argmax(axis=2)
    y = np.take_along_axis(windows, argmax[:, :, None], axis=2)[:, :, 0]
    return y, argmax.astype(dt, copy=False)


def max_pool2d_backward(
    dy: np.ndarray,
    argmax: np.ndarray,
    x_shape: tuple[int, int, int, int],
    window: IntOrPair,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
) -> np.ndarray:
    """Gradient of max_pool2d_forward: dy (N,C,P,Q) routed to argmax; returns dx of x_shape.

    argmax is the integer array from the forward pass (values in [0, window_h*window_w)).
    Overlapping windows accumulate. Same dtype as dy.
    """
    dy, argmax, g = V.check_max_pool2d_backward(dy, argmax, x_shape, window, stride, pad)
    dxp = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=dy.dtype)
    for r in range(g.r):
        for s in range(g.s):
            dxp[_offset(g, r, s)] += np.where(argmax == r * g.s + s, dy, 0)
    return np.ascontiguousarray(dxp[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w])


def avg_pool2d_forward(
    x: np.ndarray, window: IntOrPair, stride: IntOrPair = 1, pad: IntOrPair = 0
) -> np.ndarray:
    """Average pooling. x is (N,C,H,W); y is (N,C,P,Q).

    Padding counts as zeros and the divisor is always window_h*window_w (PyTorch's
    count_include_pad=True). Requires 0 <= pad < window per axis. Same dtype as x.
    """
    x, g = V.check_pool2d_forward(x, window, stride, pad, "avg_pool2d_forward")
    xp = _pad(x, g)
    y = np.zeros(g.y_shape, dtype=x.dtype)
    for r in range(g.r):
        for s in range(g.s):
            y += xp[_offset(g, r, s)]
    y /= g.r * g.s
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
    share = dy / (g.r * g.s)
    dxp = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=dy.dtype)
    for r in range(g.r):
        for s in range(g.s):
            dxp[_offset(g, r, s)] += share
    return np.ascontiguousarray(dxp[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w])


# ---------------------------------------------------------------------------------------------
# Affine and activations
# ---------------------------------------------------------------------------------------------


def gemm(
    a: Any,
    b: Any,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out`` with numpy's matmul: the oracle for fastcnn.gemm
    (same arguments, same checks; ``out``, when given, is written in place and returned)."""
    op_a, op_b, alpha, beta, out, dt = V.check_gemm(a, b, trans_a, trans_b, alpha, beta, out)
    product = alpha * (op_a.astype(dt, copy=False) @ op_b.astype(dt, copy=False))
    if out is None:
        return product.astype(dt, copy=False)
    out[...] = product + beta * out if beta != 0.0 else product
    return out


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fully connected layer. x is (N, ...) viewed as (N, D); w is (D, M); b is (M,).

    y = x.reshape(N, D) @ w + b, shape (N, M). dtype = result_type(x, w, b).
    """
    x, w, b, dt = V.check_affine_forward(x, w, b)
    x2 = x.reshape(x.shape[0], w.shape[0]).astype(dt, copy=False)
    return x2 @ w.astype(dt, copy=False) + b


def affine_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of affine_forward. dy is (N, M); x is (N, ...); w is (D, M).

    Returns dx (x's original shape), dw (D, M), db (M,). dtype = result_type(dy, x, w).
    """
    dy, x, w, dt = V.check_affine_backward(dy, x, w)
    dy = dy.astype(dt, copy=False)
    x2 = x.reshape(x.shape[0], w.shape[0]).astype(dt, copy=False)
    dx = (dy @ w.astype(dt, copy=False).T).reshape(x.shape)
    return dx, x2.T @ dy, dy.sum(axis=0)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """y = max(x, 0) elementwise, any shape, x's dtype; NaN propagates."""
    x = V.check_unary_forward(x, "relu_forward")
    return np.maximum(x, 0)


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dy where x > 0 else 0; dy and x share a shape. dtype = result_type(dy, x)."""
    dy, x, dt = V.check_unary_backward(dy, x, "x", "relu_backward")
    return np.where(x > 0, dy, 0).astype(dt, copy=False)


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """y = 1 / (1 + exp(-x)) elementwise, x's dtype.

    Evaluated through e = exp(-|x|) <= 1 so large |x| neither overflows nor warns.
    """
    x = V.check_unary_forward(x, "sigmoid_forward")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), with y the forward output. dtype = result_type(dy, y)."""
    dy, y, _ = V.check_unary_backward(dy, y, "y", "sigmoid_backward")
    return dy * y * (1 - y)


# ---------------------------------------------------------------------------------------------
# Softmax and cross-entropy
# ---------------------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of x (N, M): p = exp(x - max) / sum(exp(x - max)). x's dtype."""
    x = V.check_softmax(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy_forward(x: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax followed by cross-entropy, averaged over the batch.

    x is (N, M) logits; t is either integer class labels (N,) (any int dtype, each in
    [0, M)) or float targets (N, M) (one-hot or probabilities). With log_softmax computed by
    log-sum-exp, loss = mean_n( -sum_m t[n,m] * log_softmax(x)[n,m] ) returned as a Python
    float; p = softmax(x) (N, M). dtype of p = result_type(x) for labels, (x, t) for targets.
    """
    x, t, labels, dt = V.check_softmax_xent_forward(x, t)
    x = x.astype(dt, copy=False)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1, keepdims=True)
    p = e / total
    log_p = z - np.log(total)
    n = x.shape[0]
    if labels:
        loss = -log_p[np.arange(n), t].sum() / n
    else:
        loss = -(t * log_p).sum() / n
    return float(loss), p


def softmax_cross_entropy_backward(p: np.ndarray, t: np.ndarray, dout: float = 1.0) -> np.ndarray:
    """Gradient of softmax_cross_entropy_forward w.r.t. the logits.

    p is (N, M) from the forward pass; t as in the forward pass; dout a scalar.
    dx = (p - onehot(t)) * dout / N, shape (N, M). This is the exact gradient when every row of
    t sums to 1 (labels, one-hot or probability targets).
    """
    p, t, labels, dout, dt = V.check_softmax_xent_backward(p, t, dout)
    n = p.shape[0]
    if labels:
        dx = p.astype(dt, copy=True)
        dx[np.arange(n), t] -= 1
    else:
        dx = p - t
    dx *= dout / n
    return dx


# ---------------------------------------------------------------------------------------------
# Dropout with a counter-based RNG (splitmix64) so the C++ backend reproduces masks bit for bit.
# ---------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _splitmix64_int(z: int) -> int:
    """splitmix64 on one Python int (mod 2**64)."""
    z = (z + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _splitmix64_inplace(z: np.ndarray) -> np.ndarray:
    """splitmix64 on a uint64 array, in place. numpy array arithmetic wraps mod 2**64 silently
    (only numpy *scalar* overflow warns), so every operation keeps an array operand."""
    z += np.uint64(_GOLDEN)
    z ^= z >> np.uint64(30)
    z *= np.uint64(_MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    return z


def dropout_mask(
    shape: int | tuple[int, ...], ratio: float, seed: int, *, offset: int = 0
) -> np.ndarray:
    """Bool keep-mask of ``shape``; each element is dropped with probability ``ratio``.

    Definition (uint64 wrapping arithmetic): key = splitmix64(seed); for the C-order flat index
    i, u_i = float64(splitmix64(key + offset + i) >> 11) * 2**-53 and keep_i = (u_i >= ratio),
    where splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31).
    ratio is in [0, 1]; seed and offset are ints in [0, 2**64). ``offset`` places the array in
    a larger one's stream: rows lo:hi of a batch's mask are the mask of those rows alone with
    offset = lo * (elements per row), which is how a data-parallel shard draws its part.
    """
    shape, ratio, seed = V.check_dropout_mask(shape, ratio, seed)
    offset = V.check_offset(offset, "dropout_mask")
    z = np.arange(math.prod(shape), dtype=np.uint64)
    z += np.uint64((_splitmix64_int(seed) + offset) & ((1 << 64) - 1))
    _splitmix64_inplace(z)
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (u >= ratio).reshape(shape)


def dropout_forward(
    x: np.ndarray,
    ratio: float = 0.5,
    train: bool = True,
    *,
    seed: int | None = None,
    mask: np.ndarray | None = None,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Classic (non-inverted) dropout. x is any shape; returns (y, mask).

    Training: exactly one of ``seed`` (mask = dropout_mask(x.shape, ratio, seed, offset=offset))
    or ``mask``
    (a bool array of x.shape) must be given; y = x * mask, with no rescaling.
    Inference (train=False): y = x * (1 - ratio) and mask is None (seed and mask are ignored).
    y has x's dtype.
    """
    x, ratio, train, seed, mask = V.check_dropout_forward(x, ratio, train, seed, mask)
    if not train:
        return x * (1.0 - ratio), None
    if mask is None:
        assert seed is not None  # check_dropout_forward: exactly one of seed and mask
        mask = dropout_mask(x.shape, ratio, seed, offset=offset)
    return x * mask, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dx = dy * mask (mask: the bool array from dropout_forward, shaped like dy)."""
    dy, mask = V.check_dropout_backward(dy, mask)
    return dy * mask


# ---------------------------------------------------------------------------------------------
# Batch normalisation. The core works on (M, D) matrices; the spatial variant views
# (N,C,H,W) as (N*H*W, C) so each channel is normalised over N, H and W.
# ---------------------------------------------------------------------------------------------


def _update_running_stats(
    running_mean: np.ndarray, running_var: np.ndarray, mean: Any, var: Any, momentum: float
) -> None:
    """running = momentum*running + (1 - momentum)*batch_stat, in place (numpy's promotion;
    the fast backend calls this too, so both update the running stats to the same bits)."""
    running_mean[...] = momentum * running_mean + (1 - momentum) * mean
    running_var[...] = momentum * running_var + (1 - momentum) * var


def _batchnorm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: Any,
    running_var: Any,
    momentum: float,
    eps: float,
    train: bool,
    dt: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = x.astype(dt, copy=False)
    if train:
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)  # biased
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, mean, var, momentum)
    else:
        mean = running_mean.astype(dt)
        var = running_var.astype(dt)
    inv_std = 1 / np.sqrt(var + eps)
    y = gamma * ((x - mean) * inv_std) + beta
    return y.astype(dt, copy=False), mean, inv_std.astype(dt, copy=False)


def _batchnorm_grad(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    dt: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Every operand in the result dtype: with mixed inputs no sub-expression (gamma * inv_std
    # of two float32 vectors, say) is rounded to a narrower type than the result.
    dy, x, gamma, mean, inv_std = (a.astype(dt, copy=False) for a in (dy, x, gamma, mean, inv_std))
    xhat = (x - mean) * inv_std
    m = x.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(dt, copy=False), dgamma.astype(dt, copy=False), dbeta


def _nchw_to_rows(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def _rows_to_nchw(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, c, h, w = shape
    return np.ascontiguousarray(rows.reshape(n, h, w, c).transpose(0, 3, 1, 2))


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    momentum: float = 0.9,
    eps: float = 1e-6,
    train: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation over axis 0. x is (N, D); gamma, beta, running stats are (D,).

    Training: mean and biased var over the batch, inv_std = 1/sqrt(var + eps),
    y = gamma*(x - mean)*inv_std + beta; running_mean and running_var are updated IN PLACE:
    running = momentum*running + (1 - momentum)*batch_stat (biased var). They may be None in
    training only (then nothing is updated). Inference (train=False) normalises with the
    running stats. Returns (y (N, D), saved_mean (D,), saved_inv_std (D,)): the statistics
    used. dtype = result_type(x, gamma, beta) (running stats are state; they keep their own).
    """
    x, gamma, beta, rm, rv, momentum, eps, train, dt = V.check_batchnorm_forward(
        x, gamma, beta, running_mean, running_var, momentum, eps, train
    )
    return _batchnorm(x, gamma, beta, rm, rv, momentum, eps, train, dt)


def batchnorm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    saved_mean: np.ndarray,
    saved_inv_std: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact gradient of the training-mode batchnorm_forward.

    dy and x are (N, D); gamma, saved_mean, saved_inv_std are (D,). With
    xhat = (x - mean)*inv_std: dbeta = sum_n dy, dgamma = sum_n dy*xhat,
    dx = gamma*inv_std/N * (N*dy - dbeta - xhat*dgamma). Returns (dx (N, D), dgamma, dbeta).
    """
    dy, x, gamma, mean, inv_std, dt = V.check_batchnorm_backward(
        dy, x, gamma, saved_mean, saved_inv_std
    )
    return _batchnorm_grad(dy, x, gamma, mean, inv_std, dt)


def spatial_batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    momentum: float = 0.9,
    eps: float = 1e-6,
    train: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel batch normalisation. x is (N,C,H,W), normalised over (N, H, W) per channel.

    gamma, beta, running stats and the returned saved_mean / saved_inv_std are (C,); y is
    (N,C,H,W). Same semantics as batchnorm_forward (in-place running update, momentum
    convention, biased running var).
    """
    x, gamma, beta, rm, rv, momentum, eps, train, dt = V.check_batchnorm_forward(
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        momentum,
        eps,
        train,
        spatial=True,
        where="spatial_batchnorm_forward",
    )
    y, mean, inv_std = _batchnorm(_nchw_to_rows(x), gamma, beta, rm, rv, momentum, eps, train, dt)
    return _rows_to_nchw(y, x.shape), mean, inv_std


def spatial_batchnorm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    saved_mean: np.ndarray,
    saved_inv_std: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of training-mode spatial_batchnorm_forward.

    dy and x are (N,C,H,W); gamma, saved_mean, saved_inv_std are (C,). Returns
    (dx (N,C,H,W), dgamma (C,), dbeta (C,)).
    """
    dy, x, gamma, mean, inv_std, dt = V.check_batchnorm_backward(
        dy, x, gamma, saved_mean, saved_inv_std, spatial=True, where="spatial_batchnorm_backward"
    )
    dx, dgamma, dbeta = _batchnorm_grad(
        _nchw_to_rows(dy), _nchw_to_rows(x), gamma, mean, inv_std, dt
    )
    return _rows_to_nchw(dx, x.shape), dgamma, dbeta


# ---------------------------------------------------------------------------------------------
# Optimizer updates. param and state arrays are updated IN PLACE (any float dtype; arithmetic
# in numpy's promoted dtype, stored back with a same-kind cast). They return None.
# ---------------------------------------------------------------------------------------------


def sgd_update(param: np.ndarray, grad: np.ndarray, lr: float) -> None:
    """param -= lr * grad, in place. param and grad share a shape."""
    param, grad, _, (lr,) = V.check_update("sgd_update", param, grad, (), (lr,))
    param -= lr * grad


def momentum_update(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> None:
    """velocity = momentum*velocity - lr*grad; param += velocity (both in place)."""
    param, grad, (velocity,), (lr, momentum) = V.check_update(
        "momentum_update", param, grad, (velocity,), (lr, momentum)
    )
    velocity[...] = momentum * velocity - lr * grad
    param += velocity


def nesterov_update(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> None:
    """Nesterov momentum in the "Deep Learning from Scratch" form, both updated in place:
    velocity = momentum*velocity - lr*grad;
    param += momentum*momentum*velocity - (1 + momentum)*lr*grad.
    """
    param, grad, (velocity,), (lr, momentum) = V.check_update(
        "nesterov_update", param, grad, (velocity,), (lr, momentum)
    )
    velocity[...] = momentum * velocity - lr * grad
    param += momentum * momentum * velocity - (1 + momentum) * lr * grad


def adagrad_update(
    param: np.ndarray, grad: np.ndarray, h: np.ndarray, lr: float, eps: float = 1e-7
) -> None:
    """AdaGrad: h += grad*grad; param -= lr*grad/(sqrt(h) + eps) (both in place)."""
    param, grad, (h,), (lr, eps) = V.check_update("adagrad_update", param, grad, (h,), (lr, eps))
    h += grad * grad
    param -= lr * grad / (np.sqrt(h) + eps)


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    h: np.ndarray,
    lr: float,
    decay_rate: float = 0.99,
    eps: float = 1e-7,
) -> None:
    """RMSprop: h = decay_rate*h + (1 - decay_rate)*grad*grad; param -= lr*grad/(sqrt(h) + eps)."""
    param, grad, (h,), (lr, decay_rate, eps) = V.check_update(
        "rmsprop_update", param, grad, (h,), (lr, decay_rate, eps)
    )
    h[...] = decay_rate * h + (1 - decay_rate) * grad * grad
    param -= lr * grad / (np.sqrt(h) + eps)


def _adam_step_size(lr: float, beta1: float, beta2: float, step: int) -> float:
    """Adam's bias-corrected step size lr*sqrt(1 - beta2**step)/(1 - beta1**step)."""
    return lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    step: int,
    eps: float = 1e-8,
) -> None:
    """Adam as in "Deep Learning from Scratch"; param, m and v are updated in place.

    step >= 1 is the 1-based update count. lr_t = lr*sqrt(1 - beta2**step)/(1 - beta1**step);
    m += (1 - beta1)*(g - m); v += (1 - beta2)*(g*g - v); param -= lr_t*m/(sqrt(v) + eps).
    """
    param, grad, (m, v), (lr, beta1, beta2, step, eps) = V.check_update(
        "adam_update", param, grad, (m, v), (lr, beta1, beta2, step, eps)
    )
    lr_t = _adam_step_size(lr, beta1, beta2, step)
    m += (1 - beta1) * (grad - m)
    v += (1 - beta2) * (grad * grad - v)
    param -= lr_t * m / (np.sqrt(v) + eps)
