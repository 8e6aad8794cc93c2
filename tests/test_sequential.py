"""Sequential: networks from layer configs.

Every layer type's gradient against central differences (float64, both backends), the fast
backend against the reference, configs as data (round trips, JSON, errors), initialisation,
the classic networks rebuilt from their configs, and model files / checkpoints of networks
with batch norm, dropout and residual blocks. The tutorial networks of docs/models.md are
built from the configs the docs show.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fastcnn import models, optim
from fastcnn.models import ConfigError, DeepConvNet, Sequential, SimpleConvNet
from naive import rel_error

ROOT = Path(__file__).resolve().parent.parent
SHAPE = [2, 6, 6]


def conv(filters, size=3, **kw):
    return {"type": "conv", "filters": filters, "size": size, **kw}


RELU, SIGMOID, FLAT = {"type": "relu"}, {"type": "sigmoid"}, {"type": "flatten"}
BN = {"type": "batchnorm"}
OUT = {"type": "affine", "units": 5}

# One small network per layer type (and per variant of one), on (2, 6, 6) inputs.
NETS = {
    "conv pad same, stride 2": [conv(3, pad="same"), RELU, conv(4, stride=2, pad=1), FLAT, OUT],
    "conv pair size and pad": [conv(3, size=[3, 1], pad=[1, 0]), RELU, OUT],
    "maxpool": [conv(3, pad=1), RELU, {"type": "maxpool", "size": 2}, OUT],
    "maxpool padded, stride 1": [
        conv(3), {"type": "maxpool", "size": 3, "stride": 1, "pad": 1}, OUT,
    ],
    "avgpool": [conv(3, pad=1), SIGMOID, {"type": "avgpool", "size": 3, "stride": 3}, OUT],
    "affine + sigmoid": [FLAT, {"type": "affine", "units": 7}, SIGMOID, OUT],
    "dropout": [conv(3), RELU, {"type": "dropout", "ratio": 0.3}, FLAT, OUT],
    "batchnorm per channel": [conv(3, pad=1), BN, RELU, OUT],
    "batchnorm per feature": [{"type": "affine", "units": 8}, BN, RELU, OUT],
    "globalavgpool": [conv(4, pad=1), RELU, {"type": "globalavgpool"}, OUT],
    "residual, identity": [
        conv(3, pad=1), RELU,
        {"type": "residual", "layers": [conv(3, pad=1), RELU, conv(3, pad=1)]}, RELU, OUT,
    ],
    "residual, 1x1 projection": [
        conv(3, pad=1),
        {"type": "residual", "layers": [conv(4, stride=2, pad=1), BN, RELU, conv(4, pad=1)]},
        RELU, {"type": "globalavgpool"}, OUT,
    ],
    "residual, nested": [
        {"type": "residual", "layers": [
            conv(2, pad=1), RELU, {"type": "residual", "layers": [conv(2, pad=1), SIGMOID]},
        ]},
        FLAT, OUT,
    ],
}  # fmt: skip


def net(name, *, backend="reference", dtype=np.float64, seed=3):
    return Sequential(NETS[name], SHAPE, backend=backend, dtype=dtype, seed=seed)


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *SHAPE)), rng.integers(0, 5, n)


def jitter_biases(m):
    """Nonzero biases keep conv outputs off ReLU's kink where the input is padding."""
    rng = np.random.default_rng(1)
    for key, p in m.params.items():
        if key.startswith(("b", "beta")):
            p += rng.uniform(0.05, 0.2, p.shape) * rng.choice([-1, 1], p.shape)


