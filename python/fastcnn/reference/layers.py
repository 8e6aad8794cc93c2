"""Layer classes with forward/backward state, thin wrappers over the reference functional ops.

Drop-in for the classic numpy "Deep Learning from Scratch" layers (same names, arguments and
attributes). The math lives in the functional module; no optimizer or model logic here.

Backend swap: every layer calls its ops through the class attribute ``F`` (this package's
reference functional module by default). A fast backend gets its layers by subclassing with
``F = fastcnn.functional``; see ``Layer``.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, Union

import numpy as np

from .. import _validation as V
from . import functional as _reference_functional
from .functional import _splitmix64_int

__all__ = [
    "Layer",
    "Convolution",
    "Pooling",
    "AvgPooling",
    "Affine",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Dropout",
    "BatchNormalization",
    "SpatialBatchNormalization",
    "LAYER_CLASSES",
]

IntOrPair = Union[int, tuple[int, int]]


class Layer:
    """Base class: ``F`` is the functional module every op is looked up on at call time.

    A fast backend defines e.g. ``class Convolution(reference.layers.Convolution): F = fast_F``
    (or loops over LAYER_CLASSES) and inherits all state handling unchanged.
    """

    F: ModuleType = _reference_functional
    # The attributes forward sets for backward (one entry per layer class): what release()
    # drops.
    forward_state: tuple[str, ...] = ()

    def release(self) -> None:
        """Drop what the last forward saved for backward; backward then raises until the next
        forward. A model's chain calls this as soon as a layer's backward has run (and after
        an inference forward), so each layer's activations are freed as the backward pass goes
        instead of living until the next forward replaces them. Layers used on their own keep
        their state, as the classic layers do."""
        for name in self.forward_state:
            setattr(self, name, None)

    def _saved(self, value: Any) -> Any:
        """A value the last forward saved for backward; a clear error if there was none."""
        if value is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward was called before forward: there is no saved "
                "forward state to differentiate"
            )
        return value


class Convolution(Layer):
    """2-D convolution layer. W is (K,C,R,S), b is (K,); x is (N,C,H,W) -> y (N,K,P,Q)."""

    forward_state = ("x",)

    def __init__(
        self, W: np.ndarray, b: np.ndarray, stride: IntOrPair = 1, pad: IntOrPair = 0
    ) -> None:
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return self.F.conv2d_forward(x, self.W, self.b, self.stride, self.pad)

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Sets dW and db and returns dx; with need_dx=False (a network's first layer, whose
        input needs no gradient) dx is not computed and None is returned."""
        dx, self.dW, self.db = self.F.conv2d_backward(
            dout, self._saved(self.x), self.W, self.stride, self.pad, need_dx
        )
        return dx


class Pooling(Layer):
    """Max pooling layer over (pool_h, pool_w) windows. x (N,C,H,W) -> y (N,C,P,Q)."""

    forward_state = ("x", "arg_max")

    def __init__(self, pool_h: int, pool_w: int, stride: IntOrPair = 2, pad: IntOrPair = 0) -> None:
        # stride defaults to 2, as in the classic code's Pooling
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x: np.ndarray | None = None
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self.arg_max = self.F.max_pool2d_forward(
            x, (self.pool_h, self.pool_w), self.stride, self.pad
        )
        self.x = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.F.max_pool2d_backward(
            dout,
            self._saved(self.arg_max),
            np.shape(self._saved(self.x)),
            (self.pool_h, self.pool_w),
            self.stride,
            self.pad,
        )


class AvgPooling(Layer):
    """Average pooling layer (padding counts as zeros). x (N,C,H,W) -> y (N,C,P,Q)."""

    forward_state = ("x_shape",)

    def __init__(self, pool_h: int, pool_w: int, stride: IntOrPair = 2, pad: IntOrPair = 0) -> None:
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.F.avg_pool2d_forward(x, (self.pool_h, self.pool_w), self.stride, self.pad)
        self.x_shape = np.shape(x)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.F.avg_pool2d_backward(
            dout, self._saved(self.x_shape), (self.pool_h, self.pool_w), self.stride, self.pad
        )


class Affine(Layer):
    """Fully connected layer. W is (D, M), b is (M,); x (N, ...) is flattened to (N, D)."""

    forward_state = ("x", "original_x_shape")

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W = W
        self.b = b
        self.x: np.ndarray | None = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        y = self.F.affine_forward(x, self.W, self.b)
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, self.dW, self.db = self.F.affine_backward(dout, self._saved(self.x), self.W)
        return dx.reshape(self.original_x_shape)


class Relu(Layer):
    """ReLU. ``mask`` (x <= 0) is derived from the saved input on demand."""

    forward_state = ("x",)

    def __init__(self) -> None:
        self.x: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray | None:
        return None if self.x is None else np.asarray(self.x) <= 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.F.relu_forward(x)
        self.x = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.F.relu_backward(dout, self._saved(self.x))


