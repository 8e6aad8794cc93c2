"""How a network's layers run: a ``Chain`` of steps (forward in order, backward in reverse,
with a convolution followed by a ReLU run as one fused step), and the layers that exist only
in networks — Flatten, GlobalAvgPool and Residual — built from the backend's functional ops.

The fused step computes ``relu(conv(x))`` with the convolution kernel's fused output pass and
gives both layers the state their own forwards would have left (the convolution its input,
the ReLU its output — which is <= 0 exactly where the convolution's output is), so backward
and every attribute are as if the two had run one after the other: bit for bit. When a max
pool follows the ReLU, the step takes it in too and keeps the pool's output and uint8 argmax
instead of the ReLU's output; the gradients are still those of the three layers one after
the other, bit for bit (see _ConvRelu).

Memory: a chain keeps only what backward needs, and only until backward has used it. Each
step releases its layers' forward state (Layer.release) as soon as its backward has run, and
right after its forward in inference mode, so a training step's activations are freed layer by
layer as the backward pass goes, and none outlive the step.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn.reference import layers as _ref

# Layers whose forward takes the train flag (both backends subclass these reference classes).
_TRAIN_AWARE = (_ref.Dropout, _ref._BatchNormBase)


class _Step:
    """One layer: forward(x, train), backward(dout, need_dx)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.train_aware = isinstance(layer, (*_TRAIN_AWARE, Residual))
        self.conv = isinstance(layer, _ref.Convolution)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        return self.layer.forward(x, train) if self.train_aware else self.layer.forward(x)

    def backward(self, dout: np.ndarray, need_dx: bool) -> np.ndarray | None:
        return self.layer.backward(dout, need_dx) if self.conv else self.layer.backward(dout)

    def release(self) -> None:
        self.layer.release()


class _ConvRelu:
    """A Convolution and the Relu after it, run by conv2d_relu_forward; with ``pool``, also
    the max Pooling after the ReLU.

    With a pool the ReLU's output y is not kept: ``out`` (the pool's output) and the pool's
    argmax are. The ReLU's backward then runs before the pool's, on out:
    pool_backward(relu_backward(dout, out)) is relu_backward(pool_backward(dout), y) bit for
    bit. The pool routes each gradient only to its window's argmax, where y holds that window's
    max, out; every other element gets +0 either way (and a NaN max fails ``> 0`` in both).
    The ReLU's and the pool's ``x`` stay None: only the convolution's input and the pool's
    ``arg_max`` (uint8 where the window allows) are set. PyTorch keeps the ReLU's output (also
    its max pool's input) and int64 indices: for pool1 of DeepConvNet at batch 100, 4.8 + 2.4
    MiB against this step's 1.2 + 0.3 MiB.
    """

    def __init__(self, conv: Any, relu: Any, F: ModuleType, pool: Any = None) -> None:
        self.conv, self.relu, self.pool, self.F = conv, relu, pool, F
        self.out: np.ndarray | None = None  # the pool's output (with a pool)
        self.y_shape: tuple[int, ...] | None = None  # the ReLU's output shape (with a pool)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        c, pool = self.conv, self.pool
        y = self.F.conv2d_relu_forward(x, c.W, c.b, c.stride, c.pad)
        c.x = x
        if pool is None:
            self.relu.x = y
            return y
        window = (pool.pool_h, pool.pool_w)
        argmax_dtype = V.smallest_argmax_dtype(pool.pool_h * pool.pool_w)
        out, pool.arg_max = self.F.max_pool2d_forward(
            y, window, pool.stride, pool.pad, argmax_dtype
        )
        self.out, self.y_shape = out, y.shape
        return out

    def backward(self, dout: np.ndarray, need_dx: bool) -> np.ndarray | None:
        pool = self.pool
        if pool is None:
            return self.conv.backward(self.relu.backward(dout), need_dx)
        d = self.F.relu_backward(dout, self.relu._saved(self.out))
        window = (pool.pool_h, pool.pool_w)
        d = self.F.max_pool2d_backward(
            d, pool._saved(pool.arg_max), self.y_shape, window, pool.stride, pool.pad
        )
        pool.release()  # the pool's state is used up: freed before the convolution's backward
        self.out = None
        return self.conv.backward(d, need_dx)

    def release(self) -> None:
        for layer in (self.conv, self.relu, self.pool):
            if layer is not None:
                layer.release()
        self.out = self.y_shape = None


class Chain:
    """Named layers run in order; ``layers`` is the name -> layer dict a model exposes."""

    def __init__(self, layers: dict[str, Any], F: ModuleType) -> None:
        self.layers = layers
        items = list(layers.values())
        self.steps: list[Any] = []
        i = 0
        while i < len(items):
            a, b, c = (items[i + j] if i + j < len(items) else None for j in range(3))
            if isinstance(a, _ref.Convolution) and isinstance(b, _ref.Relu):
                pool = c if isinstance(c, _ref.Pooling) else None
                self.steps.append(_ConvRelu(a, b, F, pool))
                i += 2 if pool is None else 3
            else:
                self.steps.append(_Step(a))
                i += 1

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """Every step in order; in inference mode (train False) no step keeps its state."""
        for step in self.steps:
            x = step.forward(x, train)
            if not train:
                step.release()
        return x

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Backward through every step, each releasing its forward state once done; the first
        computes no dx when need_dx is False (a network's first convolution: the image needs
        no gradient)."""
        for i in range(len(self.steps) - 1, -1, -1):
            step = self.steps[i]
            dx = step.backward(dout, need_dx or i > 0)
            del dout  # the gradient the step consumed is freed before the next step runs
            step.release()
            dout = dx
        return dout

    def release(self) -> None:
        for step in self.steps:
            step.release()


class Flatten(_ref.Layer):
    """(N, ...) -> (N, D); backward restores the input's shape."""

    forward_state = ("x_shape",)

    def __init__(self, F: ModuleType) -> None:
        self.F = F
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self._saved(self.x_shape))


class GlobalAvgPool(_ref.Layer):
    """(N, C, H, W) -> (N, C): the mean of each channel, as an average pool over the whole
    image (the backend's avg_pool2d ops)."""

    forward_state = ("x_shape",)

    def __init__(self, F: ModuleType) -> None:
        self.F = F
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        self.x_shape = x.shape
        return self.F.avg_pool2d_forward(x, (h, w), 1, 0).reshape(n, c)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        n, c, h, w = self._saved(self.x_shape)
        return self.F.avg_pool2d_backward(dout.reshape(n, c, 1, 1), (n, c, h, w), (h, w), 1, 0)


class Residual(_ref.Layer):
    """y = block(x) + shortcut(x); the shortcut is x, or a 1×1 Convolution of x."""

    def __init__(self, block: Chain, shortcut: Any | None) -> None:
        self.block = block
        self.shortcut = shortcut

    @property
    def layers(self) -> dict[str, Any]:
        return self.block.layers

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        y = self.block.forward(x, train_flg)
        return y + (x if self.shortcut is None else self.shortcut.forward(x))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = self.block.backward(dout)
        assert dx is not None
        return dx + (dout if self.shortcut is None else self.shortcut.backward(dout))

    def release(self) -> None:
        self.block.release()
        if self.shortcut is not None:
            self.shortcut.release()
