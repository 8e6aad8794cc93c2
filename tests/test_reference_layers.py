"""Tests of fastcnn.reference.layers: each layer equals its functional op, keeps the classic
attributes, reads its parameters at call time, and routes every op through its ``F``.

The math itself is tested in test_reference_functional.py.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from fastcnn.reference import functional as F
from fastcnn.reference import layers as L
from naive import numerical_gradient, rel_error


def _randn(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def test_convolution_equals_functional():
    rng = np.random.default_rng(0)
    W, b, x = _randn(rng, (4, 3, 3, 2)), _randn(rng, 4), _randn(rng, (2, 3, 6, 5))
    layer = L.Convolution(W, b, stride=(2, 1), pad=1)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, F.conv2d_forward(x, W, b, (2, 1), 1))
    assert layer.x is x
    dy = _randn(rng, y.shape)
    dx = layer.backward(dy)
    for got, want in zip((dx, layer.dW, layer.db), F.conv2d_backward(dy, x, W, (2, 1), 1)):
        np.testing.assert_array_equal(got, want)


def test_layers_read_parameters_at_every_call():
    rng = np.random.default_rng(1)
    W, b, x = _randn(rng, (2, 1, 2, 2)), _randn(rng, 2), _randn(rng, (1, 1, 4, 4))
    conv = L.Convolution(W, b)
    conv.forward(x)
    W -= 0.5  # in-place optimizer step
    np.testing.assert_array_equal(conv.forward(x), F.conv2d_forward(x, W, b))
    conv.W, conv.b = _randn(rng, (3, 1, 2, 2)), np.zeros(3)  # reassignment
    y = conv.forward(x)
    assert y.shape == (1, 3, 3, 3)
    np.testing.assert_array_equal(
        conv.backward(np.ones_like(y)), F.conv2d_backward(np.ones_like(y), x, conv.W)[0]
    )
    aff = L.Affine(_randn(rng, (16, 2)), np.zeros(2))
    aff.W = _randn(rng, (16, 5))
    aff.b = np.ones(5)
    np.testing.assert_array_equal(aff.forward(x), F.affine_forward(x, aff.W, aff.b))
    bn = L.BatchNormalization(np.ones(16), np.zeros(16))
    bn.gamma = np.full(16, 2.0)
    x2 = _randn(rng, (3, 16))
    np.testing.assert_array_equal(
        bn.forward(x2), F.batchnorm_forward(x2, bn.gamma, bn.beta, None, None)[0]
    )


@pytest.mark.parametrize(
    "cls, fwd, bwd",
    [
        (L.Pooling, "max_pool2d_forward", "max_pool2d_backward"),
        (L.AvgPooling, "avg_pool2d_forward", "avg_pool2d_backward"),
    ],
)
def test_pooling_layers_equal_functional(cls, fwd, bwd):
    rng = np.random.default_rng(2)
    x = _randn(rng, (2, 3, 7, 6))
    layer = cls(3, 2, stride=2, pad=(1, 0))
    y = layer.forward(x)
    dy = _randn(rng, y.shape)
    dx = layer.backward(dy)
    if cls is L.Pooling:
        ref_y, arg = F.max_pool2d_forward(x, (3, 2), 2, (1, 0))
        np.testing.assert_array_equal(layer.arg_max, arg)
        ref_dx = F.max_pool2d_backward(dy, arg, x.shape, (3, 2), 2, (1, 0))
    else:
        ref_y = F.avg_pool2d_forward(x, (3, 2), 2, (1, 0))
        ref_dx = F.avg_pool2d_backward(dy, x.shape, (3, 2), 2, (1, 0))
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(dx, ref_dx)


def test_pooling_defaults_match_the_classic_layer():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    # stride 2, pad 0 by default, as the classic common/layers.py's Pooling
    assert L.Pooling(2, 2).forward(x).shape == (1, 1, 2, 2)
    assert L.Pooling(2, 2, 1).forward(x).shape == (1, 1, 3, 3)
    assert L.AvgPooling(2, 2).forward(x).shape == (1, 1, 2, 2)


def test_affine_with_4d_input():
    rng = np.random.default_rng(3)
    x, W, b = _randn(rng, (2, 3, 2, 2)), _randn(rng, (12, 5)), _randn(rng, 5)
    layer = L.Affine(W, b)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, F.affine_forward(x, W, b))
    assert layer.original_x_shape == x.shape and layer.x.shape == (2, 12)
    dy = _randn(rng, y.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    for got, want in zip((dx, layer.dW, layer.db), F.affine_backward(dy, x, W)):
        np.testing.assert_array_equal(got, want)
    num = numerical_gradient(lambda: float(np.sum(L.Affine(W, b).forward(x) * dy)), x)
    assert rel_error(dx, num) < 1e-7


def test_relu_and_sigmoid_layers():
    rng = np.random.default_rng(4)
    x, dy = _randn(rng, (3, 4)), _randn(rng, (3, 4))
    relu = L.Relu()
    np.testing.assert_array_equal(relu.forward(x), F.relu_forward(x))
    np.testing.assert_array_equal(relu.mask, x <= 0)
    np.testing.assert_array_equal(relu.backward(dy), F.relu_backward(dy, x))
    sig = L.Sigmoid()
    y = sig.forward(x)
    np.testing.assert_array_equal(y, F.sigmoid_forward(x))
    assert sig.out is y
    np.testing.assert_array_equal(sig.backward(dy), F.sigmoid_backward(dy, y))
    x_before = x.copy()
    relu.backward(dy)  # the classic layer wrote into dout; this one must not
    np.testing.assert_array_equal(x, x_before)


def test_softmax_with_loss_labels_and_one_hot():
    rng = np.random.default_rng(5)
    x, t = _randn(rng, (4, 3)), np.array([0, 2, 1, 2])
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    ref_loss, ref_p = F.softmax_cross_entropy_forward(x, t)
    assert loss == ref_loss == layer.loss and isinstance(loss, float)
    np.testing.assert_array_equal(layer.y, ref_p)
    assert layer.t is t
    np.testing.assert_array_equal(layer.backward(), F.softmax_cross_entropy_backward(ref_p, t))
    np.testing.assert_array_equal(
        layer.backward(0.5), F.softmax_cross_entropy_backward(ref_p, t, 0.5)
    )
    onehot = L.SoftmaxWithLoss()
    assert onehot.forward(x, np.eye(3)[t]) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(onehot.backward(), layer.backward(), atol=1e-16)


def test_dropout_layer_masks_and_reproducibility():
    rng = np.random.default_rng(6)
    x = _randn(rng, (5, 8))
    layer = L.Dropout(0.3, seed=42)
    y1 = layer.forward(x)
    m1 = layer.mask
    np.testing.assert_array_equal(y1, x * m1)
    y2 = layer.forward(x)
    assert not np.array_equal(layer.mask, m1)  # a fresh mask every training call
    np.testing.assert_array_equal(y2, x * layer.mask)
    dy = _randn(rng, x.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy * layer.mask)
    # documented per-call seed: call k uses splitmix64(seed + k)
    np.testing.assert_array_equal(m1, F.dropout_mask(x.shape, 0.3, F._splitmix64_int(42)))
    twin = L.Dropout(0.3, seed=42)
    np.testing.assert_array_equal(twin.forward(x), y1)
    np.testing.assert_array_equal(twin.forward(x), y2)
    # inference: scale, no mask drawn, call counter untouched
    calls = layer.calls
    np.testing.assert_allclose(layer.forward(x, train_flg=False), x * 0.7, rtol=1e-15)
    assert layer.calls == calls


def test_dropout_layer_without_seed_draws_the_classic_masks():
    # The classic layer's mask is np.random.rand(*x.shape) > ratio, drawn every forward: with
    # the same np.random.seed the masks, and the random stream after them, are the same.
    x = np.ones((3, 7))
    np.random.seed(5)  # noqa: NPY002 - the classic global-RNG workflow under test
    layer = L.Dropout(0.3)
    got = [layer.forward(x) for _ in range(2)]
    after = np.random.rand()  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    want = [(np.random.rand(*x.shape) > 0.3) * x for _ in range(2)]  # noqa: NPY002
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert np.random.rand() == after  # noqa: NPY002


def test_dropout_layer_reproducible_under_np_random_seed():
    x = np.ones((4, 50))
    runs = []
    for _ in range(2):
        np.random.seed(123)  # noqa: NPY002 - the classic global-RNG workflow under test
        layer = L.Dropout(0.5)
        runs.append([layer.forward(x).copy() for _ in range(3)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    np.random.seed(124)  # noqa: NPY002
    assert not np.array_equal(L.Dropout(0.5).forward(x), runs[0][0])
    with pytest.raises(ValueError, match="seed"):
        L.Dropout(0.5, seed=-1)


def test_batchnormalization_2d_equals_functional_and_updates_running_stats():
    rng = np.random.default_rng(7)
    x = _randn(rng, (6, 4)) * 2 + 1
    gamma, beta = _randn(rng, 4), _randn(rng, 4)
    layer = L.BatchNormalization(gamma, beta, momentum=0.8)
    assert layer.running_mean is None
    y = layer.forward(x)
    rm, rv = np.zeros(4), np.zeros(4)
    ref_y, mean, inv_std = F.batchnorm_forward(x, gamma, beta, rm, rv, 0.8, 1e-6)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    dy = _randn(rng, x.shape)
    dx = layer.backward(dy)
    for got, want in zip(
        (dx, layer.dgamma, layer.dbeta), F.batchnorm_backward(dy, x, gamma, mean, inv_std)
    ):
        np.testing.assert_array_equal(got, want)
    yi = layer.forward(x, train_flg=False)
    np.testing.assert_array_equal(yi, F.batchnorm_forward(x, gamma, beta, rm, rv, train=False)[0])


def test_batchnormalization_4d_normalises_each_flattened_feature():
    rng = np.random.default_rng(8)
    x = _randn(rng, (5, 2, 3, 3))
    gamma, beta = _randn(rng, 18), _randn(rng, 18)
    rm, rv = np.zeros(18), np.ones(18)
    layer = L.BatchNormalization(gamma, beta, running_mean=rm, running_var=rv)
    y = layer.forward(x)
    assert y.shape == x.shape and layer.running_mean is rm
    x2 = x.reshape(5, 18)
    ref_y, mean, inv_std = F.batchnorm_forward(x2, gamma, beta, np.zeros(18), np.ones(18))
    np.testing.assert_array_equal(y, ref_y.reshape(x.shape))
    dy = _randn(rng, x.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    ref_dx, ref_dg, ref_db = F.batchnorm_backward(dy.reshape(5, 18), x2, gamma, mean, inv_std)
    np.testing.assert_array_equal(dx, ref_dx.reshape(x.shape))
    np.testing.assert_array_equal(layer.dgamma, ref_dg)
    np.testing.assert_array_equal(layer.dbeta, ref_db)


def test_spatial_batchnormalization_equals_functional():
    rng = np.random.default_rng(9)
    x = _randn(rng, (3, 2, 4, 4), np.float32)
    gamma, beta = np.ones(2, np.float32), np.zeros(2, np.float32)
    layer = L.SpatialBatchNormalization(gamma, beta)
    y = layer.forward(x)
    assert layer.running_mean.shape == (2,) and layer.running_mean.dtype == np.float32
    ref_y, mean, inv_std = F.spatial_batchnorm_forward(
        x, gamma, beta, np.zeros(2, np.float32), np.zeros(2, np.float32)
    )
    np.testing.assert_array_equal(y, ref_y)
    dy = _randn(rng, x.shape, np.float32)
    dx = layer.backward(dy)
    for got, want in zip(
        (dx, layer.dgamma, layer.dbeta), F.spatial_batchnorm_backward(dy, x, gamma, mean, inv_std)
    ):
        np.testing.assert_array_equal(got, want)


def test_layer_errors_come_from_the_functional_checks():
    with pytest.raises(ValueError, match=r"conv2d_forward: x has 2 channels but w expects 3"):
        L.Convolution(np.zeros((1, 3, 2, 2)), np.zeros(1)).forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"affine_forward: x has 8 features"):
        L.Affine(np.zeros((5, 2)), np.zeros(2)).forward(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"spatial_batchnorm_forward: x must be 4-D"):
        L.SpatialBatchNormalization(np.ones(3), np.zeros(3)).forward(np.zeros((2, 3)))


def _recording_backend(calls: list) -> types.ModuleType:
    """A stand-in functional module that records which ops are called, then delegates."""
    fake = types.ModuleType("recording_functional")
    for name in F.__all__:

        def op(*args, _name=name, **kwargs):
            calls.append(_name)
            return getattr(F, _name)(*args, **kwargs)

        setattr(fake, name, op)
    return fake


def test_layers_route_every_op_through_F_so_backends_can_swap():
    calls: list[str] = []
    fake = _recording_backend(calls)
    swapped = {cls.__name__: type(cls.__name__, (cls,), {"F": fake}) for cls in L.LAYER_CLASSES}
    rng = np.random.default_rng(10)
    x4, x2 = _randn(rng, (2, 2, 4, 4)), _randn(rng, (3, 4))
    layers = [
        (swapped["Convolution"](_randn(rng, (2, 2, 3, 3)), np.zeros(2)), x4),
        (swapped["Pooling"](2, 2, 2), x4),
        (swapped["AvgPooling"](2, 2, 2), x4),
        (swapped["Affine"](_randn(rng, (4, 3)), np.zeros(3)), x2),
        (swapped["Relu"](), x2),
        (swapped["Sigmoid"](), x2),
        (swapped["Dropout"](0.5, seed=1), x2),
        (swapped["BatchNormalization"](np.ones(4), np.zeros(4)), x2),
        (swapped["SpatialBatchNormalization"](np.ones(2), np.zeros(2)), x4),
    ]
    for layer, x in layers:
        y = layer.forward(x)
        layer.backward(np.ones_like(y))
    sm = swapped["SoftmaxWithLoss"]()
    sm.forward(x2, np.array([0, 1, 2]))
    sm.backward()
    assert calls == [
        "conv2d_forward",
        "conv2d_backward",
        "max_pool2d_forward",
        "max_pool2d_backward",
        "avg_pool2d_forward",
        "avg_pool2d_backward",
        "affine_forward",
        "affine_backward",
        "relu_forward",
        "relu_backward",
        "sigmoid_forward",
        "sigmoid_backward",
        "dropout_forward",
        "dropout_backward",
        "batchnorm_forward",
        "batchnorm_backward",
        "spatial_batchnorm_forward",
        "spatial_batchnorm_backward",
        "softmax_cross_entropy_forward",
        "softmax_cross_entropy_backward",
    ]
