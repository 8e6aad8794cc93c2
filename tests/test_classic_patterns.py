"""The ways the classic "Deep Learning from Scratch" chapter scripts (ch05-ch08) use the layer
classes, each run on fastcnn.layers and on fastcnn.reference.layers and compared.

Book-style networks (an OrderedDict of layers, a SoftmaxWithLoss, a params dict holding the
arrays the layers were built with, gradients checked by perturbing those arrays in place), the
label forms those scripts pass, parameters that went through pickle or a process pool, their
float16 evaluation, and the attribute and keyword names they read. Our own code, not the
book's; benchmarks/book_scripts.py runs the scripts themselves.
"""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from fastcnn import layers as fast
from fastcnn.reference import layers as ref
from naive import TOL, assert_close, numerical_gradient

BACKENDS = [fast, ref]
BACKEND_IDS = ["fastcnn", "reference"]
on_both = pytest.mark.parametrize("L", BACKENDS, ids=BACKEND_IDS)

INT_DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
]

# A gradient check's tolerance: central differences with h = 1e-6 on float64 losses of order 1.
GRAD_TOL = 1e-7


# ---------------------------------------------------------------------------------------------
# A book-style network
# ---------------------------------------------------------------------------------------------


class BookNet:
    """Layers in an OrderedDict, a SoftmaxWithLoss last layer, and ``params``: the very arrays
    the layers were constructed with, so optimizers and numerical gradients change them in
    place. ``grad_of`` maps a parameter name to (layer name, gradient attribute)."""

    def __init__(self, L, params, layers, grad_of):
        self.L = L
        self.params = params
        self.layers = layers
        self.grad_of = grad_of
        self.last_layer = L.SoftmaxWithLoss()

    def predict(self, x, train_flg=False):
        for layer in self.layers.values():
            if isinstance(layer, (self.L.Dropout, self.L.BatchNormalization)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=False):
        return self.last_layer.forward(self.predict(x, train_flg), t)

    def gradient(self, x, t):
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {k: getattr(self.layers[name], attr) for k, (name, attr) in self.grad_of.items()}

    def numerical_gradient(self, x, t):
        """Each parameter array perturbed in place, element by element: the layers must see it."""
        return {
            k: numerical_gradient(lambda: self.loss(x, t, train_flg=True), self.params[k])
            for k in self.grad_of
        }


def _weights(rng, shapes, scale=0.1):
    """W* drawn N(0, scale^2), b*/beta* zeros, gamma* ones; float64 as the book's are."""
    out = {}
    for k, shape in shapes.items():
        if k.startswith("W"):
            out[k] = scale * rng.standard_normal(shape)
        elif k.startswith("gamma"):
            out[k] = np.ones(shape)
        else:
            out[k] = np.zeros(shape)
    return out


TWO_LAYER = {"W1": (20, 8), "b1": (8,), "W2": (8, 10), "b2": (10,)}


def two_layer_net(L, params):
    layers = OrderedDict()
    layers["Affine1"] = L.Affine(params["W1"], params["b1"])
    layers["Relu1"] = L.Relu()
    layers["Affine2"] = L.Affine(params["W2"], params["b2"])
    grad_of = {"W1": ("Affine1", "dW"), "b1": ("Affine1", "db")}
    grad_of.update({"W2": ("Affine2", "dW"), "b2": ("Affine2", "db")})
    return BookNet(L, params, layers, grad_of)


BN_NET = {"gamma1": (8,), "beta1": (8,), **TWO_LAYER}


