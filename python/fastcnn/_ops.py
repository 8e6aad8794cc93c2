"""Activations, softmax + cross-entropy, dropout, batch normalisation and in-place optimizer
updates on the compiled core, with the reference's names, signatures and result dtypes.

Arguments go through the same ``_validation`` checkers as ``fastcnn.reference``, so both
backends accept and reject the same calls with the same messages. Operands are promoted here
to the reference's result dtype (a widening, so exact) and made C-contiguous (a copy only when
they are not), outputs are allocated here, and each function is one or two ``_core`` calls.

Where the reference's numpy semantics are not what a kernel does, the call takes the
reference's own code path instead (same results by construction):

* 0-d inputs to the elementwise ops and dropout: numpy returns scalars there;
* sigmoid_backward with a float32 y and a float64 dy: numpy rounds 1 - y to float32;
* optimizer updates whose param / grad / state arrays do not all share one dtype (numpy
  computes each sub-expression in its own promoted dtype and casts back on store), or whose
  arrays overlap in memory (numpy's temporaries then see partly updated values).

Non-contiguous in-place arrays are updated through a contiguous copy that is written back.
Batchnorm's O(C) per-channel arithmetic (running-stat update, inv_std) is the reference's
numpy expression verbatim, so running stats of any dtype update exactly as there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn._env import _core
from fastcnn.reference import functional as R

_c = V.kernel_array  # C-contiguous and aligned, as the kernels take arrays

__all__ = [
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
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


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


def _unary_forward(where: str, kernel: Callable[..., None], x: np.ndarray) -> np.ndarray:
    """kernel (_core.<where>) elementwise into a new array of x's dtype (0-d x: the reference's).

    Written for one-image calls too, where a numpy ufunc costs ~0.5 us: no copy of a
    C-contiguous x, and empty_like (cheaper than empty(shape, dtype)) for the output.
    """
    x = V.check_unary_forward(x, where)
    if x.ndim == 0:
        return getattr(R, where)(x)
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = _c(x)
    y = np.empty_like(x)
    kernel(x, y)
    return y


def relu_forward(x: np.ndarray) -> np.ndarray:
    """y = max(x, 0) elementwise, any shape, x's dtype; NaN propagates (and -0 gives +0)."""
    return _unary_forward("relu_forward", _core.relu_forward, x)


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dy where x > 0 else 0 (also for NaN x); dy and x share a shape.

    dtype = result_type(dy, x).
    """
    dy, x, dt = V.check_unary_backward(dy, x, "x", "relu_backward")
    if dy.ndim == 0:
        return R.relu_backward(dy, x)
    dx = np.empty(dy.shape, dtype=dt)
    _core.relu_backward(_c(dy, dt), _c(x, dt), dx)
    return dx


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """y = 1 / (1 + exp(-x)) elementwise, x's dtype, through exp(-|x|) (never overflows)."""
    return _unary_forward("sigmoid_forward", _core.sigmoid_forward, x)


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), with y the forward output. dtype = result_type(dy, y)."""
    dy, y, dt = V.check_unary_backward(dy, y, "y", "sigmoid_backward")
    if dy.ndim == 0 or y.dtype != dt:  # float32 y, float64 dy: numpy forms 1 - y in float32
        return R.sigmoid_backward(dy, y)
    dx = np.empty(dy.shape, dtype=dt)
    _core.sigmoid_backward(_c(dy, dt), _c(y, dt), dx)
    return dx


# ---------------------------------------------------------------------------------------------
# Softmax and cross-entropy
# ---------------------------------------------------------------------------------------------


def _targets(t: np.ndarray, labels: bool, dt: np.dtype) -> np.ndarray:
    # Labels were range-checked by the validator, so int64 holds them (uint64 included).
    return _c(t, np.int64) if labels else _c(t, dt)


def softmax_cross_entropy_forward(x: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax followed by cross-entropy, averaged over the batch.

    x is (N, M) logits; t is either integer class labels (N,) (any int dtype, each in [0, M))
    or float targets (N, M). loss = mean_n(-sum_m t[n,m] * log_softmax(x)[n,m]) as a Python
    float (sums accumulate in float64, then round to the result dtype); p = softmax(x) (N, M).
    dtype of p = result_type(x) for labels, (x, t) for targets.
    """
    x, t, labels, dt = V.check_softmax_xent_forward(x, t)
    p = np.empty(x.shape, dtype=dt)
    loss = _core.softmax_cross_entropy_forward(_c(x, dt), _targets(t, labels, dt), p)
    return float(loss), p