class Sigmoid(Layer):
    """Logistic sigmoid; keeps its output in ``out`` for the backward pass."""

    forward_state = ("out",)

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = self.F.sigmoid_forward(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.F.sigmoid_backward(dout, self._saved(self.out))


class SoftmaxWithLoss(Layer):
    """Softmax + cross-entropy. x (N, M) logits; t labels (N,) or float targets (N, M).

    forward returns the batch-mean loss (a Python float); ``y`` holds the probabilities.
    """

    forward_state = ("y", "t")

    def __init__(self) -> None:
        self.loss: float | None = None
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.loss, self.y = self.F.softmax_cross_entropy_forward(x, t)
        self.t = t
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        return self.F.softmax_cross_entropy_backward(self._saved(self.y), self.t, dout)


class Dropout(Layer):
    """Classic dropout: training multiplies by a fresh 0/1 mask (no rescaling), inference by
    1 - dropout_ratio.

    With a seed, call k (0, 1, 2, ... counting training-mode forwards) uses the mask seed
    splitmix64((seed + k) mod 2**64), generated inside the kernel: masks are reproducible and
    independent of the backend. With seed=None every training forward draws its mask as the
    classic code does, ``np.random.rand(*x.shape) > dropout_ratio`` from numpy's global RNG, so
    code written for the classic layers sees the same masks and the same random stream after
    ``np.random.seed(...)``.

    ``first_row`` (0 by default) is the row of a larger batch this layer's input starts at: a
    data-parallel rank that runs rows lo:hi of a global batch sets it to lo, and its seeded
    mask is then exactly those rows of the mask the whole batch would get (dropout_mask's
    offset), so the ranks together drop what one process would.
    """

    forward_state = ("mask",)

    def __init__(self, dropout_ratio: float = 0.5, seed: int | None = None) -> None:
        self.dropout_ratio = dropout_ratio
        self.seed = None if seed is None else V.check_seed(seed, "Dropout")
        self.calls = 0  # training-mode forwards so far; part of the reproducible state
        self.first_row = 0
        self.mask: np.ndarray | None = None

    def _next_seed(self) -> int:
        assert self.seed is not None  # forward draws from the global RNG without a seed
        call_seed = _splitmix64_int((int(self.seed) + self.calls) & ((1 << 64) - 1))
        self.calls += 1
        return call_seed

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        if not train_flg:
            y, _ = self.F.dropout_forward(x, self.dropout_ratio, False)
            return y
        if self.seed is None:
            # The legacy global RNG on purpose, drawn as the classic code draws it.
            mask = np.random.rand(*np.shape(x)) > self.dropout_ratio  # noqa: NPY002
            self.calls += 1
            y, self.mask = self.F.dropout_forward(x, self.dropout_ratio, True, mask=mask)
            return y
        shape = np.shape(x)
        offset = self.first_row * math.prod(shape[1:]) if shape else 0
        y, self.mask = self.F.dropout_forward(
            x, self.dropout_ratio, True, seed=self._next_seed(), offset=offset
        )
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.F.dropout_backward(dout, self._saved(self.mask))


class _BatchNormBase(Layer):
    _spatial = False
    forward_state = ("input_shape", "x", "saved_mean", "saved_inv_std")

    def __init__(
        self,
        gamma: np.ndarray,
        beta: np.ndarray,
        momentum: float = 0.9,
        running_mean: np.ndarray | None = None,
        running_var: np.ndarray | None = None,
    ) -> None:
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.eps = 1e-6
        self.input_shape: tuple[int, ...] | None = None
        self.x: np.ndarray | None = None
        self.saved_mean: np.ndarray | None = None
        self.saved_inv_std: np.ndarray | None = None
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None

    def _to_op_layout(self, a: np.ndarray) -> np.ndarray:
        return a

    def _from_op_layout(self, a: np.ndarray) -> np.ndarray:
        return a

    def _fns(self) -> tuple[Any, Any]:
        if self._spatial:
            return self.F.spatial_batchnorm_forward, self.F.spatial_batchnorm_backward
        return self.F.batchnorm_forward, self.F.batchnorm_backward

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        x = np.asarray(x)
        self.input_shape = x.shape
        xo = self._to_op_layout(x)
        if self.running_mean is None and xo.ndim >= 2:
            dt = V.promoted_dtype(xo, self.gamma, self.beta)  # float16/int inputs: float
            self.running_mean = np.zeros(xo.shape[1], dtype=dt)
            self.running_var = np.zeros(xo.shape[1], dtype=dt)
        fwd, _ = self._fns()
        y, self.saved_mean, self.saved_inv_std = fwd(
            xo,
            self.gamma,
            self.beta,
            self.running_mean,
            self.running_var,
            self.momentum,
            self.eps,
            bool(train_flg),
        )
        self.x = xo
        return self._from_op_layout(y)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Gradient of the training-mode forward, using the statistics of the last forward."""
        _, bwd = self._fns()
        dx, self.dgamma, self.dbeta = bwd(
            self._to_op_layout(np.asarray(dout)),
            self._saved(self.x),
            self.gamma,
            self.saved_mean,
            self.saved_inv_std,
        )
        return self._from_op_layout(dx)


class BatchNormalization(_BatchNormBase):
    """Batch norm over the batch axis. x is (N, D), or any (N, ...) input which is normalised
    per feature of its flattened view (e.g. per C*H*W element of (N,C,H,W)) and reshaped back.

    gamma, beta and the running stats are (D,); running stats start as zeros when None.
    """

    def _to_op_layout(self, a: np.ndarray) -> np.ndarray:
        if a.ndim in (0, 2):
            return a  # 0-d is left for the functional op to reject
        return a.reshape(a.shape[0], math.prod(a.shape[1:]))

    def _from_op_layout(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.input_shape)


class SpatialBatchNormalization(_BatchNormBase):
    """Per-channel batch norm of x (N,C,H,W) over (N, H, W); gamma, beta, running stats (C,)."""

    _spatial = True


LAYER_CLASSES = (
    Convolution,
    Pooling,
    AvgPooling,
    Affine,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Dropout,
    BatchNormalization,
    SpatialBatchNormalization,
)