def batchnorm_net(L, params):
    layers = OrderedDict()
    layers["Affine1"] = L.Affine(params["W1"], params["b1"])
    layers["BatchNorm1"] = L.BatchNormalization(params["gamma1"], params["beta1"])
    layers["Relu1"] = L.Relu()
    layers["Dropout1"] = L.Dropout(0.0)  # ratio 0: keeps everything, but runs the layer
    layers["Affine2"] = L.Affine(params["W2"], params["b2"])
    grad_of = {
        "W1": ("Affine1", "dW"),
        "b1": ("Affine1", "db"),
        "gamma1": ("BatchNorm1", "dgamma"),
        "beta1": ("BatchNorm1", "dbeta"),
        "W2": ("Affine2", "dW"),
        "b2": ("Affine2", "db"),
    }
    return BookNet(L, params, layers, grad_of)


CONV_NET = {
    "W1": (4, 1, 3, 3),
    "b1": (4,),
    "W2": (4 * 4 * 4, 10),
    "b2": (10,),
    "W3": (10, 10),
    "b3": (10,),
}


def conv_net(L, params):
    """SimpleConvNet's shape: conv - relu - pool - affine - relu - affine, on (N, 1, 10, 10)."""
    layers = OrderedDict()
    layers["Conv1"] = L.Convolution(params["W1"], params["b1"], 1, 0)
    layers["Relu1"] = L.Relu()
    layers["Pool1"] = L.Pooling(pool_h=2, pool_w=2, stride=2)
    layers["Affine1"] = L.Affine(params["W2"], params["b2"])
    layers["Relu2"] = L.Relu()
    layers["Affine2"] = L.Affine(params["W3"], params["b3"])
    grad_of = {
        "W1": ("Conv1", "dW"),
        "b1": ("Conv1", "db"),
        "W2": ("Affine1", "dW"),
        "b2": ("Affine1", "db"),
        "W3": ("Affine2", "dW"),
        "b3": ("Affine2", "db"),
    }
    return BookNet(L, params, layers, grad_of)


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


def _one_hot(labels, m, dtype=np.float64):
    return np.eye(m, dtype=dtype)[labels]


def _assert_gradients(nets, x, t):
    """Backprop equals the in-place numerical gradient on each backend, and the backends'
    backprop gradients equal each other."""
    grads = {}
    for name, net in nets.items():
        backprop = net.gradient(x, t)
        numeric = net.numerical_gradient(x, t)
        for k in numeric:
            err = np.abs(backprop[k] - numeric[k]).max()
            assert err < GRAD_TOL, f"{name}: {k} backprop vs numerical differ by {err:.2e}"
        grads[name] = backprop
    for k in grads["reference"]:
        assert_close(grads["fastcnn"][k], grads["reference"][k], np.float64)


# ---------------------------------------------------------------------------------------------
# Gradient checks, as ch05/gradient_check.py, ch06/batch_norm_gradient_check.py and
# ch07/gradient_check.py do them
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_two_layer_net_gradient_check_one_hot(x_dtype, rng):
    """ch05: float32 images (the book's normalised MNIST), float64 weights, one-hot targets."""
    init = _weights(rng, TWO_LAYER)
    x = rng.random((3, 20)).astype(x_dtype)
    t = _one_hot(np.array([3, 0, 7]), 10)
    nets = {n: two_layer_net(L, _copy(init)) for n, L in zip(BACKEND_IDS, BACKENDS)}
    _assert_gradients(nets, x, t)


def test_two_layer_net_gradient_check_labels(rng):
    init = _weights(rng, TWO_LAYER)
    x = rng.random((3, 20)).astype(np.float32)
    t = np.array([3, 0, 7], dtype=np.uint8)  # the book's MNIST labels are uint8
    nets = {n: two_layer_net(L, _copy(init)) for n, L in zip(BACKEND_IDS, BACKENDS)}
    _assert_gradients(nets, x, t)


@on_both
def test_in_place_parameter_change_is_seen(L, rng):
    """The numerical gradient relies on it: a layer must not keep a copy of W or b."""
    init = _weights(rng, CONV_NET)
    net = conv_net(L, init)
    x = rng.random((2, 1, 10, 10))
    y0 = net.predict(x)
    for k in init:
        old = init[k].flat[0]
        init[k].flat[0] = old + 0.5
        assert not np.array_equal(net.predict(x), y0), f"a change of {k}[0] was not seen"
        init[k].flat[0] = old
        np.testing.assert_array_equal(net.predict(x), y0)


