"""Turning layer specs into a network's objects: layer names (Conv1, Relu1, ...), parameter
names and order (W1, b1, ... for convolutions and affines, gamma1, beta1 for batch norms, in
layer order), weight initialisation, dropout seeds and the summary rows.

Three modes (see Sequential._build_mode): "init" draws the weights, "zeros" leaves them for a
file's params to overwrite (no random draws), "plan" makes no arrays at all — only the names
and shapes of params and state — so a model file is checked against its architecture before
a byte is allocated for it.
"""

from __future__ import annotations

import math
from collections import Counter
from types import ModuleType
from typing import Any

import numpy as np

from fastcnn.models import _blocks
from fastcnn.models._specs import LayerSpec, Residual, Shape, chain_shape

# Weight init: the std of W's normal draw for fan_in inputs, as the classic code's
# MultiLayerNet: He (ReLU) sqrt(2 / fan_in), Xavier (sigmoid) sqrt(1 / fan_in).
_INIT_GAIN = {"he": 2.0, "xavier": 1.0}


class Builder:
    def __init__(self, L: ModuleType, F: ModuleType, dtype: np.dtype, seed: int, mode: str) -> None:
        self.L, self.F, self.dtype, self.seed, self.mode = L, F, dtype, seed, mode
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        self.grad_of: dict[str, tuple[Any, str]] = {}  # param key -> (layer, gradient attr)
        self.param_shapes: dict[str, tuple[int, ...]] = {}  # what params holds, or will
        # "<layer>/<attr>" -> shape of the arrays a model file keeps beside its params
        self.state_shapes: dict[str, tuple[int, ...]] = {}
        self.state: dict[str, tuple[Any, str]] = {}  # "<layer>/<attr>" -> (layer, attr)
        self.dropouts: dict[str, Any] = {}  # every Dropout layer, nested ones too
        self.rows: list[tuple[int, str, str, Shape, int]] = []  # depth, name, type, out, params
        self._counts: Counter[str] = Counter()
        self._n_weighted = self._n_bn = self._n_dropout = 0
        self._levels: list[dict[str, Any]] = []  # the chains being built, innermost last
        self._init: str | float = "he"  # the weighted layer being built gets this init

    # -- chains -----------------------------------------------------------------------------

    def chain(self, specs: list[LayerSpec], shape: Shape) -> tuple[_blocks.Chain, Shape]:
        """Build ``specs`` on an input of ``shape``: (the chain, its output shape)."""
        chain_shape(specs, shape)  # every shape checked before anything is built
        self._levels.append({})
        depth = len(self._levels) - 1
        for i, spec in enumerate(specs):
            if spec.weighted:
                self._init = _resolve_init(spec.init, specs[i + 1 :], self._init)
            n_before = sum(math.prod(s) for s in self.param_shapes.values())
            first = len(self.rows)
            out = spec.build(self, shape)
            n = sum(math.prod(s) for s in self.param_shapes.values()) - n_before
            name = list(self._levels[-1])[-1]
            self.rows.insert(first, (depth, name, spec.type, out, n))
            shape = out
        return _blocks.Chain(self._levels.pop(), self.F), shape

    def add(self, prefix: str, layer: Any) -> str:
        """Append ``layer`` to the chain being built, named prefix + its 1-based count over
        the whole network (Conv1, Relu1, Pool1, ...: unique, nested blocks included)."""
        self._counts[prefix] += 1
        name = f"{prefix}{self._counts[prefix]}"
        self._levels[-1][name] = layer
        return name

    def make_simple(self, kind: str) -> Any:
        """The layer object of a type without options or params."""
        if kind == "relu":
            return self.L.Relu()
        if kind == "sigmoid":
            return self.L.Sigmoid()
        if kind == "flatten":
            return _blocks.Flatten(self.F)
        if kind == "globalavgpool":
            return _blocks.GlobalAvgPool(self.F)
        raise AssertionError(kind)

    # -- weighted layers ----------------------------------------------------------------------

    def _weights(self, shape: tuple[int, ...], fan_in: int, init: str | float) -> np.ndarray:
        """W drawn in float64 from the model's one generator, in layer order, then cast:
        identical on every backend and for both dtypes up to the final rounding."""
        if self.mode == "zeros":
            return np.zeros(shape, self.dtype)
        std = init if isinstance(init, float) else math.sqrt(_INIT_GAIN[init] / fan_in)
        return (self.rng.standard_normal(shape) * std).astype(self.dtype)

    def _weighted(self, prefix: str, w_shape: tuple[int, ...], b_size: int, init: Any, make: Any):
        self._n_weighted += 1
        i = self._n_weighted
        self.param_shapes[f"W{i}"], self.param_shapes[f"b{i}"] = w_shape, (b_size,)
        if self.mode == "plan":
            return self.add(prefix, None), None
        fan_in = math.prod(w_shape[1:]) if prefix == "Conv" else w_shape[0]
        layer = make(self._weights(w_shape, fan_in, init), np.zeros(b_size, self.dtype))
        self.params[f"W{i}"], self.params[f"b{i}"] = layer.W, layer.b
        self.grad_of[f"W{i}"], self.grad_of[f"b{i}"] = (layer, "dW"), (layer, "db")
        return self.add(prefix, layer), layer

    def add_conv(self, w_shape: tuple[int, ...], stride: Any, pad: Any) -> Any:
        """A Convolution with W (K, C, R, S), b (K,): fan_in C*R*S."""
        st, pd = _int_or_pair(stride), _int_or_pair(pad)
        make = lambda w, b: self.L.Convolution(w, b, stride=st, pad=pd)  # noqa: E731
        return self._weighted("Conv", w_shape, w_shape[0], self._init, make)[1]

    def add_affine(self, w_shape: tuple[int, int]) -> None:
        """An Affine with W (D, M), b (M,): fan_in D."""
        self._weighted("Affine", w_shape, w_shape[1], self._init, self.L.Affine)

    # -- other layers with state --------------------------------------------------------------

    def add_dropout(self, ratio: float) -> None:
        # Each dropout layer gets its own 64-bit seed derived from the model seed (independent
        # of the weight draws), so masks are the same on both backends and across save/load.
        seed_seq = np.random.SeedSequence([self.seed, 1, self._n_dropout])
        self._n_dropout += 1
        layer = self.L.Dropout(ratio, seed=int(seed_seq.generate_state(1, np.uint64)[0]))
        self.dropouts[self.add("Dropout", layer)] = layer

    def add_batchnorm(self, size: int, spatial: bool, momentum: float) -> None:
        """gamma (ones), beta (zeros) as params gamma<j>, beta<j>; the running mean and
        variance (zeros, as the classic layer starts them) as state kept in model files."""
        self._n_bn += 1
        j = self._n_bn
        keys = (f"gamma{j}", f"beta{j}")
        for key in keys:
            self.param_shapes[key] = (size,)
        if self.mode == "plan":
            name = self.add("BatchNorm", None)
            for attr in ("running_mean", "running_var"):
                self.state_shapes[f"{name}/{attr}"] = (size,)
            return
        cls = self.L.SpatialBatchNormalization if spatial else self.L.BatchNormalization
        zeros = lambda: np.zeros(size, self.dtype)  # noqa: E731
        layer = cls(np.ones(size, self.dtype), zeros(), momentum, zeros(), zeros())
        name = self.add("BatchNorm", layer)
        self.params[keys[0]], self.params[keys[1]] = layer.gamma, layer.beta
        self.grad_of[keys[0]], self.grad_of[keys[1]] = (layer, "dgamma"), (layer, "dbeta")
        for attr in ("running_mean", "running_var"):
            self.state_shapes[f"{name}/{attr}"] = (size,)
            self.state[f"{name}/{attr}"] = (layer, attr)

    def add_residual(self, spec: Residual, shape: Shape) -> Shape:
        """The block's layers (numbered on from the network's), then its 1×1 convolution
        shortcut when there is one (He init: a ReLU follows a residual block in ResNet)."""
        stride = spec.projection(shape)
        block, out = self.chain(spec.layers, shape)
        shortcut = None
        if stride is not None:
            n_before = sum(math.prod(s) for s in self.param_shapes.values())
            shortcut = self._weighted_shortcut((out[0], shape[0], 1, 1), stride)
            n = sum(math.prod(s) for s in self.param_shapes.values()) - n_before
            self.rows.append(
                (len(self._levels), f"shortcut W{self._n_weighted}", "conv 1×1", out, n)
            )
        self.add("Residual", None if self.mode == "plan" else _blocks.Residual(block, shortcut))
        return out

    def _weighted_shortcut(self, w_shape: tuple[int, ...], stride: tuple[int, int]) -> Any:
        st = _int_or_pair(stride)
        self._levels.append({})  # the shortcut is the residual's own, not a layer of the chain
        make = lambda w, b: self.L.Convolution(w, b, stride=st, pad=0)  # noqa: E731
        layer = self._weighted("Conv", w_shape, w_shape[0], "he", make)[1]
        self._levels.pop()
        return layer


def _resolve_init(init: str | float, after: list[LayerSpec], previous: str | float) -> str | float:
    """Resolve init "auto": He if the next activation (before the next weighted layer) is a
    ReLU, Xavier if it is a sigmoid, else (an output layer) the init of the layer before."""
    if init != "auto":
        return init
    for spec in after:
        if spec.activation is not None:
            return spec.activation
        if spec.weighted:
            break
    return previous


def _int_or_pair(p: Any) -> Any:
    """An int where both axes agree, as the classic layers are given and compared."""
    return int(p[0]) if p[0] == p[1] else (int(p[0]), int(p[1]))