def fixed_mask_loss(m, x, t):
    """loss(x, t) in training mode with every dropout layer rewound to its current call."""
    calls = {k: layer.calls for k, layer in m._dropout_layers().items()}

    def f():
        for k, layer in m._dropout_layers().items():
            layer.calls = calls[k]
        return m.loss(x, t, train_flg=True)

    return f


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("name", list(NETS))
def test_gradient_matches_central_differences(name, backend):
    m = net(name, backend=backend)
    jitter_biases(m)
    x, t = batch()
    f = fixed_mask_loss(m, x, t)  # replays the masks the gradient below draws
    grads = m.gradient(x, t)
    assert set(grads) == set(m.params)
    rng = np.random.default_rng(2)
    for key, p in m.params.items():
        assert grads[key].shape == p.shape and grads[key].dtype == np.float64
        picks = rng.choice(p.size, size=min(p.size, 8), replace=False)
        idxs = [np.unravel_index(i, p.shape) for i in picks]
        num = []
        for idx in idxs:
            old = p[idx]
            p[idx] = old + 1e-6
            fp = f()
            p[idx] = old - 1e-6
            fm = f()
            p[idx] = old
            num.append((fp - fm) / 2e-6)
        ana = [grads[key][idx] for idx in idxs]
        # atol: a bias before a batch norm has an exact zero gradient, seen as rounding noise
        np.testing.assert_allclose(ana, num, rtol=1e-5, atol=1e-8, err_msg=key)
    weights = [g for k, g in grads.items() if k.startswith("W")]
    assert weights and all(np.any(g != 0) for g in weights)


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("name", list(NETS))
def test_fast_equals_reference(name, dtype, tol):
    fast, ref = net(name, backend="fast", dtype=dtype), net(name, backend="reference", dtype=dtype)
    for key in ref.params:
        np.testing.assert_array_equal(fast.params[key], ref.params[key])  # same init
    x, t = batch(6)
    for _ in range(2):  # the second pass sees updated params and running statistics
        lf, gf = fast.loss_and_gradient(x, t)
        lr, gr = ref.loss_and_gradient(x, t)
        assert abs(lf - lr) <= tol * max(1.0, abs(lr))
        for key in gr:  # absolute: a bias before a batch norm has a zero gradient (noise)
            assert gf[key].dtype == dtype
            scale = max(1.0, float(np.abs(gr[key]).max()))
            np.testing.assert_allclose(gf[key], gr[key], rtol=0, atol=tol * 10 * scale)
        for m, g in ((fast, gf), (ref, gr)):
            for key in m.params:
                m.params[key] -= 0.1 * g[key]
    for key, arr in ref.state_arrays().items():
        assert rel_error(fast.state_arrays()[key], arr) < tol, key
    assert rel_error(fast.predict(x), ref.predict(x)) < tol * 10
    np.testing.assert_allclose(fast.predict_proba(x).sum(axis=1), 1.0, rtol=tol * 10)


# ---------------------------------------------------------------------------------------------
# Configs as data
# ---------------------------------------------------------------------------------------------

ISSUE_EXAMPLE = (
    '{"input_shape": [1, 28, 28], "layers": [{"type": "conv", "filters": 8, "size": 5, '
    '"pad": "same"}, {"type": "relu"}, {"type": "maxpool", "size": 2}, {"type": "flatten"}, '
    '{"type": "affine", "units": 10}]}'
)


def test_the_documented_example_config_works_as_written():
    m = Sequential.from_config(json.loads(ISSUE_EXAMPLE))
    assert list(m.params) == ["W1", "b1", "W2", "b2"]
    assert m.params["W1"].shape == (8, 1, 5, 5) and m.params["W2"].shape == (8 * 14 * 14, 10)
    assert m.num_params() == 8 * 25 + 8 + 1568 * 10 + 10
    out = io.StringIO()
    m.summary(file=out)
    text = out.getvalue()
    assert re.search(r"Conv1 \(conv\)\s+\(8, 28, 28\)\s+208\n", text)
    assert re.search(r"Pool1 \(maxpool\)\s+\(8, 14, 14\)\s+0\n", text)
    assert re.search(r"Affine1 \(affine\)\s+\(10,\)\s+15,690\n", text)
    assert "Total params: 15,898" in text
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)  # flattened input works
    assert m.predict(x).shape == (3, 10)