def test_batchnorm_net_gradient_check(rng):
    """ch06: BatchNormalization (and a Dropout) between the affine layers, training mode,
    a 3-image batch (the running statistics move at every loss evaluation)."""
    init = _weights(rng, BN_NET, scale=0.3)
    init["gamma1"] += 0.1 * rng.standard_normal(8)
    init["beta1"] += 0.1 * rng.standard_normal(8)
    x = rng.random((3, 20)).astype(np.float32)
    t = _one_hot(np.array([1, 4, 9]), 10)
    nets = {n: batchnorm_net(L, _copy(init)) for n, L in zip(BACKEND_IDS, BACKENDS)}
    _assert_gradients(nets, x, t)


def test_batchnorm_net_one_image(rng):
    """ch06/batch_norm_gradient_check.py's batch of one image: normalised, every feature is
    0, so the output is beta; both backends give the same (finite) gradients."""
    init = _weights(rng, BN_NET, scale=0.3)
    init["beta1"] += 0.1 * rng.standard_normal(8)
    x = rng.random((1, 20)).astype(np.float32)
    t = _one_hot(np.array([5]), 10)
    grads = {}
    for name, L in zip(BACKEND_IDS, BACKENDS):
        net = batchnorm_net(L, _copy(init))
        h = net.layers["BatchNorm1"].forward(net.layers["Affine1"].forward(x), True)
        assert_close(h, init["beta1"][None, :], np.float64)
        grads[name] = net.gradient(x, t)
        for k, g in grads[name].items():
            assert np.isfinite(g).all(), f"{name}: {k}"
    for k in grads["reference"]:
        assert_close(grads["fastcnn"][k], grads["reference"][k], np.float64)


def test_simple_convnet_gradient_check_label_column(rng):
    """ch07/gradient_check.py: one 10x10 image, the label given as np.array([1]).reshape(1, 1)
    (the book's SoftmaxWithLoss takes (N, 1) labels: t.size != y.size means labels)."""
    init = _weights(rng, CONV_NET, scale=0.3)
    x = rng.random(100).reshape((1, 1, 10, 10))
    t = np.array([1]).reshape((1, 1))
    nets = {n: conv_net(L, _copy(init)) for n, L in zip(BACKEND_IDS, BACKENDS)}
    _assert_gradients(nets, x, t)


def test_simple_convnet_gradient_check_labels(rng):
    init = _weights(rng, CONV_NET, scale=0.3)
    x = rng.random((2, 1, 10, 10))
    t = np.array([1, 6])
    nets = {n: conv_net(L, _copy(init)) for n, L in zip(BACKEND_IDS, BACKENDS)}
    _assert_gradients(nets, x, t)


# ---------------------------------------------------------------------------------------------
# Batch normalisation as the book defines it
# ---------------------------------------------------------------------------------------------

BOOK_BN_EPS = 10e-7  # the book writes 10e-7 (= 1e-6) inside its square roots


def _book_bn_train(x2, gamma, beta):
    """The book's training-mode definition on (N, D): per feature over the batch, biased var."""
    mu = x2.mean(axis=0)
    var = ((x2 - mu) ** 2).mean(axis=0)
    return gamma * (x2 - mu) / np.sqrt(var + BOOK_BN_EPS) + beta, mu, var


