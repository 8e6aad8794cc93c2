"""Tests of ONNX export and import (fastcnn.models.export_onnx / from_onnx): for every layer
type and both dtypes a runtime's output equals ``model.predict``; export -> import gives the
same config, params and predictions; a CNN exported by PyTorch imports and matches PyTorch;
everything outside the subset, and hostile files, are clear errors naming the node.

float32 graphs run in onnxruntime. float64 graphs run in onnx's reference evaluator (the
spec's own implementation), and in onnxruntime as well when it has double kernels for every
op of the graph (its CPU provider has none for Conv, AveragePool and GlobalAveragePool).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from fastcnn import models
from fastcnn.models import DeepConvNet, OnnxError, Sequential, SimpleConvNet, export_onnx, from_onnx

INPUT = [2, 8, 8]
CONV = {"type": "conv", "filters": 3, "size": 3, "pad": 1}
OUT = {"type": "affine", "units": 4}

# One small network per layer type (and per form of it), each ending in scores.
CASES: dict[str, list[dict]] = {
    "conv": [{"type": "conv", "filters": 3, "size": [3, 2], "stride": [2, 1], "pad": [1, 0]}, OUT],
    "conv_same": [{"type": "conv", "filters": 3, "size": [3, 5], "pad": "same"}, OUT],
    # Inputs are shifted negative, so a pad counted as 0 (not -inf) would win some windows.
    "maxpool": [{"type": "maxpool", "size": 3, "stride": 2, "pad": 1}, OUT],
    "maxpool_default_stride": [CONV, {"type": "maxpool", "size": 2}, OUT],
    # With padding, the divisor (whole window vs real cells) shows on the border.
    "avgpool": [{"type": "avgpool", "size": 3, "stride": 2, "pad": 1}, OUT],
    "flatten": [CONV, {"type": "flatten"}, OUT],
    "affine": [{"type": "affine", "units": 5}, OUT],
    "relu": [CONV, {"type": "relu"}, OUT],
    "sigmoid": [{"type": "affine", "units": 5}, {"type": "sigmoid"}, OUT],
    "dropout": [{"type": "affine", "units": 5}, {"type": "dropout", "ratio": 0.3}, OUT],
    "batchnorm_channel": [CONV, {"type": "batchnorm"}, OUT],
    "batchnorm_feature": [{"type": "affine", "units": 5}, {"type": "batchnorm"}, OUT],
    "batchnorm_image_feature": [CONV, {"type": "batchnorm", "axis": "feature"}, OUT],
    "globalavgpool": [CONV, {"type": "globalavgpool"}, OUT],
    "residual_identity": [
        CONV,
        {"type": "residual", "layers": [CONV, {"type": "relu"}]},
        OUT,
    ],
    "residual_projection": [
        {
            "type": "residual",
            "layers": [{"type": "conv", "filters": 4, "size": 3, "stride": 2, "pad": 1}],
        },
        {"type": "relu"},
        OUT,
    ],
    "residual_forced_conv": [
        CONV,
        {"type": "residual", "layers": [CONV, {"type": "sigmoid"}], "shortcut": "conv"},
        OUT,
    ],
    "residual_vector": [
        {"type": "affine", "units": 5},
        {"type": "residual", "layers": [{"type": "affine", "units": 5}, {"type": "relu"}]},
        OUT,
    ],
    "residual_nested": [
        CONV,
        {
            "type": "residual",
            "layers": [
                {"type": "residual", "layers": [CONV, {"type": "relu"}]},
                {"type": "batchnorm"},
            ],
        },
        OUT,
    ],
}
DTYPES = [np.float32, np.float64]
# onnxruntime's CPU provider (1.32) has no double kernels for these ops.
_ORT_NO_DOUBLE = {"Conv", "AveragePool", "GlobalAveragePool"}


def _model(layers: list[dict], dtype: type, input_shape: list[int] = INPUT) -> Sequential:
    """The network with weights drawn as usual and batch-norm params and statistics set
    away from their initial values (var 1 and mean 0 would hide a wrong mapping)."""
    m = Sequential(layers, input_shape, dtype=dtype, seed=3)
    rng = np.random.default_rng(5)
    for key, a in {**m.params, **m.state_arrays()}.items():
        if key.startswith(("gamma", "beta", "b")) or "/" in key:
            a[...] = (
                rng.uniform(0.5, 2.0, a.shape)
                if "var" in key or "gamma" in key
                else (rng.uniform(-1, 1, a.shape))
            )
    return m


def _x(model: Sequential, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((n, *model.input_dim)) - 1.0).astype(model.dtype)


def _runs(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's output for x from each runtime that can run it (see the module doc)."""
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    out = {}
    if x.dtype == np.float32 or not ops & _ORT_NO_DOUBLE:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out["onnxruntime"] = sess.run(None, {"input": x})[0]
    if x.dtype == np.float64:
        out["reference"] = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    return out


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    tol = 1e-5 if expected.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=tol * 10, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_runtime_output_equals_predict(case: str, dtype: type, tmp_path) -> None:
    model = _model(CASES[case], dtype)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path)
    x = _x(model)
    want = model.predict(x)
    runs = _runs(path, x)
    assert runs
    for got in runs.values():
        _close(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_same_config_params_predictions(case: str, dtype: type, tmp_path) -> None:
    model = _model(CASES[case], dtype)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    back = from_onnx(path)
    assert back.config == model.config
    assert back.dtype == model.dtype
    for store in ("params", "state_arrays"):
        ours = getattr(model, store) if store == "params" else model.state_arrays()
        theirs = getattr(back, store) if store == "params" else back.state_arrays()
        assert list(theirs) == list(ours)
        for key in ours:
            np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-15, atol=1e-15)
    x = _x(model)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ["batchnorm_channel", "batchnorm_image_feature"])
