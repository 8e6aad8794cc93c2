"""fastcnn.layers against fastcnn.reference.layers: the same classes, constructor signatures and
attributes; forward/backward results of every layer equal to the oracle's; weights read at
every call (in-place updates and reassignment are seen); a small conv stack end to end."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from fastcnn import layers as fast
from fastcnn.reference import layers as ref
from naive import TOL, assert_close


def _close(actual, expected, dtype=np.float64):
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=TOL[dtype], abs=TOL[dtype])
        return
    assert_close(actual, expected, dtype)


def test_same_classes_and_signatures():
    assert fast.__all__ == ref.__all__
    assert [c.__name__ for c in fast.LAYER_CLASSES] == [c.__name__ for c in ref.LAYER_CLASSES]
    for f_cls, r_cls in zip(fast.LAYER_CLASSES, ref.LAYER_CLASSES):
        assert issubclass(f_cls, r_cls)
        assert issubclass(f_cls, fast.Layer)
        assert f_cls.F.__name__ == "fastcnn.functional"
        assert inspect.signature(f_cls) == inspect.signature(r_cls)


def _pair(rng, dtype):
    """(fast layer, reference layer, input, extra forward args) for every layer class."""
    x4 = rng.standard_normal((4, 3, 10, 9)).astype(dtype)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    wa = rng.standard_normal((270, 7)).astype(dtype)
    ba = rng.standard_normal(7).astype(dtype)
    gamma, beta = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    g2, b2 = rng.standard_normal(270).astype(dtype), rng.standard_normal(270).astype(dtype)
    logits = rng.standard_normal((6, 10)).astype(dtype)
    labels = rng.integers(0, 10, 6)
    return {
        "Convolution": ((w, b, 1, 1), {}, x4, ()),
        "Pooling": ((2, 2, 2, 0), {}, x4, ()),
        "AvgPooling": ((3, 2, (2, 1), (1, 0)), {}, x4, ()),
        "Affine": ((wa, ba), {}, x4, ()),
        "Relu": ((), {}, x4, ()),
        "Sigmoid": ((), {}, x4, ()),
        "SoftmaxWithLoss": ((), {}, logits, (labels,)),
        "Dropout": ((0.3,), {"seed": 7}, x4, ()),
        "BatchNormalization": ((g2, b2), {}, x4, ()),
        "SpatialBatchNormalization": ((gamma, beta), {}, x4, ()),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [c.__name__ for c in ref.LAYER_CLASSES])
def test_every_layer_matches_reference(name, dtype, rng):
    args, kwargs, x, extra = _pair(rng, dtype)[name]
    # each backend gets its own copies of array arguments (BatchNorm updates running stats)
    f_layer = getattr(fast, name)(
        *[np.copy(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs
    )
    r_layer = getattr(ref, name)(*args, **kwargs)
    for _ in range(2):  # twice: Dropout draws a fresh mask per call, BatchNorm moves its stats
        y_f, y_r = f_layer.forward(x, *extra), r_layer.forward(x, *extra)
        _close(y_f, y_r, dtype)
        dout = (
            1.0 if name == "SoftmaxWithLoss" else rng.standard_normal(np.shape(y_r)).astype(dtype)
        )
        _close(f_layer.backward(dout), r_layer.backward(dout), dtype)
    state_r = {k: v for k, v in vars(r_layer).items()}
    assert set(vars(f_layer)) == set(state_r)
    for key, value in state_r.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            _close(getattr(f_layer, key), value, dtype)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(f_layer, key), value)
    if name in ("Dropout", "BatchNormalization", "SpatialBatchNormalization"):  # inference mode
        _close(f_layer.forward(x, False), r_layer.forward(x, False), dtype)


def test_convolution_and_affine_see_weight_updates(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    conv = fast.Convolution(w, b, 1, 1)
    y0 = conv.forward(x)
    w *= 2.0  # in place, as an optimizer does
    np.testing.assert_allclose(conv.forward(x), 2 * y0, rtol=1e-6)
    conv.W = -w  # reassignment
    np.testing.assert_allclose(conv.forward(x), -2 * y0, rtol=1e-6)
    b += 1.0
    np.testing.assert_allclose(conv.forward(x), -2 * y0 + 1, rtol=1e-5, atol=1e-5)

    wa = rng.standard_normal((108, 5)).astype(np.float32)
    aff = fast.Affine(wa, np.zeros(5, np.float32))
    y0 = aff.forward(x)
    wa[:] = 0.0
    np.testing.assert_array_equal(aff.forward(x), 0.0)
    aff.b = np.ones(5, np.float32)
    np.testing.assert_array_equal(aff.forward(x), 1.0)
    assert y0.shape == (2, 5)


def _stack(mod, params, seed):
    return [
        mod.Convolution(params["W1"], params["b1"], 1, 1),
        mod.Relu(),
        mod.Pooling(2, 2, 2),
        mod.Convolution(params["W2"], params["b2"], 1, 2),
        mod.Relu(),
        mod.Affine(params["W3"], params["b3"]),
        mod.Dropout(0.5, seed=seed),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_network_training_steps_match(dtype, rng):
    init = {
        "W1": rng.standard_normal((8, 1, 3, 3)) * 0.5,
        "b1": np.zeros(8),
        "W2": rng.standard_normal((6, 8, 3, 3)) * 0.2,
        "b2": np.zeros(6),
        "W3": rng.standard_normal((6 * 9 * 9, 10)) * 0.05,
        "b3": np.zeros(10),
    }
    x = rng.random((5, 1, 14, 14)).astype(dtype)
    t = rng.integers(0, 10, 5)
    nets = {}
    for mod in (fast, ref):
        params = {k: v.astype(dtype) for k, v in init.items()}
        nets[mod] = (params, _stack(mod, params, seed=3), mod.SoftmaxWithLoss())
    losses = {fast: [], ref: []}
    for _ in range(3):
        for mod, (params, layers, last) in nets.items():
            h = x
            for layer in layers:
                h = layer.forward(h)
            losses[mod].append(last.forward(h, t))
            d = last.backward()
            for layer in reversed(layers):
                d = layer.backward(d)
            grads = {
                "W1": layers[0].dW,
                "b1": layers[0].db,
                "W2": layers[3].dW,
                "b2": layers[3].db,
                "W3": layers[5].dW,
                "b3": layers[5].db,
            }
            for k in params:
                mod.Layer.F.sgd_update(params[k], grads[k], 0.1)
    np.testing.assert_allclose(losses[fast], losses[ref], rtol=TOL[dtype] * 10)
    for k in init:
        _close(nets[fast][0][k], nets[ref][0][k], dtype)


@pytest.mark.parametrize("name", [c.__name__ for c in ref.LAYER_CLASSES])
def test_backward_before_forward_is_a_clear_error(name, rng):
    args, kwargs, _, _ = _pair(rng, np.float64)[name]
    for mod in (fast, ref):
        layer = getattr(mod, name)(*args, **kwargs)
        with pytest.raises(RuntimeError, match=rf"{name}.backward was called before forward"):
            layer.backward(np.ones((4, 5)))