@on_both
@pytest.mark.parametrize("shape", [(5, 6), (5, 2, 3, 3)], ids=["2-D", "4-D"])
def test_batchnorm_is_per_feature_of_the_flattened_input(L, shape, rng):
    """The book reshapes a 4-D (N, C, H, W) input to (N, C*H*W) and normalises each of those
    features (gamma and beta have C*H*W entries), then reshapes back."""
    n, d = shape[0], int(np.prod(shape[1:]))
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    layer = L.BatchNormalization(gamma, beta, momentum=0.9, running_mean=None, running_var=None)
    y = layer.forward(x, train_flg=True)
    expected, mu, var = _book_bn_train(x.reshape(n, d), gamma, beta)
    assert y.shape == shape
    assert_close(y, expected.reshape(shape), np.float64)
    # running statistics start at zero and move by (1 - momentum) towards the batch's
    assert layer.running_mean.shape == (d,) and layer.running_var.shape == (d,)
    assert_close(layer.running_mean, 0.1 * mu, np.float64)
    assert_close(layer.running_var, 0.1 * var, np.float64)
    # inference uses them
    y_test = layer.forward(x, train_flg=False)
    rm, rv = 0.1 * mu, 0.1 * var
    expected_test = gamma * (x.reshape(n, d) - rm) / np.sqrt(rv + BOOK_BN_EPS) + beta
    assert_close(y_test, expected_test.reshape(shape), np.float64)


@on_both
def test_batchnorm_4d_backward_matches_numerical(L, rng):
    shape = (3, 2, 2, 3)
    d = 12
    x = rng.standard_normal(shape)
    gamma, beta = 1 + 0.1 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)
    r = rng.standard_normal(shape)
    layer = L.BatchNormalization(gamma, beta)

    def f():
        return float((layer.forward(x, train_flg=True) * r).sum())

    f()
    dx = layer.backward(r.copy())
    assert dx.shape == shape
    analytic = {"x": dx, "gamma": layer.dgamma.copy(), "beta": layer.dbeta.copy()}
    for name, value in (("x", x), ("gamma", gamma), ("beta", beta)):
        err = np.abs(numerical_gradient(f, value) - analytic[name]).max()
        assert err < GRAD_TOL, f"{name}: backprop vs numerical differ by {err:.2e}"


# ---------------------------------------------------------------------------------------------
# Dropout as DeepConvNet and MultiLayerNetExtend call it
# ---------------------------------------------------------------------------------------------


@on_both
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_inference_scales_by_keep_ratio(L, dtype, rng):
    x = rng.standard_normal((4, 7)).astype(dtype)
    layer = L.Dropout(dropout_ratio=0.2)
    for y in (layer.forward(x, train_flg=False), layer.forward(x, False)):
        assert_close(y, x * (1.0 - 0.2), dtype)


@on_both
def test_dropout_training_mask(L, rng):
    x = rng.standard_normal((50, 40))
    layer = L.Dropout(0.5)
    y = layer.forward(x, train_flg=True)
    assert layer.mask.dtype == np.bool_ and layer.mask.shape == x.shape
    np.testing.assert_array_equal(y, x * layer.mask)
    assert 0.4 < layer.mask.mean() < 0.6
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout * layer.mask)


# ---------------------------------------------------------------------------------------------
# Label forms SoftmaxWithLoss receives
# ---------------------------------------------------------------------------------------------

LABELS = np.array([2, 0, 9, 4, 4])


def _exact_loss_and_grad(x, labels):
    """Cross-entropy by log-sum-exp (no epsilon) and its gradient, averaged over the batch."""
    z = x - x.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1
    return loss, grad / n


def _label_forms():
    for dt in INT_DTYPES:
        name = np.dtype(dt).name
        yield f"(N,)-{name}", lambda dt=dt: LABELS.astype(dt)
        yield f"(N,1)-{name}", lambda dt=dt: LABELS.reshape(-1, 1).astype(dt)
        yield f"one-hot-{name}", lambda dt=dt: _one_hot(LABELS, 10, dt)
    for dt in (np.float32, np.float64):
        yield f"one-hot-{np.dtype(dt).name}", lambda dt=dt: _one_hot(LABELS, 10, dt)


LABEL_FORMS = dict(_label_forms())