def softmax_cross_entropy_backward(p: np.ndarray, t: np.ndarray, dout: float = 1.0) -> np.ndarray:
    """Gradient of softmax_cross_entropy_forward w.r.t. the logits.

    p is (N, M) from the forward pass; t as in the forward pass; dout a scalar.
    dx = (p - onehot(t)) * dout / N, shape (N, M); dtype as the forward pass's p.
    """
    p, t, labels, dout, dt = V.check_softmax_xent_backward(p, t, dout)
    dx = np.empty(p.shape, dtype=dt)
    _core.softmax_cross_entropy_backward(_c(p, dt), _targets(t, labels, dt), dout / p.shape[0], dx)
    return dx


# ---------------------------------------------------------------------------------------------
# Dropout: the reference's splitmix64 counter stream, so masks are identical bit for bit.
# ---------------------------------------------------------------------------------------------


def dropout_mask(
    shape: int | tuple[int, ...], ratio: float, seed: int, *, offset: int = 0
) -> np.ndarray:
    """Bool keep-mask of ``shape``; each element is dropped with probability ``ratio``.

    Exactly fastcnn.reference.dropout_mask: key = splitmix64(seed); element i (C order) is
    kept when float64(splitmix64(key + offset + i) >> 11) * 2**-53 >= ratio.
    """
    shape, ratio, seed = V.check_dropout_mask(shape, ratio, seed)
    offset = V.check_offset(offset, "dropout_mask")
    keep = np.empty(shape, dtype=np.bool_)
    _core.dropout_mask(keep, ratio, seed, offset)
    return keep


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

    Training: exactly one of ``seed`` (mask = dropout_mask(x.shape, ratio, seed, offset=offset),
    generated in
    the same pass as y) or ``mask`` (a bool array of x.shape) must be given; y = x * mask, with
    no rescaling. Inference (train=False): y = x * (1 - ratio) and mask is None. y has x's dtype.
    """
    x, ratio, train, seed, mask = V.check_dropout_forward(x, ratio, train, seed, mask)
    offset = V.check_offset(offset, "dropout_forward")
    if x.ndim == 0:
        return R.dropout_forward(x, ratio, train, seed=seed, mask=mask, offset=offset)
    y = np.empty(x.shape, dtype=x.dtype)
    if not train:
        _core.scale_forward(_c(x), 1.0 - ratio, y)
        return y, None
    if mask is None:
        assert seed is not None  # check_dropout_forward: exactly one of seed and mask
        mask = np.empty(x.shape, dtype=np.bool_)
        _core.dropout_forward(_c(x), ratio, seed, mask, y, offset)
    else:
        _core.dropout_apply(_c(x), _c(mask), y)
    return y, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dx = dy * mask (mask: the bool array from dropout_forward, shaped like dy)."""
    dy, mask = V.check_dropout_backward(dy, mask)
    if dy.ndim == 0:
        return R.dropout_backward(dy, mask)
    dx = np.empty(dy.shape, dtype=dy.dtype)
    _core.dropout_apply(_c(dy), _c(mask), dx)
    return dx


# ---------------------------------------------------------------------------------------------
# Batch normalisation. The kernels read (N, D) and (N, C, H, W) directly; no transposes.
# ---------------------------------------------------------------------------------------------


def _batchnorm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    momentum: float,
    eps: float,
    train: bool,
    dt: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xc = _c(x, dt)
    # check_batchnorm_forward: running_mean and running_var are both given or both None, and
    # given in inference.
    if train:
        mean = np.empty(x.shape[1], dtype=dt)
        var = np.empty(x.shape[1], dtype=dt)
        _core.batchnorm_stats(xc, mean, var)
        if running_mean is not None:  # the reference's own update: same promotion, in place
            assert running_var is not None
            R._update_running_stats(running_mean, running_var, mean, var, momentum)
    else:
        assert running_var is not None
        mean = np.array(running_mean, dtype=dt, order="C")  # a copy, as the reference's astype
        var = running_var.astype(dt)
    inv_std = _c(1 / np.sqrt(var + eps), dt)
    y = np.empty(x.shape, dtype=dt)
    _core.batchnorm_apply(xc, _c(gamma, dt), _c(beta, dt), mean, inv_std, y)
    return y, mean, inv_std


