"""How a network's layers run: a ``Chain`` of steps (forward in order, backward in reverse,
with a convolution followed by a ReLU run as one fused step), and the layers that exist only
in networks — Flatten, GlobalAvgPool and Residual — built from the backend's functional ops.

The fused step computes ``relu(conv(x))`` with the convolution kernel's fused output pass and
gives both layers the state their own forwards would have left (the convolution its input,
the ReLU its output — which is <= 0 exactly where the convolution's output is), so backward
and every attribute are as if the two had run one after the other: bit for bit.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

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


class _ConvRelu:
    """A Convolution and the Relu after it, run by conv2d_relu_forward."""

    def __init__(self, conv: Any, relu: Any, F: ModuleType) -> None:
        self.conv, self.relu, self.F = conv, relu, F

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        c = self.conv
        y = self.F.conv2d_relu_forward(x, c.W, c.b, c.stride, c.pad)
        c.x, self.relu.x = x, y
        return y

    def backward(self, dout: np.ndarray, need_dx: bool) -> np.ndarray | None:
        return self.conv.backward(self.relu.backward(dout), need_dx)


class Chain:
    """Named layers run in order; ``layers`` is the name -> layer dict a model exposes."""

    def __init__(self, layers: dict[str, Any], F: ModuleType) -> None:
        self.layers = layers
        items = list(layers.values())
        self.steps: list[Any] = []
        i = 0
        while i < len(items):
            a = items[i]
            b = items[i + 1] if i + 1 < len(items) else None
            if isinstance(a, _ref.Convolution) and isinstance(b, _ref.Relu):
                self.steps.append(_ConvRelu(a, b, F))
                i += 2
            else:
                self.steps.append(_Step(a))
                i += 1

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        for step in self.steps:
            x = step.forward(x, train)
        return x

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Backward through every step; the first computes no dx when need_dx is False (a
        network's first convolution: the image needs no gradient)."""
        for step in reversed(self.steps[1:]):
            dout = step.backward(dout, True)
        return self.steps[0].backward(dout, need_dx)


class Flatten(_ref.Layer):
    """(N, ...) -> (N, D); backward restores the input's shape."""

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