@on_both
@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_softmax_with_loss_label_forms(L, form, rng):
    """Labels (N,), (N, 1) of every integer dtype, and one-hot targets (integer or float,
    t.size == y.size): the same loss and gradient as int64 labels (N,)."""
    x = rng.standard_normal((5, 10))
    t = LABEL_FORMS[form]()
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward(1)
    expected_loss, expected_dx = _exact_loss_and_grad(x, LABELS)
    assert loss == pytest.approx(expected_loss, rel=TOL[np.float64], abs=TOL[np.float64])
    assert_close(dx, expected_dx, np.float64)
    assert layer.t is t


@on_both
def test_loss_is_exact_not_the_books_epsilon(L, rng):
    """The book's cross_entropy_error adds 1e-7 inside the log; the layers' loss is the exact
    log-softmax. For probabilities of order 0.1 the two differ by about 1e-6 (relative)."""
    x = rng.standard_normal((5, 10)) * 0.1
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(x, LABELS)
    y = layer.y
    with_epsilon = -np.log(y[np.arange(5), LABELS] + 1e-7).mean()
    assert loss == pytest.approx(_exact_loss_and_grad(x, LABELS)[0], rel=1e-12)
    assert 0 < loss - with_epsilon < 2e-6


# ---------------------------------------------------------------------------------------------
# Parameters that went through pickle (load_params) or a process pool
# ---------------------------------------------------------------------------------------------