@pytest.mark.parametrize("name", list(NETS))
def test_config_round_trips_through_json(name):
    m = net(name, dtype=np.float32)
    cfg = json.loads(json.dumps(m.config))
    again = Sequential.from_config(cfg, backend="reference", seed=3)
    assert again.config == m.config and again.dtype == np.float32
    for key in m.params:
        np.testing.assert_array_equal(again.params[key], m.params[key])  # same seed, same init
    x, _ = batch()
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    other = Sequential.from_config(cfg, backend="reference", seed=4)
    assert not np.array_equal(other.params["W1"], m.params["W1"])


def test_config_is_plain_data_and_a_copy():
    m = net("residual, identity")
    cfg = m.config
    json.dumps(cfg)  # no numpy types, no tuples needed
    cfg["layers"][0]["filters"] = 99
    assert m.config["layers"][0]["filters"] == 3
    named = Sequential(NETS["maxpool"], SHAPE, name="MyNet")
    assert named.config["name"] == "MyNet" and named.name == "MyNet"
    assert Sequential.from_config(named.config).name == "MyNet"


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ([], r"config must be a dict"),
        ({"layers": [OUT]}, r"missing 'input_shape'"),
        ({"input_shape": SHAPE, "layers": [OUT], "lr": 1}, r"unknown keys \['lr'\]"),
        ({"input_shape": SHAPE, "layers": []}, r"at least one layer"),
        ({"input_shape": SHAPE, "layers": [{"type": "lstm"}]}, r"unknown layer type 'lstm'"),
        ({"input_shape": SHAPE, "layers": [{"units": 3}]}, r"unknown layer type None"),
        ({"input_shape": SHAPE, "layers": ["relu"]}, r"a layer must be a dict"),
        ({"input_shape": SHAPE, "layers": [{"type": "conv", "size": 3}]}, r"filters"),
        ({"input_shape": SHAPE, "layers": [conv(0)]}, r"filters"),
        ({"input_shape": SHAPE, "layers": [conv(2, size=True)]}, r"size"),
        ({"input_shape": SHAPE, "layers": [conv(2, pad="valid")]}, r"pad"),
        ({"input_shape": SHAPE, "layers": [conv(2, size=2, pad="same"), OUT]}, r"evenly"),
        ({"input_shape": SHAPE, "layers": [conv(2, size=9), OUT]}, r"layers\[0\]"),
        ({"input_shape": SHAPE, "layers": [{"type": "dropout", "ratio": 1.5}, OUT]}, r"ratio"),
        ({"input_shape": SHAPE, "layers": [{**OUT, "unit": 3}]}, r"unit"),
        ({"input_shape": SHAPE, "layers": [conv(2)]}, r"end with an affine layer"),
        ({"input_shape": [6], "layers": [conv(2), OUT]}, r"conv"),
        ({"input_shape": SHAPE, "layers": [{"type": "residual", "layers": "conv"}]}, r"list"),
        ({"input_shape": [0, 6, 6], "layers": [OUT]}, r"input_shape"),
        ({"input_shape": SHAPE, "layers": [OUT], "dtype": "float16"}, r"float32 or float64"),
    ],
)
def test_bad_configs_are_config_errors(config, match):
    with pytest.raises(ConfigError, match=match) as info:
        Sequential.from_config(config)
    assert isinstance(info.value, ValueError)


def test_a_config_error_names_the_layer():
    cfg = {"input_shape": SHAPE, "layers": [conv(2), RELU, {"type": "maxpool", "size": 7}, OUT]}
    with pytest.raises(ConfigError, match=r"layers\[2\] \(maxpool\)"):
        Sequential.from_config(cfg)
    nested = {"input_shape": SHAPE, "layers": [{"type": "residual", "layers": [{"type": "x"}]}]}
    with pytest.raises(ConfigError, match=r"layers\[0\] \(residual\)\.layers\[0\]"):
        Sequential.from_config(nested)


