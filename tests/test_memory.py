"""Memory: what a network keeps between its forward and backward passes.

A model's chain keeps only what backward needs (a convolution's input, a ReLU's output, and
after a ReLU + max pool only the pool's output and uint8 argmax) and frees it as backward goes;
an inference forward keeps nothing. No timings anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastcnn import functional as F
from fastcnn import models
from fastcnn.models import _blocks
from fastcnn.reference import functional as R
from fastcnn.reference import layers as ref_layers

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["fast", "reference"]


def _steps(chain: _blocks.Chain) -> list[Any]:
    """Every step of a chain, those of residual blocks' chains too."""
    out = []
    for step in chain.steps:
        out.append(step)
        layer = getattr(step, "layer", None)
        if isinstance(layer, _blocks.Residual):
            out += _steps(layer.block)
    return out


def _kept(model: Any) -> list[np.ndarray]:
    """The arrays a model's layers and chain steps hold for a backward pass."""
    arrays: list[Any] = []
    for step in _steps(model._chain):
        if isinstance(step, _blocks._ConvRelu):
            layers = [step.conv, step.relu, step.pool]
            arrays.append(step.out)
        else:
            layers = [step.layer]
            if isinstance(step.layer, _blocks.Residual) and step.layer.shortcut is not None:
                layers.append(step.layer.shortcut)
        for layer in layers:
            if layer is not None:
                arrays += [getattr(layer, name) for name in layer.forward_state]
    return [a for a in arrays if isinstance(a, np.ndarray)]


def _kept_bytes(model: Any) -> int:
    """Bytes of the distinct arrays that own the memory behind _kept (a view counts as the
    array it views, once)."""
    owners: dict[int, int] = {}
    for a in _kept(model):
        while isinstance(a.base, np.ndarray):
            a = a.base
        owners[id(a)] = a.nbytes
    return sum(owners.values())


def _batch(model: Any, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_dim), dtype=np.float32)
    return x, rng.integers(0, model.output_size, n)


def _small_resnet(backend: str) -> Any:
    config = json.loads((ROOT / "docs" / "examples" / "small_resnet.json").read_text())
    return models.Sequential.from_config(config, backend=backend, seed=0)


# -- what a network keeps ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_deepconvnet_keeps_only_what_backward_needs(backend):
    n = 3
    model = models.DeepConvNet(backend=backend, seed=0)
    x, t = _batch(model, n)
    model.loss(x, t)  # a training forward
    # float32: the image (conv1's input); conv1's ReLU output (conv2's input); each pool's
    # output (the next layer's input) and uint8 argmax; conv3's and conv5's ReLU outputs. Then
    # Relu7's input, Affine2's input (floats) and the two dropout masks (bools). Not kept: the
    # ReLU outputs before each pool (4.8 of DeepConvNet's 25 MiB at batch 100 for pool1's).
    floats = 784 + 16 * 28 * 28 + 16 * 14 * 14 + 32 * 14 * 14 + 32 * 8 * 8 + 64 * 8 * 8
    floats += 64 * 4 * 4 + 50 + 50
    argmax = 16 * 14 * 14 + 32 * 8 * 8 + 64 * 4 * 4
    masks = 50 + 10
    assert _kept_bytes(model) == n * (4 * floats + argmax + masks)
    for name in ("Pool1", "Pool2", "Pool3"):
        pool = model.layers[name]
        assert pool.arg_max.dtype == np.uint8 and pool.x is None
    for name in ("Relu2", "Relu4", "Relu6"):
        assert model.layers[name].x is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("net", ["deep", "resnet"])
def test_backward_frees_every_forward_state(backend, net):
    model = models.DeepConvNet(backend=backend) if net == "deep" else _small_resnet(backend)
    x, t = _batch(model, 2)
    model.loss(x, t)
    assert _kept_bytes(model) > 0
    model.loss_and_gradient(x, t)
    assert _kept(model) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("net", ["deep", "resnet"])
def test_inference_keeps_nothing(backend, net):
    model = models.DeepConvNet(backend=backend) if net == "deep" else _small_resnet(backend)
    x, _ = _batch(model, 2)
    model.predict(x)
    assert _kept(model) == []


def test_a_released_layer_cannot_run_backward():
    conv = ref_layers.Convolution(np.ones((2, 1, 3, 3)), np.zeros(2))
    y = conv.forward(np.ones((1, 1, 4, 4)))
    conv.backward(np.ones_like(y))  # a layer on its own keeps its state, as the classic one
    assert conv.x is not None
    conv.release()
    assert conv.x is None
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        conv.backward(np.ones_like(y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_conv_relu_pool_matches_the_layers_one_by_one(backend):
    """The chain runs conv -> ReLU -> max pool as one step whose ReLU backward comes before the
    pool's; the gradients are those of the layers run one after the other, bit for bit
    (overlapping and padded windows, ties at zero)."""
    layers = [
        {"type": "conv", "filters": 4, "size": 3, "pad": 1},
        {"type": "relu"},
        {"type": "maxpool", "size": 3, "stride": 2, "pad": 1},
        {"type": "conv", "filters": 5, "size": 3},
        {"type": "relu"},
        {"type": "maxpool", "size": 2, "stride": 1},
        {"type": "affine", "units": 3},
    ]
    model = models.Sequential(layers, (2, 9, 9), backend=backend, seed=3, dtype=np.float64)
    assert sum(isinstance(s, _blocks._ConvRelu) and s.pool is not None for s in model._chain.steps)
    x, t = _batch(model, 4)
    x[:, :, :4] = 0.0  # ReLU outputs tie at zero inside windows
    _, grads = model.loss_and_gradient(x, t)
    # The same layer objects, run one by one with their own forward and backward.
    h = x
    for layer in model.layers.values():
        h = layer.forward(h)
    model.last_layer.forward(h, t)
    d = model.last_layer.backward(1.0)
    for layer in reversed(model.layers.values()):
        d = layer.backward(d)
    for key, (layer, attr) in model._grad_of.items():
        assert getattr(layer, attr).tobytes() == grads[key].tobytes(), key


@pytest.mark.parametrize("mod", [F, R], ids=["fast", "reference"])
def test_relu_backward_commutes_with_max_pool_backward(mod, rng):
    """relu_backward(pool_backward(dp), y) is pool_backward(relu_backward(dp, pool(y))) bit for
    bit, with NaN and -0 in y and in dp (what the fused step relies on)."""
    y = np.maximum(rng.standard_normal((2, 3, 9, 9)), 0.0)
    y[0, 0, :3, :3] = 0.0
    y[0, 1, 2, 2] = np.nan
    y[1, 2, 4:6, 4:6] = -0.0
    for win, stride, pad in [(2, 2, 0), (3, 2, 1), (2, 1, 0)]:
        p, am = mod.max_pool2d_forward(y, win, stride, pad, np.uint8)
        dp = rng.standard_normal(p.shape)
        dp[0, 0, 0, 0] = -0.0
        dp[1, 1, 1, 1] = np.nan
        one_by_one = mod.relu_backward(
            mod.max_pool2d_backward(dp, am, y.shape, win, stride, pad), y
        )
        fused = mod.max_pool2d_backward(mod.relu_backward(dp, p), am, y.shape, win, stride, pad)
        assert fused.tobytes() == one_by_one.tobytes()