def test_batchnorm_of_a_new_model_float64(case: str, tmp_path) -> None:
    """Running variance 0 (as a new model starts): y = x / sqrt(1e-6) magnifies any error in
    epsilon, which ONNX keeps as a float32 (export carries the difference in the variance)."""
    model = Sequential(CASES[case], INPUT, dtype=np.float64)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    x = _x(model)
    _close(_runs(str(path), x)["reference"], model.predict(x))
    back = from_onnx(path)
    for key, a in model.state_arrays().items():
        np.testing.assert_array_equal(back.state_arrays()[key], a)


def test_round_trip_classic_models(tmp_path) -> None:
    for model in (
        SimpleConvNet(input_dim=(1, 10, 10), hidden_size=6, output_size=3),
        DeepConvNet(input_dim=(1, 12, 12), hidden_size=8, output_size=3),
    ):
        path = tmp_path / f"{model.name}.onnx"
        export_onnx(model, path)
        x = _x(model, 3)
        _close(_runs(str(path), x)["onnxruntime"], model.predict(x))
        back = from_onnx(path, backend="reference")
        assert back.config == model.config and back.backend == "reference"
        np.testing.assert_array_equal(back.params["W1"], model.params["W1"])
        _close(back.predict(x), model.predict(x))


def test_export_of_a_loaded_model_file(tmp_path) -> None:
    """What `fastcnn export model.npz model.onnx` does: export_onnx(models.load(path), out)."""
    model = _model(CASES["residual_nested"], np.float32)
    model.save(tmp_path / "m.npz")
    export_onnx(models.load(tmp_path / "m.npz"), tmp_path / "m.onnx")
    x = _x(model)
    _close(_runs(str(tmp_path / "m.onnx"), x)["onnxruntime"], model.predict(x))


def test_graph_interface(tmp_path) -> None:
    model = _model(CASES["residual_projection"], np.float32)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp)) == ("input", ["N", *INPUT])
    assert (out.name, dims(out)) == ("logits", ["N", 4])
    assert proto.opset_import[0].version == 17
    assert {t.name for t in proto.graph.initializer} >= {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert [n.name for n in proto.graph.node] == [
        "Conv1", "Residual1/shortcut", "Residual1", "Relu1", "Affine1/flatten", "Affine1",
    ]  # fmt: skip
    # A dynamic batch: any N runs, including 1.
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = _x(model, n)
        _close(sess.run(None, {"input": x})[0], model.predict(x))


@pytest.mark.parametrize("opset", [13, 17, onnx.defs.onnx_opset_version()])
def test_opsets(opset: int, tmp_path) -> None:
    """The oldest opset export writes, in onnxruntime (float32: onnx's reference evaluator
    runs BatchNormalization before opset 14 in training mode), and the newest the installed
    onnx knows, in the reference evaluator (onnxruntime may not know it yet)."""
    dtype = np.float32 if opset < 14 else np.float64
    layers = [*CASES["batchnorm_image_feature"][:-1], {"type": "dropout"}, OUT]
    model = _model(layers, dtype)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, opset=opset)
    assert onnx.load(path).opset_import[0].version == opset
    x = _x(model)
    _close(next(iter(_runs(str(path), x).values())), model.predict(x))
    assert from_onnx(path).config == model.config