def test_residual_nesting_and_size_are_bounded():
    block = [OUT]
    for _ in range(models._specs.MAX_DEPTH + 2):
        block = [{"type": "residual", "layers": block}]
    with pytest.raises(ConfigError, match="nest deeper"):
        Sequential.from_config({"input_shape": [5], "layers": block})
    with pytest.raises(ConfigError, match="more than"):
        Sequential([RELU] * (models._specs.MAX_LAYERS + 1) + [OUT], [5])


def test_read_config(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(ISSUE_EXAMPLE)
    assert models.read_config(path) == json.loads(ISSUE_EXAMPLE)
    for text, match in [("{", "not a JSON config"), ("[1]", "must be a JSON object")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            models.read_config(path)
    path.write_bytes(b" " * (2 << 20))
    with pytest.raises(ConfigError, match="at most 1 MiB"):
        models.read_config(path)
    with pytest.raises(FileNotFoundError):
        models.read_config(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# Initialisation, names, the classic networks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "gain"), [("relu", 2.0), ("sigmoid", 1.0)])
def test_he_before_relu_xavier_before_sigmoid(activation, gain):
    m = Sequential([{"type": "affine", "units": 400}, {"type": activation}, OUT], [500], seed=0)
    std = float(m.params["W1"].std())
    assert std == pytest.approx(np.sqrt(gain / 500), rel=0.02)
    assert not m.params["b1"].any()
    explicit = Sequential([{"type": "affine", "units": 400, "init": 0.01}, RELU, OUT], [500])
    assert float(explicit.params["W1"].std()) == pytest.approx(0.01, rel=0.02)


def test_names_follow_layer_order():
    layers = [conv(3, pad=1), BN, RELU, {"type": "affine", "units": 6}, BN, RELU, OUT]
    m = Sequential(layers, SHAPE)
    assert list(m.params) == "W1 b1 gamma1 beta1 W2 b2 gamma2 beta2 W3 b3".split()
    assert list(m.state_arrays()) == [
        "BatchNorm1/running_mean", "BatchNorm1/running_var",
        "BatchNorm2/running_mean", "BatchNorm2/running_var",
    ]  # fmt: skip


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_classic_networks_are_sequential_configs(cls):
    classic = cls(backend="reference")
    assert isinstance(classic, Sequential)
    rebuilt = Sequential.from_config(classic.config, backend="reference")
    assert rebuilt.name == cls.__name__
    assert list(rebuilt.params) == list(classic.params)
    for key in classic.params:
        np.testing.assert_array_equal(rebuilt.params[key], classic.params[key])
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    np.testing.assert_array_equal(rebuilt.predict(x), classic.predict(x))


def test_deep_conv_net_has_the_classic_names_and_shapes():
    shapes = {k: v.shape for k, v in DeepConvNet().params.items()}
    assert shapes == {
        "W1": (16, 1, 3, 3), "b1": (16,), "W2": (16, 16, 3, 3), "b2": (16,),
        "W3": (32, 16, 3, 3), "b3": (32,), "W4": (32, 32, 3, 3), "b4": (32,),
        "W5": (64, 32, 3, 3), "b5": (64,), "W6": (64, 64, 3, 3), "b6": (64,),
        "W7": (64 * 4 * 4, 50), "b7": (50,), "W8": (50, 10), "b8": (10,),
    }  # fmt: skip
    assert DeepConvNet().num_params() == 123_552


def test_inputs_of_any_real_dtype_are_cast():
    m = net("maxpool", backend="fast", dtype=np.float32)
    x, _ = batch()
    ref = m.predict(x.astype(np.float32))
    np.testing.assert_array_equal(m.predict(x), ref)
    np.testing.assert_array_equal(m.predict(x.astype(">f4")), ref)
    assert m.predict((x * 10).astype(np.int16)).shape == (4, 5)
    with pytest.raises(TypeError, match="real numbers"):
        m.predict(x.astype(complex))
    with pytest.raises(ValueError, match=r"x must be \(N, 2, 6, 6\) or flattened \(N, 72\)"):
        m.predict(x[:, :1])


# ---------------------------------------------------------------------------------------------
# Files: batch norm statistics, dropout positions, residual blocks
# ---------------------------------------------------------------------------------------------


def _trained(name, steps=3):
    m = net(name, backend="fast", dtype=np.float32)
    x, t = batch(8)
    opt = optim.Adam(lr=0.01, backend="fast")
    for _ in range(steps):
        opt.update(m.params, m.gradient(x, t))
    return m, opt, x, t


@pytest.mark.parametrize(
    "name", ["batchnorm per channel", "batchnorm per feature", "residual, 1x1 projection"]
)
def test_save_and_load_keep_running_statistics(tmp_path, name):
    m, _, x, _ = _trained(name)
    assert any(np.any(a != 0) for a in m.state_arrays().values())
    m.save(tmp_path / "m.npz")
    loaded = models.load(tmp_path / "m.npz")
    assert type(loaded) is Sequential and loaded.config == m.config
    for key, arr in m.state_arrays().items():
        np.testing.assert_array_equal(loaded.state_arrays()[key], arr)
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    fresh = net(name, backend="fast", dtype=np.float32, seed=9)
    fresh.load_params(tmp_path / "m.npz")
    np.testing.assert_array_equal(fresh.predict(x), m.predict(x))
    ref = models.load(tmp_path / "m.npz", backend="reference")
    assert rel_error(ref.predict(x), m.predict(x)) < 1e-4


def test_checkpoint_resumes_dropout_and_adam_exactly(tmp_path):
    m, opt, x, t = _trained("dropout")
    models.save_checkpoint(tmp_path / "c.npz", m, opt, meta={"epoch": 1})
    ck = models.load_checkpoint(tmp_path / "c.npz")
    assert ck.meta["epoch"] == 1 and ck.model.config == m.config
    for a, b in ((m, opt), (ck.model, ck.optimizer)):
        for _ in range(2):
            b.update(a.params, a.gradient(x, t))
    for key in m.params:
        np.testing.assert_array_equal(ck.model.params[key], m.params[key])


def test_loading_into_a_different_architecture_names_the_difference(tmp_path):
    m = net("maxpool", backend="fast", dtype=np.float32)
    m.save(tmp_path / "m.npz")
    wider = Sequential(
        [conv(4, pad=1), RELU, {"type": "maxpool", "size": 2}, OUT], SHAPE, dtype=np.float32
    )
    with pytest.raises(models.ModelFileError, match=r"layers\[0\]\.filters is 3 in the file"):
        wider.load_params(tmp_path / "m.npz")


# ---------------------------------------------------------------------------------------------
# The tutorial networks of docs/models.md
# ---------------------------------------------------------------------------------------------

EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "models.md"


def _doc_configs():
    """docs/models.md's ```json blocks that follow a "docs/examples/<file>" line."""
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"`docs/examples/([\w.]+)`[^\n]*\n+```json\n(.*?)```", text, re.S))


@pytest.mark.parametrize(
    ("file", "params"),
    [
        ("per_sample_tutorial.json", 6_810),
        ("minibatch_tutorial.json", 15_898),
        ("small_resnet.json", 35_146),
    ],
)
def test_tutorial_networks_are_the_documented_configs(file, params):
    config = models.read_config(EXAMPLES / file)
    assert json.loads(_doc_configs()[file]) == config  # the docs show what the file holds
    m = Sequential.from_config(config)
    assert m.num_params() == params
    assert f"| {params:,} |" in DOC.read_text(encoding="utf-8")
    x, t = batch(4)
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    loss = m.loss(x, t)
    opt = optim.Adam(lr=0.01)
    for _ in range(5):
        opt.update(m.params, m.gradient(x, t))
    assert m.loss(x, t) < loss


def test_configs_do_not_share_state_with_the_caller():
    layers = copy.deepcopy(NETS["residual, identity"])
    m = Sequential(layers, SHAPE)
    before = m.config
    layers[2]["layers"].append(RELU)
    layers[0]["filters"] = 7
    assert m.config == before and len(m.config["layers"][2]["layers"]) == 3
