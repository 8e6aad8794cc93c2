"""Tests of fastcnn.models: architectures and init, params shared with the layers, gradients
against finite differences, fast == reference, model files (round trip, atomic writes, every
ModelFileError) and training checkpoints.

Tiny inputs throughout; the default-size models are only built (no forward passes).
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import models, optim
from fastcnn.models import DeepConvNet, ModelFileError, SimpleConvNet
from hostile import dead_pid
from naive import rel_error

SIMPLE_TINY = {
    "input_dim": (2, 7, 7),
    "conv_param": {"filter_num": 3, "filter_size": 3, "pad": 1},
    "hidden_size": 5,
    "output_size": 4,
}
DEEP_TINY = {
    "input_dim": (1, 8, 8),
    "conv_param_1": {"filter_num": 2},
    "conv_param_2": {"filter_num": 3},
    "conv_param_3": {"filter_num": 2},
    "conv_param_4": {"filter_num": 3},
    "conv_param_5": {"filter_num": 2},
    "conv_param_6": {"filter_num": 4},
    "hidden_size": 6,
    "output_size": 5,
}
TINY = {"simple": (SimpleConvNet, SIMPLE_TINY), "deep": (DeepConvNet, DEEP_TINY)}


def _tiny(kind: str, **kw) -> models.Model:
    cls, cfg = TINY[kind]
    return cls(**cfg, **kw)


def _data(model: models.Model, n: int = 3, seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_dim))
    t = rng.integers(0, model.output_size, n)
    return x, t


# ---------------------------------------------------------------------------------------------
# Architecture and initialisation
# ---------------------------------------------------------------------------------------------


def test_simple_convnet_default_architecture():
    m = SimpleConvNet(backend="reference")
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {
        "W1": (30, 1, 5, 5),
        "b1": (30,),
        "W2": (30 * 12 * 12, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert list(m.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert isinstance(m.last_layer, fastcnn.reference.layers.SoftmaxWithLoss)
    assert all(p.dtype == np.float32 for p in m.params.values())


def test_deep_convnet_default_architecture():
    m = DeepConvNet(backend="fast")
    filters = [16, 16, 32, 32, 64, 64]
    chans = [1, *filters]
    for i in range(6):
        assert m.params[f"W{i + 1}"].shape == (filters[i], chans[i], 3, 3)
        assert m.params[f"b{i + 1}"].shape == (filters[i],)
    assert m.params["W7"].shape == (64 * 4 * 4, 50)
    assert m.params["W8"].shape == (50, 10)
    assert len(m.params) == 16
    kinds = [name.rstrip("0123456789") for name in m.layers]
    assert kinds == ["Conv", "Relu", "Conv", "Relu", "Pool"] * 3 + [
        "Affine",
        "Relu",
        "Dropout",
        "Affine",
        "Dropout",
    ]
    assert m.layers["Conv4"].pad == 2 and m.layers["Conv3"].pad == 1
    assert m.layers["Dropout1"].dropout_ratio == 0.5
    assert isinstance(m.layers["Conv1"], fastcnn.layers.Convolution)  # the fast layers
    assert m.layers["Conv1"].F is fastcnn.functional


def test_he_initialisation():
    m = DeepConvNet(backend="reference", seed=7, dtype=np.float64)
    rng = np.random.default_rng(7)
    # Exactly: standard normals in float64, in layer order, scaled by sqrt(2 / fan_in).
    fan_ins = [1 * 9, 16 * 9, 16 * 9, 32 * 9, 32 * 9, 64 * 9, 64 * 16, 50]
    for i, fan_in in enumerate(fan_ins, start=1):
        w = m.params[f"W{i}"]
        np.testing.assert_array_equal(w, rng.standard_normal(w.shape) * math.sqrt(2 / fan_in))
        np.testing.assert_array_equal(m.params[f"b{i}"], 0)
    w7 = m.params["W7"]  # 51200 samples: the statistics are tight
    assert abs(w7.std() / math.sqrt(2 / 1024) - 1) < 0.02
    assert abs(w7.mean()) < 0.01 * w7.std()
    # float32 models get the same draws, rounded
    m32 = DeepConvNet(backend="fast", seed=7)
    for k, v in m.params.items():
        np.testing.assert_array_equal(m32.params[k], v.astype(np.float32))
    # a different seed gives different weights
    assert not np.array_equal(
        DeepConvNet(backend="reference", seed=8).params["W1"], m32.params["W1"]
    )


def test_dropout_seeds_derive_from_model_seed():
    a, b = _tiny("deep", backend="fast", seed=3), _tiny("deep", backend="reference", seed=3)
    seeds = [layer.seed for layer in a._dropout_layers().values()]
    assert seeds == [layer.seed for layer in b._dropout_layers().values()]
    assert len(set(seeds)) == 2 and all(s is not None for s in seeds)
    assert seeds != [layer.seed for layer in _tiny("deep", seed=4)._dropout_layers().values()]


def test_params_are_the_layers_arrays():
    m = _tiny("simple", backend="fast", dtype=np.float64)
    assert m.params["W1"] is m.layers["Conv1"].W and m.params["b1"] is m.layers["Conv1"].b
    assert m.params["W3"] is m.layers["Affine2"].W and m.params["b3"] is m.layers["Affine2"].b
    x, t = _data(m)
    m.params["W3"][...] = 0
    m.params["b3"] += np.arange(4.0)
    np.testing.assert_array_equal(m.predict(x), np.tile(np.arange(4.0), (3, 1)))
    before = m.loss(x, t)
    opt = optim.SGD(lr=0.1, backend="fast")
    opt.update(m.params, m.gradient(x, t))
    assert m.loss(x, t) < before


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


def _sampled_numerical_gradient(f, arr, idxs, h=1e-6):
    out = []
    for idx in idxs:
        old = arr[idx]
        arr[idx] = old + h
        fp = f()
        arr[idx] = old - h
        fm = f()
        arr[idx] = old
        out.append((fp - fm) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_gradient_matches_finite_differences(kind):
    m = _tiny(kind, backend="reference", seed=1, dtype=np.float64)
    x, t = _data(m, n=4)
    rng = np.random.default_rng(0)
    for key, p in m.params.items():
        if key.startswith("b"):
            # Zero biases put the padded border of a conv output exactly on ReLU's kink (the
            # conv sees only zeros there), where finite differences are meaningless.
            p += rng.uniform(0.05, 0.2, p.shape) * rng.choice([-1, 1], p.shape)
    drop = m._dropout_layers().values()
    calls = [layer.calls for layer in drop]

    def replay():  # rewind every dropout layer to the same call, so its mask is the same
        for layer, c in zip(drop, calls):
            layer.calls = c

    def fixed_masks_loss():
        replay()
        return m.loss(x, t, train_flg=True)

    replay()
    grads = m.gradient(x, t)
    for key, p in m.params.items():
        assert grads[key].shape == p.shape and grads[key].dtype == np.float64
        flat = rng.choice(p.size, size=min(p.size, 6), replace=False)
        idxs = [np.unravel_index(i, p.shape) for i in flat]
        num = _sampled_numerical_gradient(fixed_masks_loss, p, idxs)
        ana = np.array([grads[key][idx] for idx in idxs])
        assert rel_error(ana, num) < 1e-6, key
    assert all(np.any(g != 0) for k, g in grads.items() if k.startswith("W"))


def test_loss_and_gradient_agree_with_loss():
    m = _tiny("deep", backend="reference", seed=2, dtype=np.float64)
    x, t = _data(m)
    loss, grads = m.loss_and_gradient(x, t)
    assert set(grads) == set(m.params)
    for layer in m._dropout_layers().values():
        assert layer.calls == 1
        layer.calls = 0
    assert m.loss(x, t) == loss
    assert m.loss(x, t, train_flg=False) != loss  # inference: no dropout


# ---------------------------------------------------------------------------------------------
# fast == reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_fast_equals_reference(kind, dtype, tol):
    fast = _tiny(kind, backend="fast", seed=11, dtype=dtype)
    ref = _tiny(kind, backend="reference", seed=11, dtype=dtype)
    for k in ref.params:
        np.testing.assert_array_equal(fast.params[k], ref.params[k])
    x, t = _data(fast, n=5)
    assert rel_error(fast.predict(x), ref.predict(x)) < tol
    lf, gf = fast.loss_and_gradient(x, t)
    lr_, gr = ref.loss_and_gradient(x, t)
    assert abs(lf - lr_) <= tol * abs(lr_)
    for k in gr:
        assert gf[k].dtype == np.dtype(dtype)
        assert rel_error(gf[k], gr[k]) < tol, k


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 1e-3)])
def test_deep_conv_net_on_mnist_images_equals_reference(dtype, tol):
    # Real images: their backgrounds are all-zero windows where a zero-initialised bias puts
    # every pre-activation exactly on ReLU's kink, so any rounding residue there (F(4x4)'s
    # used to leave one) flips gates and changes the bias gradients by whole pixels' worth.
    from fastcnn.datasets import load_mnist

    (x, t), _ = load_mnist(flatten=False, subset="embedded", dtype=dtype)
    x, t = x[:100], t[:100]
    grads = {}
    for backend in ("fast", "reference"):
        m = DeepConvNet(backend=backend, seed=5, dtype=dtype)
        grads[backend] = {k: v.copy() for k, v in m.loss_and_gradient(x, t)[1].items()}
    for k, g in grads["reference"].items():
        assert rel_error(grads["fast"][k], g) < tol, k


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_same_loss_curve_over_adam_steps(dtype, tol):
    runs = {}
    for backend in ("fast", "reference"):
        m = _tiny("deep", backend=backend, seed=4, dtype=dtype)
        opt = optim.Adam(lr=0.01, backend=backend)
        x, t = _data(m, n=6)
        losses = []
        for _ in range(4):
            loss, grads = m.loss_and_gradient(x, t)
            opt.update(m.params, grads)
            losses.append(loss)
        runs[backend] = losses
    np.testing.assert_allclose(runs["fast"], runs["reference"], rtol=tol)
    assert runs["fast"][-1] < runs["fast"][0]


# ---------------------------------------------------------------------------------------------
# Inputs, targets, accuracy
# ---------------------------------------------------------------------------------------------


def test_flattened_inputs_and_one_hot_targets():
    m = _tiny("simple", backend="fast", dtype=np.float64)
    x, t = _data(m, n=4)
    np.testing.assert_array_equal(m.predict(x.reshape(4, -1)), m.predict(x))
    one_hot = np.eye(4)[t]
    assert m.loss(x, one_hot) == pytest.approx(m.loss(x, t), rel=1e-12)
    assert m.loss(x, one_hot.astype(np.int64)) == pytest.approx(m.loss(x, t), rel=1e-12)
    assert m.predict(x.astype(np.float32)).dtype == np.float64  # cast to the model's dtype
    assert m.predict((x * 100).astype(np.uint8)).shape == (4, 4)


def test_accuracy_and_predict_proba():
    m = _tiny("deep", backend="fast", seed=3)
    x, t = _data(m, n=23)
    logits = m.predict(x)
    want = float(np.mean(logits.argmax(axis=1) == t))
    assert m.accuracy(x, t) == want
    assert m.accuracy(x, t, batch_size=4) == want  # batched, with a ragged last batch
    assert m.accuracy(x, np.eye(5)[t]) == want
    t_right = logits.argmax(axis=1)
    assert m.accuracy(x, t_right, batch_size=5) == 1.0
    calls = [layer.calls for layer in m._dropout_layers().values()]
    assert calls == [0, 0]  # accuracy and predict run without dropout
    proba = m.predict_proba(x, batch_size=7)
    assert proba.shape == (23, 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(proba, fastcnn.reference.functional.softmax(logits), rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.predict(np.zeros((2, 1, 7, 7))), ValueError, r"SimpleConvNet.predict: x must"),
        (
            lambda m: m.predict(np.zeros((2, 97))),
            ValueError,
            r"\(N, 2, 7, 7\) or flattened \(N, 98\)",
        ),
        (lambda m: m.predict(np.zeros((2, 98), bool)), TypeError, r"x must hold real numbers"),
        (
            lambda m: m.predict(np.zeros((2, 98)), train_flg=1),
            TypeError,
            r"train_flg must be a bool",
        ),
        (
            lambda m: m.loss(np.zeros((2, 98)), [0.0, 1.0]),
            TypeError,
            r"labels t \(N,\) must be int",
        ),
        (
            lambda m: m.loss(np.zeros((2, 98)), [0, 1, 2]),
            ValueError,
            r"t has shape \(3,\) but expected \(2,\)",
        ),
        (
            lambda m: m.loss(np.zeros((2, 98)), np.zeros((2, 3))),
            ValueError,
            r"t has shape \(2, 3\)",
        ),
        (
            lambda m: m.loss(np.zeros((2, 98)), [0, 7]),
            ValueError,
            r"labels in t must be in \[0, 4\)",
        ),
        (lambda m: m.accuracy(np.zeros((2, 98)), [0, 1], batch_size=0), ValueError, r"batch_size"),
        (lambda m: m.accuracy(np.zeros((0, 98)), np.zeros(0, int)), ValueError, r"0 samples"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_tiny("simple", backend="reference"))


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: SimpleConvNet(backend="gpu"),
            ValueError,
            r"SimpleConvNet: backend must be one of 'fast', 'reference', got 'gpu'",
        ),
        (
            lambda: DeepConvNet(dtype=np.float16),
            ValueError,
            r"DeepConvNet: dtype must be float32 or float64",
        ),
        (lambda: SimpleConvNet(dtype="nonsense"), ValueError, r"dtype must be float32 or float64"),
        (
            lambda: SimpleConvNet(dtype=None),
            ValueError,
            r"dtype must be float32 or float64, got None",
        ),
        (lambda: SimpleConvNet(seed=-1), ValueError, r"SimpleConvNet: seed must be in \[0, inf\]"),
        (lambda: SimpleConvNet(input_dim=(28, 28)), ValueError, r"input_dim must be \(C, H, W\)"),
        (
            lambda: SimpleConvNet(conv_param={"filters": 3}),
            ValueError,
            r"conv_param has unknown keys \['filters'\]",
        ),
        (
            lambda: SimpleConvNet(conv_param={"stride": 0}),
            ValueError,
            r"conv_param\['stride'\] must be in \[1, inf\]",
        ),
        (lambda: SimpleConvNet(hidden_size=0), ValueError, r"hidden_size must be in \[1, inf\]"),
        (
            lambda: DeepConvNet(input_dim=(1, 2, 2)),
            ValueError,
            r"DeepConvNet: pooling after conv_param_6",
        ),
        (lambda: SimpleConvNet(input_dim=(1, 3, 3)), ValueError, r"SimpleConvNet: conv_param"),
        (
            lambda: DeepConvNet(dropout_ratio=1.5),
            ValueError,
            r"dropout_ratio must be in \[0.0, 1.0\]",
        ),
        (lambda: models.load("x.npz", backend="cuda"), ValueError, r"backend must be one of"),
    ],
)
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_registry_and_top_level_access():
    assert models.MODELS == {"simple": SimpleConvNet, "deep": DeepConvNet}
    assert fastcnn.models is models and fastcnn.optim is optim
    assert "models" in dir(fastcnn) and "optim" in fastcnn.__all__


# ---------------------------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_save_load_round_trip(kind, tmp_path):
    m = _tiny(kind, backend="fast", seed=9)
    x, t = _data(m)
    m.params["b1"] += 0.25  # not the init any more
    path = tmp_path / "model.npz"
    m.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]  # no temp file left behind
    for backend in ("fast", "reference"):
        loaded = models.load(path, backend=backend)
        assert type(loaded) is type(m) and loaded.backend == backend
        assert loaded.config == m.config and loaded.dtype == np.float32
        for k in m.params:
            np.testing.assert_array_equal(loaded.params[k], m.params[k])
            assert loaded.params[k] is loaded._grad_of[k][0].__dict__[k[0]]  # still shared
        if backend == "fast":
            np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    other = _tiny(kind, backend="reference", seed=123)
    other.load_params(str(path))
    np.testing.assert_array_equal(other.params["W1"], m.params["W1"])
    # The file is plain npz: numpy reads it without pickle.
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(str(npz["__fastcnn_model__"]))
        assert header["class"] == type(m).__name__ and int(npz["__fastcnn_format__"]) == 1
        np.testing.assert_array_equal(npz["params/W1"], m.params["W1"])


def test_save_overwrites_atomically_and_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = _tiny("simple", backend="reference", seed=1)
    old.save(path)
    os.chmod(path, 0o600)
    old_bytes = path.read_bytes()
    new = _tiny("simple", backend="reference", seed=2)

    real_write = np.lib.format.write_array
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == ["m.npz"]
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise PermissionError("no rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        new.save(path)
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == ["m.npz"]
    monkeypatch.undo()

    new.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600  # the old file's permissions are kept
    np.testing.assert_array_equal(models.load(path, "reference").params["W1"], new.params["W1"])


def _entries(model: models.Model) -> dict[str, np.ndarray]:
    return models._file._model_entries(model)


def _write(path, entries) -> str:
    np.savez(path, **entries)
    return str(path)


def _header(model, **changes) -> np.ndarray:
    h = {"class": type(model).__name__, "kwargs": model.arguments()}
    h.update(changes)
    return np.array(json.dumps(h))


def test_model_file_errors(tmp_path):
    m = _tiny("simple", backend="reference")
    good = _entries(m)
    p = tmp_path

    def expect(entries_or_path, match, loader=models.load):
        path = entries_or_path
        if isinstance(entries_or_path, dict):
            path = _write(p / "bad.npz", entries_or_path)
        with pytest.raises(ModelFileError, match=match) as info:
            loader(path, "reference") if loader is models.load else loader(path)
        assert str(path) in str(info.value)  # every message names the file
        assert isinstance(info.value, ValueError)

    (p / "text.npz").write_text("not a model")
    expect(p / "text.npz", r"not a fastcnn model file \(not an npz/zip archive\)")
    np.save(p / "array.npy", np.zeros(3))
    expect(p / "array.npy", r"not an npz/zip archive")
    _write(p / "full.npz", good)
    (p / "cut.npz").write_bytes((p / "full.npz").read_bytes()[:300])
    expect(p / "cut.npz", r"corrupted or unreadable npz archive")
    expect(p, r"is a directory")
    with pytest.raises(FileNotFoundError):
        models.load(p / "missing.npz")

    expect(
        {k: v for k, v in good.items() if k != "__fastcnn_format__"},
        r"missing metadata '__fastcnn_format__'",
    )
    expect(
        {**good, "__fastcnn_format__": np.array(2)},
        r"format version 2 is not supported \(this fastcnn reads version 1\)",
    )
    expect(
        {k: v for k, v in good.items() if k != "__fastcnn_model__"},
        r"missing metadata '__fastcnn_model__'",
    )
    expect(
        {**good, "__fastcnn_model__": np.array("{not json")},
        r"'__fastcnn_model__' is not valid JSON",
    )
    expect({**good, "__fastcnn_model__": np.array([1, 2])}, r"must be a 0-d string")
    expect(
        {**good, "__fastcnn_model__": _header(m, **{"class": "ResNet50"})},
        r"unknown architecture 'ResNet50' \(known: DeepConvNet, Sequential, SimpleConvNet\)",
    )
    expect(
        {**good, "__fastcnn_model__": _header(m, kwargs={**m.arguments(), "hidden_size": -1})},
        r"invalid SimpleConvNet arguments in the file \(.*hidden_size",
    )
    expect(
        {**good, "__fastcnn_model__": _header(m, kwargs={**m.arguments(), "depth": 3})},
        r"invalid SimpleConvNet arguments.*depth",
    )
    expect(
        {k: v for k, v in good.items() if k != "params/W2"},
        r"missing param 'W2' \(the SimpleConvNet expects shape \(27, 5\)",
    )
    expect(
        {**good, "params/W9": np.zeros(3, np.float32)},
        r"unexpected params \['W9'\] for the SimpleConvNet",
    )
    expect(
        {**good, "params/W2": np.zeros((28, 5), np.float32)},
        r"param 'W2' has shape \(28, 5\) in the file but the SimpleConvNet expects \(27, 5\)",
    )
    expect(
        {**good, "params/b3": np.zeros(4)},
        r"param 'b3' has dtype float64 in the file but the SimpleConvNet expects float32 "
        r"\(shape \(4,\)\)",
    )
    expect({**good, "extra": np.zeros(1)}, r"unexpected entries \['extra'\]")
    # an object array is stored as a pickle: it must be refused, never unpickled
    expect(
        {**good, "params/b1": np.array([{"x": 1}], dtype=object)},
        r"entry .params/b1. holds Python objects \(a pickle\), which fastcnn never loads",
    )

    # loading into an existing model: architecture class, shapes and dtype must match
    deep_path = p / "deep.npz"
    _tiny("deep", backend="reference").save(deep_path)
    expect(
        str(deep_path),
        r"the file holds a DeepConvNet, the model given is a SimpleConvNet",
        m.load_params,
    )
    m64 = _tiny("simple", backend="reference", dtype=np.float64)
    before = {k: v.copy() for k, v in m64.params.items()}
    expect(str(p / "full.npz"), r"param 'W1' has dtype float32 .* expects float64", m64.load_params)
    for k in before:  # nothing was copied
        np.testing.assert_array_equal(m64.params[k], before[k])
    wider = SimpleConvNet(**{**SIMPLE_TINY, "hidden_size": 6}, backend="reference")
    expect(
        str(p / "full.npz"),
        r"different SimpleConvNet from the model given: hidden_size is 5 in the file but 6 ",
        wider.load_params,
    )


def test_zip_member_crc_damage_is_a_model_file_error(tmp_path):
    m = _tiny("simple", backend="reference")
    path = tmp_path / "m.npz"
    m.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("params/W2.npy")
    start = info.header_offset + 30 + len(info.filename) + 200  # inside W2's array data
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"corrupted or unreadable"):
        models.load(path, "reference")


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _train(model, opt, x, t, steps):
    losses = []
    for _ in range(steps):
        loss, grads = model.loss_and_gradient(x, t)
        opt.update(model.params, grads)
        losses.append(loss)
    return losses


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_checkpoint_resume_is_identical_to_an_uninterrupted_run(backend, tmp_path):
    x, t = _data(_tiny("deep"), n=6)
    straight = _tiny("deep", backend=backend, seed=5)
    want = _train(straight, optim.Adam(lr=0.01, backend=backend), x, t, 4)

    first = _tiny("deep", backend=backend, seed=5)
    opt = optim.Adam(lr=0.01, backend=backend)
    got = _train(first, opt, x, t, 2)
    rng = np.random.default_rng(42)
    rng.random(3)
    meta = {"epoch": 2, "rng": rng.bit_generator.state, "history": np.array(got), "n": np.int64(7)}
    path = tmp_path / "ckpt.npz"
    models.save_checkpoint(path, first, opt, meta)
    assert os.listdir(tmp_path) == ["ckpt.npz"]

    ck = models.load_checkpoint(path, backend=backend)  # rebuild everything from the file
    assert isinstance(ck.optimizer, optim.Adam) and ck.optimizer.step == 2
    assert ck.meta["epoch"] == 2 and ck.meta["n"] == 7
    np.testing.assert_array_equal(ck.meta["history"], got)
    resumed_rng = np.random.default_rng()
    resumed_rng.bit_generator.state = ck.meta["rng"]
    assert resumed_rng.random() == rng.random()
    got += _train(ck.model, ck.optimizer, x, t, 2)
    assert got == want  # bit for bit: weights, Adam moments, step and dropout masks
    for k in straight.params:
        np.testing.assert_array_equal(ck.model.params[k], straight.params[k])

    # restoring into existing objects works the same
    model2 = _tiny("deep", backend=backend, seed=5)
    opt2 = optim.Adam(lr=0.5, backend=backend)
    ck2 = models.load_checkpoint(path, model2, opt2)
    assert ck2.model is model2 and ck2.optimizer is opt2 and opt2.lr == 0.01
    assert _train(model2, opt2, x, t, 2) == want[2:]
    # a checkpoint is also a model file
    np.testing.assert_array_equal(models.load(path, backend).params["W8"], first.params["W8"])


def test_checkpoint_errors(tmp_path):
    m = _tiny("simple", backend="reference")
    path = tmp_path / "c.npz"
    models.save_checkpoint(path, m)  # no optimizer: fine
    ck = models.load_checkpoint(path, backend="reference")
    assert ck.optimizer is None and ck.meta == {}
    with pytest.raises(ModelFileError, match=r"c.npz: the file holds no optimizer state"):
        models.load_checkpoint(path, m, optim.SGD(backend="reference"))
    with pytest.raises(ModelFileError, match=r"holds a SimpleConvNet, the model given is a Deep"):
        models.load_checkpoint(path, _tiny("deep", backend="reference"))
    with pytest.raises(ValueError, match=r"save_checkpoint: meta must hold arrays or JSON values"):
        models.save_checkpoint(path, m, meta={"f": object()})
    with pytest.raises(TypeError, match=r"optimizer must be a fastcnn.optim optimizer"):
        models.save_checkpoint(path, m, optimizer="adam")

    opt = optim.Momentum(backend="reference")
    opt.update(m.params, m.gradient(*_data(m)))
    models.save_checkpoint(path, m, opt)
    adam = optim.Adam(backend="reference")
    with pytest.raises(ModelFileError, match=r"invalid optimizer state .*'Momentum', not 'Adam'"):
        models.load_checkpoint(path, m, adam)
    assert adam.step == 0
    # optimizer state is checked before the model's params are touched, and vice versa
    entries = dict(np.load(path, allow_pickle=False))
    entries["params/W1"] = entries["params/W1"][:1]
    np.savez(tmp_path / "bad.npz", **entries)
    opt_before = opt.state_dict()
    with pytest.raises(ModelFileError, match=r"param 'W1' has shape"):
        models.load_checkpoint(tmp_path / "bad.npz", m, opt)
    np.testing.assert_array_equal(opt.state_dict()["velocity/W1"], opt_before["velocity/W1"])


def _adam_checkpoint(tmp_path, dtype=np.float32):
    m = _tiny("simple", backend="reference", dtype=dtype)
    opt = optim.Adam(lr=0.01, backend="reference")
    _train(m, opt, *_data(m), steps=2)
    path = tmp_path / "adam.npz"
    models.save_checkpoint(path, m, opt)
    return m, opt, path


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda e: e.pop("optim/v/W1"), r"lacks 'v/W1'"),
        (lambda e: e.pop("optim/m/b3"), r"lacks 'm/b3'"),
        (lambda e: e.update({"optim/m/W9": np.zeros(3, np.float32)}), r"'m/W9' for params the"),
        (lambda e: e.update({"optim/nu/W1": np.zeros(3)}), r"unknown entries \['nu/W1'\]"),
        (
            lambda e: e.update({"optim/m/W1": e["optim/m/W1"].astype(np.float64)}),
            r"'m/W1' is float64 \(3, 2, 3, 3\) but param 'W1' is float32",
        ),
        (
            lambda e: e.update({"optim/v/W2": e["optim/v/W2"][:, :2]}),
            r"'v/W2' is float32 \(27, 2\) but param 'W2' is float32 \(27, 5\)",
        ),
        (lambda e: e.update({"optim/v/b1": -e["optim/v/b1"] - 1}), r"v/b1 holds negative"),
        (lambda e: e["optim/m/b2"].__setitem__(0, np.nan), r"m/b2 holds NaN or infinite"),
        (lambda e: e.update({"optim/step": np.array(-1)}), r"step must be in \[0, inf\]"),
        (lambda e: e.update({"optim/step": np.array(2.5)}), r"step must be an int"),
        (lambda e: e.update({"optim/lr": np.array(np.inf)}), r"lr"),
    ],
)
def test_checkpoint_optimizer_state_is_checked_whole(tmp_path, change, match):
    m, opt, path = _adam_checkpoint(tmp_path)
    entries = dict(np.load(path, allow_pickle=False))
    change(entries)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **entries)
    pattern = rf"bad.npz: invalid optimizer state \(entries optim/.*{match}"
    with pytest.raises(ModelFileError, match=pattern):
        models.load_checkpoint(bad, backend="reference")
    # into a given model and optimizer: nothing is modified
    model2 = _tiny("simple", backend="reference", seed=3)
    opt2 = optim.Adam(lr=0.5, backend="reference")
    before = {k: v.copy() for k, v in model2.params.items()}
    with pytest.raises(ModelFileError, match=pattern):
        models.load_checkpoint(bad, model2, opt2)
    assert opt2.step == 0 and opt2.lr == 0.5 and opt2.state == {"m": {}, "v": {}}
    for k, v in before.items():
        np.testing.assert_array_equal(model2.params[k], v)


def test_checkpoint_non_finite_params_and_bad_state_entries(tmp_path):
    m, opt, path = _adam_checkpoint(tmp_path)
    entries = dict(np.load(path, allow_pickle=False))
    entries["params/W3"] = entries["params/W3"].copy()
    entries["params/W3"][0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", **entries)
    with pytest.raises(ModelFileError, match=r"inf.npz: param 'W3' holds NaN or infinite"):
        models.load_checkpoint(tmp_path / "inf.npz", backend="reference")
    with pytest.raises(ModelFileError, match=r"inf.npz: param 'W3' holds NaN or infinite"):
        models.load(tmp_path / "inf.npz", backend="reference")

    deep = _tiny("deep", backend="reference")
    models.save_checkpoint(tmp_path / "deep.npz", deep)
    entries = dict(np.load(tmp_path / "deep.npz", allow_pickle=False))
    np.savez(tmp_path / "neg.npz", **{**entries, "state/Dropout1": np.array(-3)})
    with pytest.raises(ModelFileError, match=r"neg.npz: invalid model state entry .state/Drop"):
        models.load_checkpoint(tmp_path / "neg.npz", backend="reference")
    np.savez(tmp_path / "odd.npz", **{**entries, "state/Relu1": np.array(3)})
    with pytest.raises(ModelFileError, match=r"odd.npz: invalid model state entry 'state/Relu1'"):
        models.load_checkpoint(tmp_path / "odd.npz", backend="reference")


def test_loading_builds_no_random_weights_and_plans_without_arrays():
    plan = SimpleConvNet._construct({"hidden_size": 10**8}, "reference", "plan")
    assert plan.params == {} and plan._param_shapes["W2"] == (4320, 10**8)
    zeros = SimpleConvNet._construct(SIMPLE_TINY, "reference", "zeros")
    assert all(not v.any() for v in zeros.params.values())
    assert zeros._param_shapes == {k: v.shape for k, v in zeros.params.items()}
    init = _tiny("simple", backend="reference")
    assert init._param_shapes == zeros._param_shapes and init.params["W1"].any()


# ---------------------------------------------------------------------------------------------
# Stale temporary files of killed saves
# ---------------------------------------------------------------------------------------------


def test_save_removes_only_stale_temporaries_of_its_own_target(tmp_path):
    from fastcnn import _atomic

    host = _atomic._host()
    dead = dead_pid()
    names = {
        f".c.npz.{host}.{dead}.abcd1234.tmp": False,  # killed writer on this host: removed
        f".c.npz.{host}.{os.getpid()}.abcd1234.tmp": True,  # a live writer (this process)
        f".c.npz.otherhost.{dead}.abcd1234.tmp": True,  # pids of other hosts mean nothing here
        f".d.npz.{host}.{dead}.abcd1234.tmp": True,  # another target's
        ".c.npz.k3j_9xq2.tmp": False,  # the old mkstemp name, untouched for 2 hours
        ".c.npz.fresh_01.tmp": True,  # the old name, written just now: may be a live writer
        "c.npz.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    old = os.path.getmtime(tmp_path / "c.npz.tmp") - 7200
    os.utime(tmp_path / ".c.npz.k3j_9xq2.tmp", (old, old))
    _tiny("simple", backend="reference").save(tmp_path / "c.npz")
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(["c.npz", *(n for n, keep in names.items() if keep)])


_SLOW_SAVE = """
import os, sys, time
import numpy as np
from fastcnn import models
path, go = sys.argv[1], sys.argv[2]
write = np.lib.format.write_array
def slow(*args, **kwargs):
    write(*args, **kwargs)
    print("writing", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
np.lib.format.write_array = slow
models.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=3, backend="reference", seed=9).save(path)
"""


def _start_slow_save(tmp_path, path):
    """A child process saving to ``path`` that stops after its first member (a temp file
    exists) until the file ``go`` appears."""
    import subprocess
    import sys

    go = tmp_path / "go"
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVE, str(path), str(go)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    temps = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(temps) == 1 and f".{child.pid}." in temps[0]
    return child, go, temps[0]


def test_a_killed_save_is_cleaned_up_and_a_live_one_is_never_disturbed(tmp_path):
    import signal

    path = tmp_path / "checkpoint.npz"
    model = _tiny("simple", backend="reference")
    child, go, temp = _start_slow_save(tmp_path, path)
    with child:  # closes its pipe and waits
        os.kill(child.pid, signal.SIGKILL)
    assert temp in os.listdir(tmp_path)  # what kill -9 leaves behind
    models.save_checkpoint(path, model)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]

    child, go, temp = _start_slow_save(tmp_path, path)
    models.save_checkpoint(path, model)  # while the other writer is mid-save
    assert temp in os.listdir(tmp_path)
    go.write_text("")
    with child:
        assert child.wait(timeout=60) == 0  # it finished its own save
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "go"]
    assert models.load(path, "reference").seed == 9


def test_compressed_and_fortran_order_files_load(tmp_path):
    """Files fastcnn did not write itself: np.savez_compressed (trained weights hardly
    compress, zero biases do) and a Fortran-order member are read exactly."""
    m = _tiny("deep", backend="reference")
    entries = _entries(m)
    np.savez_compressed(tmp_path / "z.npz", **entries)
    for k, v in models.load(tmp_path / "z.npz", "reference").params.items():
        np.testing.assert_array_equal(v, m.params[k])
    entries["params/W1"] = np.asfortranarray(entries["params/W1"])
    _write(tmp_path / "f.npz", entries)
    loaded = models.load(tmp_path / "f.npz", "reference")
    np.testing.assert_array_equal(loaded.params["W1"], m.params["W1"])
    assert loaded.params["W1"] is loaded.layers["Conv1"].W  # still the layer's own array
    other = _tiny("deep", backend="reference", seed=4)
    other.load_params(tmp_path / "f.npz")
    np.testing.assert_array_equal(other.params["W1"], m.params["W1"])


def test_members_must_declare_what_they_hold(tmp_path):
    import io

    m = _tiny("simple", backend="reference")
    with zipfile.ZipFile(tmp_path / "b.npz", "w") as zf:
        for key, arr in _entries(m).items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr))
            data = buf.getvalue()
            if key == "params/b1":  # the header says 4 elements, the entry holds 3
                data = data.replace(b"'shape': (3,)", b"'shape': (4,)")
            zf.writestr(f"{key}.npy", data)
    with pytest.raises(
        ModelFileError,
        match=r"b.npz: entry 'params/b1': its .npy header "
        r"declares float32 \(4,\) \(16 bytes\) but the zip entry holds 12",
    ):
        models.load(tmp_path / "b.npz", "reference")
    with zipfile.ZipFile(tmp_path / "n.npz", "w") as zf:
        zf.writestr("__fastcnn_format__.npy", b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little"))
    with pytest.raises(ModelFileError, match=r"n.npz: entry '__fastcnn_format__': .npy header of"):
        models.load(tmp_path / "n.npz", "reference")
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as zf:
        zf.writestr("__fastcnn_format__.npy", b"x")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("__fastcnn_format__.npy", b"y")
    with pytest.raises(ModelFileError, match=r"d.npz: entry '__fastcnn_format__' is stored twice"):
        models.load(tmp_path / "d.npz", "reference")
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as zf:
        zf.writestr("readme.txt", b"hello")
    with pytest.raises(ModelFileError, match=r"t.npz: unexpected entry 'readme.txt' \(not a .npy"):
        models.load(tmp_path / "t.npz", "reference")