def test_export_refuses_bad_arguments(tmp_path) -> None:
    model = _model(CASES["relu"], np.float32)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=12)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=onnx.defs.onnx_opset_version() + 1)
    with pytest.raises(TypeError, match="Sequential"):
        export_onnx(object(), tmp_path / "m.onnx")  # type: ignore[arg-type]
    model.params["W1"] = model.params["W1"].copy()  # rebound: no longer the layer's array
    with pytest.raises(OnnxError, match="rebound"):
        export_onnx(model, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_export_is_atomic(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = _model(CASES["relu"], np.float32)
    from fastcnn.models import _onnx_export

    def broken(f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(
        _onnx_export._atomic,
        "write_atomic",
        lambda p, w, real=_onnx_export._atomic.write_atomic: real(p, broken),
    )
    with pytest.raises(OSError, match="disk full"):
        export_onnx(model, path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]
    monkeypatch.undo()
    export_onnx(model, path)
    assert os.listdir(tmp_path) == ["m.onnx"] and onnx.load(path).graph.node


def test_import_fastcnn_does_not_import_onnx() -> None:
    code = (
        "import sys, fastcnn, fastcnn.models as m; m.Sequential; "
        "m.export_onnx, m.from_onnx, m.OnnxError; "
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert {"export_onnx", "from_onnx", "OnnxError"} <= set(models.__all__)


# -- import: what export does not write ----------------------------------------------------------


def test_stored_config_is_ignored_when_the_graph_was_edited(tmp_path) -> None:
    model = _model(CASES["dropout"], np.float32)
    model_cfg = model.config
    proto = onnx.load_from_string(_export_bytes(model, tmp_path))
    scale = next(t for t in proto.graph.initializer if t.name == "Dropout1/scale")
    scale.CopyFrom(numpy_helper.from_array(np.array(0.25, np.float32), "Dropout1/scale"))
    path = _save(proto, tmp_path)
    back = from_onnx(path)
    assert back.config["layers"][1] == {"type": "dropout", "ratio": 0.75}
    assert model_cfg["layers"][1]["ratio"] == 0.3
    x = _x(model)
    _close(back.predict(x), ort.InferenceSession(path).run(None, {"input": x})[0])


def test_a_graph_without_stored_config(tmp_path) -> None:
    """Spellings a graph does not keep come back in their plain form: pads as numbers, a
    pooling stride equal to the window left out, the dropout ratio as the shortest decimal
    that gives the graph's scale."""
    layers = [
        {"type": "conv", "filters": 2, "size": 3, "pad": "same", "init": "xavier"},
        {"type": "maxpool", "size": 2, "stride": 2},
        {"type": "dropout", "ratio": 0.123456789},
        OUT,
    ]
    model = _model(layers, np.float32)
    proto = onnx.load_from_string(_export_bytes(model, tmp_path))
    del proto.metadata_props[:]
    back = from_onnx(_save(proto, tmp_path), dtype="float64")
    assert back.dtype == np.float64
    assert back.config["layers"][:3] == [
        {"type": "conv", "filters": 2, "size": 3, "stride": 1, "pad": 1, "init": "auto"},
        {"type": "maxpool", "size": 2, "pad": 0},
        {"type": "dropout", "ratio": 0.1234568},
    ]
    x = _x(model)
    _close(back.predict(x).astype(np.float32), model.predict(x))


def test_final_softmax_is_the_models_softmax(tmp_path) -> None:
    model = _model(CASES["sigmoid"], np.float32)
    proto = onnx.load_from_string(_export_bytes(model, tmp_path))
    proto.graph.node[-1].output[0] = "scores"
    proto.graph.node.append(helper.make_node("Softmax", ["scores"], ["logits"], name="probs"))
    path = _save(proto, tmp_path)
    back = from_onnx(path)
    x = _x(model)
    _close(back.predict(x), model.predict(x))
    _close(back.predict_proba(x), ort.InferenceSession(path).run(None, {"input": x})[0])


# -- PyTorch ---------------------------------------------------------------------------------------


def _torch_net():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    nn = torch.nn

    class Net(nn.Module):
        """A small CNN: Conv, BatchNorm, ReLU, MaxPool, a residual block with a 1×1
        projection, average pooling, Flatten, Linear, Sigmoid, Linear."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.short = nn.Conv2d(4, 6, 1, stride=2)
            self.avg = nn.AvgPool2d(3, stride=1, padding=1)
            self.fc1 = nn.Linear(6 * 4 * 4, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn1(self.conv1(x))))
            x = torch.relu(self.conv2(x)) + self.short(x)
            x = torch.flatten(self.avg(x), 1)
            return self.fc2(torch.sigmoid(self.fc1(x)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-1, 1)
        net.bn1.running_var.uniform_(0.5, 2)
        net.bn1.weight.uniform_(0.5, 2)
    return torch, net.eval()


@pytest.mark.parametrize("folding", [False, True], ids=["batchnorm", "folded"])
def test_torch_exported_cnn_imports(folding: bool, tmp_path) -> None:
    """The TorchScript exporter (dynamo=False: needs no onnxscript), with batch norm kept as
    a node (its epsilon 1e-5 is carried into the running variance) or folded into the Conv."""
    torch, net = _torch_net()
    x = torch.randn(5, 1, 16, 16)
    path = str(tmp_path / "torch.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net, (x,), path, input_names=["x"], output_names=["y"], dynamo=False,
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=folding,
        )  # fmt: skip
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ("BatchNormalization" in ops) != folding
    model = from_onnx(path)
    kinds = [layer["type"] for layer in model.config["layers"]]
    assert (
        kinds[:3] == ["conv", "batchnorm", "relu"] if not folding else ["conv", "relu", "maxpool"]
    )
    assert "residual" in kinds and model.output_size == 10
    with torch.no_grad():
        want = net(x).numpy()
    _close(model.predict(x.numpy()), want)
    # ... and it trains (a training-mode pass moves the batch-norm statistics) and saves as
    # any fastcnn model.
    loss, grads = model.loss_and_gradient(x.numpy(), np.arange(5))
    assert np.isfinite(loss) and set(grads) == set(model.params)
    model.save(tmp_path / "m.npz")
    _close(models.load(tmp_path / "m.npz").predict(x.numpy()), model.predict(x.numpy()))


def test_torch_dynamo_exported_cnn_imports(tmp_path) -> None:
    """The torch.export-based exporter (torch's default; needs onnxscript), which writes the
    weights to a separate data file and a global average pool as ReduceMean + Reshape."""
    torch, net = _torch_net()
    pytest.importorskip("onnxscript", reason="onnxscript is not installed")
    net.avg = torch.nn.AdaptiveAvgPool2d(1)
    net.fc1 = torch.nn.Linear(6, 16)
    x = torch.randn(5, 1, 16, 16)
    path = str(tmp_path / "torch.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), path, input_names=["x"], output_names=["y"], dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("N")}}, verbose=False,
        )  # fmt: skip
    stored = onnx.load(path, load_external_data=False).graph.initializer
    assert any(t.data_location == TensorProto.EXTERNAL for t in stored)
    model = from_onnx(path)
    assert "globalavgpool" in [layer["type"] for layer in model.config["layers"]]
    with torch.no_grad():
        _close(model.predict(x.numpy()), net(x).numpy())


# -- errors ----------------------------------------------------------------------------------------


def _export_bytes(model: Sequential, tmp_path) -> bytes:
    path = tmp_path / "export.onnx"
    export_onnx(model, path)
    return path.read_bytes()


def _save(proto, tmp_path, name: str = "edited.onnx") -> str:
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def _graph(
    nodes, inits=(), shape=(None, 2, 6, 6), elem=TensorProto.FLOAT, out="y"
) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, list(shape))],
        [helper.make_tensor_value_info(out, elem, None)], list(inits),
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _init(name: str, a) -> TensorProto:
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


W = _init("W", np.ones((3, 2, 3, 3)))
B = _init("B", np.zeros(3))


@pytest.mark.parametrize(
    ("node", "inits", "message"),
    [
        (
            helper.make_node("Tanh", ["x"], ["y"], name="act"),
            [],
            r"'act' \(Tanh\).*not in the subset",
        ),
        (
            helper.make_node("Conv", ["x", "W", "B"], ["y"], name="c", pads=[1, 1, 0, 0]),
            [W, B],
            r"'c' \(Conv\).*not symmetric",
        ),
        (
            helper.make_node("Conv", ["x", "W", "B"], ["y"], name="c", dilations=[2, 2]),
            [W, B],
            r"'c' \(Conv\).*dilation",
        ),
        (
            helper.make_node("Conv", ["x", "W"], ["y"], name="c", auto_pad="SAME_UPPER"),
            [W],
            r"'c' \(Conv\).*auto_pad",
        ),
        (
            helper.make_node("Conv", ["x", "W2"], ["y"], name="c"),
            [_init("W2", np.ones((3, 5, 3, 3)))],
            r"'c' \(Conv\).*weight \(3, 5, 3, 3\)",
        ),
        (
            helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], ceil_mode=1),
            [],
            r"'p' \(MaxPool\).*ceil_mode",
        ),
        (
            helper.make_node(
                "AveragePool", ["x"], ["y"], name="p", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            [],
            r"'p' \(AveragePool\).*count_include_pad",
        ),
        (
            helper.make_node(
                "MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], pads=[2, 2, 2, 2]
            ),
            [],
            r"'p' \(MaxPool\).*pad must be smaller than window",
        ),
        (
            helper.make_node("Mul", ["x", "S"], ["y"], name="m"),
            [_init("S", np.ones((2, 6, 6)))],
            r"'m' \(Mul\).*scalar",
        ),
        (
            helper.make_node("Mul", ["x", "S"], ["y"], name="m"),
            [_init("S", 2.0)],
            r"'m' \(Mul\).*\[0, 1\]",
        ),
        (
            helper.make_node("Gemm", ["x", "W"], ["y"], name="fc"),
            [W],
            r"'fc' \(Gemm\).*flatten",
        ),
        (
            helper.make_node("Relu", ["x"], ["y"], name="r", domain="com.microsoft"),
            [],
            r"'r' \(Relu\).*domain",
        ),
        (
            helper.make_node("Softmax", ["x"], ["y"], name="s", axis=1),
            [],
            r"'s' \(Softmax\).*last node",
        ),
    ],
)
def test_unsupported_nodes_are_named(node, inits, message, tmp_path) -> None:
    path = _save(_graph([node], inits), tmp_path)
    with pytest.raises(OnnxError, match=message):
        from_onnx(path)


def test_unsupported_node_in_an_exported_graph_is_named(tmp_path) -> None:
    model = _model(CASES["relu"], np.float32)
    proto = onnx.load_from_string(_export_bytes(model, tmp_path))
    relu = next(n for n in proto.graph.node if n.name == "Relu1")
    relu.op_type = "LeakyRelu"
    with pytest.raises(OnnxError, match=r"node 'Relu1' \(LeakyRelu\): op LeakyRelu is not"):
        from_onnx(_save(proto, tmp_path))


def test_shape_computations_are_named(tmp_path) -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape_of_x"),
        helper.make_node("Reshape", ["x", "s"], ["y"], name="view"),
    ]
    with pytest.raises(OnnxError, match=r"'shape_of_x' \(Shape\)"):
        from_onnx(_save(_graph(nodes), tmp_path))


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_and_add_read_as_an_affine(bias_first: bool, tmp_path) -> None:
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((72, 4)), rng.standard_normal(4)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "W"], ["mm"], name="mm"),
        helper.make_node("Add", ["b", "mm"] if bias_first else ["mm", "b"], ["y"], name="bias"),
    ]
    model = from_onnx(_save(_graph(nodes, [_init("W", w), _init("b", b)]), tmp_path))
    assert [layer["type"] for layer in model.config["layers"]] == ["flatten", "affine"]
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    _close(model.predict(x), (x.reshape(3, -1) @ w.astype(np.float32) + b).astype(np.float32))


def test_a_cycle_is_refused(tmp_path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r1"),
        helper.make_node("Relu", ["a"], ["a"], name="r2"),
    ]
    with pytest.raises(OnnxError, match=r"'r2' \(Relu\): the graph has a cycle"):
        from_onnx(_save(_graph(nodes), tmp_path))


def test_mul_by_a_constant_on_either_side(tmp_path) -> None:
    for inputs in (["x", "S"], ["S", "x"]):
        nodes = [
            helper.make_node("Mul", inputs, ["m"], name="scale"),
            helper.make_node("Flatten", ["m"], ["y"], name="f"),
        ]
        model = from_onnx(_save(_graph(nodes, [_init("S", 0.75)]), tmp_path))
        assert model.config["layers"][0] == {"type": "dropout", "ratio": 0.25}


def test_an_unused_second_output_is_refused(tmp_path) -> None:
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="p", kernel_shape=[2, 2])
    nxt = helper.make_node("Flatten", ["idx"], ["z"], name="f")
    proto = _graph([node, nxt], out="z")
    with pytest.raises(OnnxError, match=r"'p' \(MaxPool\).*output 'idx' is used"):
        from_onnx(_save(proto, tmp_path))


@pytest.mark.parametrize(
    "content", [b"", b"this is not an ONNX file\n", bytes(range(256)) * 4, b"\x08\x07" * 3]
)
def test_a_file_that_is_not_onnx(content: bytes, tmp_path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxError, match="not an ONNX model"):
        from_onnx(path)


def test_missing_file_and_bad_arguments(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "none.onnx")
    path = tmp_path / "m.onnx"
    export_onnx(_model(CASES["relu"], np.float32), path)
    with pytest.raises(ValueError, match="backend"):
        from_onnx(path, backend="gpu")
    with pytest.raises(ValueError, match="dtype"):
        from_onnx(path, dtype="float16")


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((None, 1, 100000, 100000), r"\[1, 65536\]"),
        ((None, 1024, 4096, 4096), "too large"),
        ((None, 2, 0, 6), r"\[1, 65536\]"),
        ((None, 2, "H", 6), r"\[1, 65536\]"),
        ((None, 2, 6), r"\(N, C, H, W\) or \(N, D\)"),
    ],
)
def test_huge_or_odd_input_dims(shape, message, tmp_path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    with pytest.raises(OnnxError, match=message):
        from_onnx(_save(_graph([node], shape=shape), tmp_path))


def test_huge_declared_weight_dims(tmp_path) -> None:
    """dims far beyond the data held, or beyond what fastcnn builds: refused before any
    allocation of that size."""
    for dims, message in [
        ((1 << 20, 1 << 20, 3, 3), "more than fastcnn builds"),
        ((3, 2, 3, 3), r"declare 54 values but it holds 8 bytes"),
    ]:
        w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=list(dims), raw_data=b"\0" * 8)
        node = helper.make_node("Conv", ["x", "W"], ["y"], name="c")
        with pytest.raises(OnnxError, match=rf"'c' \(Conv\): weight 'W'.*{message}"):
            from_onnx(_save(_graph([node], [w]), tmp_path))


def test_external_data_must_stay_in_the_directory(tmp_path) -> None:
    (tmp_path / "w.bin").write_bytes(np.ones(54, np.float32).tobytes())
    for location, message in [
        ("../w.bin", "must be a file name"),
        ("/etc/passwd", "must be a file name"),
        ("missing.bin", "cannot read"),
        ("w.bin", None),
    ]:
        w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[3, 2, 3, 3])
        w.data_location = TensorProto.EXTERNAL
        w.external_data.add(key="location", value=location)
        nodes = [
            helper.make_node("Conv", ["x", "W"], ["c"], name="c"),
            helper.make_node("Flatten", ["c"], ["y"], name="f"),
        ]
        path = _save(_graph(nodes, [w]), tmp_path)
        if message is None:
            assert np.all(from_onnx(path).params["W1"] == 1)
        else:
            with pytest.raises(OnnxError, match=rf"'c' \(Conv\): weight 'W'.*{message}"):
                from_onnx(path)


def test_non_finite_weights_are_refused(tmp_path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="c"),
        helper.make_node("Flatten", ["c"], ["y"], name="f"),
    ]
    path = _save(_graph(nodes, [W, _init("B", [0, np.nan, 0])]), tmp_path)
    with pytest.raises(OnnxError, match="NaN or infinite"):
        from_onnx(path)
    big = numpy_helper.from_array(np.full(3, 1e300), "B")
    path = _save(_graph(nodes, [W, big]), tmp_path)
    with pytest.raises(OnnxError, match="beyond the range of float32"):
        from_onnx(path)


def test_the_export_command(tmp_path, capsys) -> None:
    from fastcnn import cli

    m = Sequential(CASES["residual_projection"], INPUT, name="Net")
    m.save(tmp_path / "m.npz")
    out = tmp_path / "m.onnx"
    assert cli.main(["export", str(tmp_path / "m.npz"), str(out)]) == 0
    assert f"wrote {out}: Net (" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((3, *INPUT)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, m.predict(x), rtol=1e-5, atol=1e-5)

    before = out.read_bytes()
    for argv, message in [
        (["export", str(tmp_path / "missing.npz"), str(out)], "no such model file"),
        (["export", str(tmp_path / "m.npz"), str(tmp_path)], "is a directory"),
        (["export", str(tmp_path / "m.npz"), str(tmp_path / "no" / "m.onnx")], "no such dir"),
        (["export", str(tmp_path / "m.npz"), str(tmp_path / "m.npz")], "is the input file"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == before  # nothing was overwritten by the failed runs