def _predict_both(params_fast, params_ref, x):
    return conv_net(fast, params_fast).predict(x), conv_net(ref, params_ref).predict(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_unpickled_parameters_predict_on_fast_layers(dtype, protocol, rng):
    init = {k: v.astype(dtype) for k, v in _weights(rng, CONV_NET, scale=0.3).items()}
    x = rng.random((3, 1, 10, 10)).astype(dtype)
    loaded = pickle.loads(pickle.dumps(init, protocol=protocol))
    x_loaded = pickle.loads(pickle.dumps(x, protocol=protocol))
    y_fast, y_ref = _predict_both(loaded, _copy(init), x_loaded)
    assert_close(y_fast, y_ref, dtype)


def test_unpickled_parameters_rebound_as_load_params_does(rng):
    """load_params rebinds layer.W / layer.b to the unpickled arrays after construction."""
    init = _weights(rng, CONV_NET, scale=0.3)
    net = conv_net(fast, _weights(rng, CONV_NET, scale=0.3))
    loaded = pickle.loads(pickle.dumps(init))
    for layer_name, (w, b) in {"Conv1": ("W1", "b1"), "Affine1": ("W2", "b2")}.items():
        net.layers[layer_name].W, net.layers[layer_name].b = loaded[w], loaded[b]
    net.layers["Affine2"].W, net.layers["Affine2"].b = loaded["W3"], loaded["b3"]
    x = rng.random((2, 1, 10, 10))
    assert_close(net.predict(x), conv_net(ref, init).predict(x), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arrays_from_a_process_pool_predict_on_fast_layers(dtype, rng):
    shapes = dict(CONV_NET)
    # spawn, not fork: the parent runs OpenMP threads
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        drawn = {
            k: pool.apply(np.random.default_rng(i).standard_normal, (s,), {"dtype": dtype})
            for i, (k, s) in enumerate(shapes.items())
        }
        x = pool.apply(np.random.default_rng(99).random, ((2, 1, 10, 10),), {"dtype": dtype})
    assert all(v.dtype == dtype for v in drawn.values())
    y_fast, y_ref = _predict_both(drawn, _copy(drawn), x)
    assert_close(y_fast, y_ref, dtype)


# ---------------------------------------------------------------------------------------------
# float16 evaluation, as ch08/half_float_network.py does it
# ---------------------------------------------------------------------------------------------


def _deep_style_net(L, params):
    """DeepConvNet's layer kinds in its order (conv relu pool, affine relu dropout affine
    dropout) at a small size."""
    layers = OrderedDict()
    layers["Conv1"] = L.Convolution(params["W1"], params["b1"], 1, 1)
    layers["Relu1"] = L.Relu()
    layers["Pool1"] = L.Pooling(pool_h=2, pool_w=2, stride=2)
    layers["Affine1"] = L.Affine(params["W2"], params["b2"])
    layers["Relu2"] = L.Relu()
    layers["Dropout1"] = L.Dropout(0.5)
    layers["Affine2"] = L.Affine(params["W3"], params["b3"])
    layers["Dropout2"] = L.Dropout(0.5)
    return BookNet(L, params, layers, {})


DEEP_STYLE = {"W1": (4, 1, 3, 3), "b1": (4,), "W2": (4 * 5 * 5, 12), "b2": (12,)}
DEEP_STYLE.update({"W3": (12, 10), "b3": (10,)})


@on_both
def test_float16_evaluation_computes_in_float64(L, rng):
    """x.astype(np.float16), and param[...] = param.astype(np.float16) on float64 params (they
    stay float64, rounded to float16 values): the book's layers compute in float64."""
    params = _weights(rng, DEEP_STYLE, scale=0.3)
    params["b1"] += 0.1
    x = rng.random((6, 1, 10, 10)).astype(np.float32)
    x16 = x.astype(np.float16)
    for p in params.values():
        p[...] = p.astype(np.float16)
    assert all(p.dtype == np.float64 for p in params.values())
    expected = _deep_style_net(ref, _copy(params)).predict(x16.astype(np.float64))
    y = _deep_style_net(L, params).predict(x16, train_flg=False)
    assert_close(y, expected, np.float64)
    np.testing.assert_array_equal(y.argmax(axis=1), expected.argmax(axis=1))


@on_both
def test_float16_input_to_convolution(L, rng):
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    x16 = rng.standard_normal((2, 2, 5, 5)).astype(np.float16)
    y = L.Convolution(w, b).forward(x16)
    assert_close(y, ref.Convolution(w, b).forward(x16.astype(np.float64)), np.float64)


@on_both
def test_float16_input_to_affine(L, rng):
    w, b = rng.standard_normal((50, 4)), rng.standard_normal(4)
    x16 = rng.standard_normal((2, 2, 5, 5)).astype(np.float16)
    y = L.Affine(w, b).forward(x16)
    assert_close(y, ref.Affine(w, b).forward(x16.astype(np.float64)), np.float64)


@on_both
def test_convolution_with_a_scalar_bias(L, rng):
    """ch07/apply_filter.py builds Convolution(w, 0): an int scalar bias, broadcast as in
    numpy's np.dot(col, col_W) + b, on a float32 image."""
    w = rng.standard_normal((1, 1, 5, 5))
    img = rng.random((1, 1, 12, 12)).astype(np.float32)
    y = L.Convolution(w, 0).forward(img)
    expected = ref.Convolution(w, np.zeros(1)).forward(img)
    assert_close(y, expected, np.float64)


# ---------------------------------------------------------------------------------------------
# Names the book's code reads and passes
# ---------------------------------------------------------------------------------------------


@on_both
def test_attribute_names_the_book_reads(L, rng):
    x = rng.standard_normal((3, 2, 6, 6))
    t = np.array([1, 0, 2])
    conv = L.Convolution(rng.standard_normal((4, 2, 3, 3)), np.zeros(4), stride=1, pad=1)
    relu = L.Relu()
    pool = L.Pooling(pool_h=2, pool_w=2, stride=2, pad=0)
    bn = L.BatchNormalization(np.ones(36), np.zeros(36))
    affine = L.Affine(rng.standard_normal((36, 5)), np.zeros(5))
    sigmoid = L.Sigmoid()
    drop = L.Dropout(dropout_ratio=0.3)
    last = L.SoftmaxWithLoss()

    h1 = conv.forward(x)
    h2 = relu.forward(h1)
    h3 = pool.forward(h2)
    h4 = bn.forward(h3, train_flg=True)
    h5 = affine.forward(h4)
    h6 = sigmoid.forward(h5)
    h7 = drop.forward(h6, train_flg=True)
    loss = last.forward(h7, t)
    d = last.backward(dout=1)
    for layer in (drop, sigmoid, affine, bn, pool, relu, conv):
        d = layer.backward(d)

    assert conv.x is x and conv.dW.shape == conv.W.shape and conv.db.shape == (4,)
    np.testing.assert_array_equal(relu.mask, h1 <= 0)
    assert pool.x is h2
    assert bn.dgamma.shape == (36,) and bn.dbeta.shape == (36,)
    assert bn.running_mean.shape == (36,) and bn.running_var.shape == (36,)
    assert bn.input_shape == (3, 4, 3, 3)
    assert affine.original_x_shape == (3, 4, 3, 3)
    np.testing.assert_array_equal(affine.x, h4.reshape(3, 36))
    assert affine.dW.shape == (36, 5) and affine.db.shape == (5,)
    assert sigmoid.out is h6
    assert drop.mask.shape == h6.shape and drop.mask.dtype == np.bool_
    assert last.loss == loss and last.t is t
    np.testing.assert_allclose(last.y.sum(axis=1), 1.0, rtol=1e-12)
    assert d.shape == x.shape


def test_attributes_equal_on_both_backends(rng):
    x = rng.standard_normal((3, 20))
    t = np.array([1, 0, 2])
    init = _weights(rng, BN_NET, scale=0.3)
    nets = {L: batchnorm_net(L, _copy(init)) for L in BACKENDS}
    for net in nets.values():
        net.gradient(x, t)
    f, r = nets[fast], nets[ref]
    for name in ("Affine1", "Affine2"):
        for attr in ("x", "dW", "db"):
            assert_close(getattr(f.layers[name], attr), getattr(r.layers[name], attr), np.float64)
        assert f.layers[name].original_x_shape == r.layers[name].original_x_shape
    for attr in ("running_mean", "running_var", "dgamma", "dbeta"):
        a, b = getattr(f.layers["BatchNorm1"], attr), getattr(r.layers["BatchNorm1"], attr)
        assert_close(a, b, np.float64)
    np.testing.assert_array_equal(f.layers["Relu1"].mask, r.layers["Relu1"].mask)
    assert_close(f.last_layer.y, r.last_layer.y, np.float64)
    assert f.last_layer.loss == pytest.approx(r.last_layer.loss, rel=1e-12)


BOOK_SIGNATURES = {
    "Convolution": ["W", "b", "stride", "pad"],
    "Pooling": ["pool_h", "pool_w", "stride", "pad"],
    "Affine": ["W", "b"],
    "Relu": [],
    "Sigmoid": [],
    "SoftmaxWithLoss": [],
    "Dropout": ["dropout_ratio"],
    "BatchNormalization": ["gamma", "beta", "momentum", "running_mean", "running_var"],
}


@on_both
@pytest.mark.parametrize("name", list(BOOK_SIGNATURES))
def test_constructor_keywords_are_the_books(L, name):
    params = list(inspect.signature(getattr(L, name)).parameters)
    assert params[: len(BOOK_SIGNATURES[name])] == BOOK_SIGNATURES[name]
    forward = list(inspect.signature(getattr(L, name).forward).parameters)
    if name in ("Dropout", "BatchNormalization"):
        assert forward[:3] == ["self", "x", "train_flg"]
    backward = inspect.signature(getattr(L, name).backward).parameters
    if name == "SoftmaxWithLoss":
        assert backward["dout"].default == 1


@on_both
def test_pooling_default_stride_is_the_books(L, rng):
    """The book's Pooling(pool_h, pool_w) defaults to stride=2 (and pad=0)."""
    x = rng.standard_normal((1, 2, 8, 8))
    assert L.Pooling(2, 2).forward(x).shape == (1, 2, 4, 4)