def _batchnorm_grad(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    dt: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx = np.empty(x.shape, dtype=dt)
    dgamma = np.empty(x.shape[1], dtype=dt)
    dbeta = np.empty(x.shape[1], dtype=dt)
    _core.batchnorm_backward(
        _c(dy, dt), _c(x, dt), _c(gamma, dt), _c(mean, dt), _c(inv_std, dt), dx, dgamma, dbeta
    )
    return dx, dgamma, dbeta


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

    Training: mean and biased var over the batch (accumulated in float64, two passes),
    inv_std = 1/sqrt(var + eps), y = gamma*(x - mean)*inv_std + beta; running_mean and
    running_var are updated IN PLACE: running = momentum*running + (1 - momentum)*batch_stat.
    They may be None in training only. Inference (train=False) normalises with the running
    stats. Returns (y (N, D), saved_mean (D,), saved_inv_std (D,)).
    dtype = result_type(x, gamma, beta) (running stats keep their own).
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
    (N,C,H,W). Same semantics as batchnorm_forward.
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
    return _batchnorm(x, gamma, beta, rm, rv, momentum, eps, train, dt)


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
    return _batchnorm_grad(dy, x, gamma, mean, inv_std, dt)


# ---------------------------------------------------------------------------------------------
# Optimizer updates: one fused pass, in place, bit-identical to the reference.
# ---------------------------------------------------------------------------------------------


def _kernel_ok(param: np.ndarray, grad: np.ndarray, states: list[np.ndarray]) -> bool:
    """True when the fused kernel reproduces the reference: one dtype, no overlapping arrays."""
    arrays = [param, grad, *states]
    # float16 or byte-swapped in-place arrays are updated by the reference's numpy.
    if param.dtype not in V.FLOAT_DTYPES or any(a.dtype != param.dtype for a in arrays):
        return False
    return not any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1 :])


def _update(
    where: str,
    param: np.ndarray,
    grad: np.ndarray,
    states: tuple[Any, ...],
    scalars: tuple[Any, ...],
    kernel_scalars: Callable[[list[Any]], list[float]] = lambda checked: checked,
) -> None:
    """Optimizer update `where` after the reference's checks: the fused kernel
    _core.<where>(param, grad, *states, *kernel_scalars(scalars)) on C-contiguous arrays (a
    non-contiguous in-place array is updated through a contiguous copy that is then written
    back), or the reference itself where the kernel would not reproduce it."""
    param, grad, checked_states, checked = V.check_update(where, param, grad, states, scalars)
    if not _kernel_ok(param, grad, checked_states):
        getattr(R, where)(param, grad, *checked_states, *checked)
        return
    work = [_c(a) for a in (param, *checked_states)]
    getattr(_core, where)(work[0], _c(grad), *work[1:], *kernel_scalars(checked))
    for orig, w in zip((param, *checked_states), work):
        if w is not orig:
            orig[...] = w


def sgd_update(param: np.ndarray, grad: np.ndarray, lr: float) -> None:
    """param -= lr * grad, in place. param and grad share a shape."""
    _update("sgd_update", param, grad, (), (lr,))


def momentum_update(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> None:
    """velocity = momentum*velocity - lr*grad; param += velocity (both in place)."""
    _update("momentum_update", param, grad, (velocity,), (lr, momentum))


def nesterov_update(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> None:
    """Nesterov momentum in the "Deep Learning from Scratch" form, both updated in place:
    velocity = momentum*velocity - lr*grad;
    param += momentum*momentum*velocity - (1 + momentum)*lr*grad.
    """
    _update("nesterov_update", param, grad, (velocity,), (lr, momentum))


def adagrad_update(
    param: np.ndarray, grad: np.ndarray, h: np.ndarray, lr: float, eps: float = 1e-7
) -> None:
    """AdaGrad: h += grad*grad; param -= lr*grad/(sqrt(h) + eps) (both in place)."""
    _update("adagrad_update", param, grad, (h,), (lr, eps))


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    h: np.ndarray,
    lr: float,
    decay_rate: float = 0.99,
    eps: float = 1e-7,
) -> None:
    """RMSprop: h = decay_rate*h + (1 - decay_rate)*grad*grad; param -= lr*grad/(sqrt(h) + eps)."""
    _update("rmsprop_update", param, grad, (h,), (lr, decay_rate, eps))


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

    def kernel_scalars(checked: list[Any]) -> list[float]:
        # The kernel takes the bias-corrected step size in place of lr and step.
        lr_, beta1_, beta2_, step_, eps_ = checked
        return [R._adam_step_size(lr_, beta1_, beta2_, step_), beta1_, beta2_, eps_]

    _update("adam_update", param, grad, (m, v), (lr, beta1, beta2, step, eps), kernel_scalars)
