"""Sequential -> ONNX: every layer type in its inference form, one exporter per config type
(``_EXPORTERS``). The graph maps input (N, *input_shape) to the logits (N, classes) that
``model.predict`` returns (no softmax), with a dynamic batch dimension N.

Node names are the model's layer names (Conv1, Relu1, ...; helper nodes "<layer>/<role>")
and initializers its param names (W1, b1, gamma1, ...; batch-norm statistics
"<layer>/running_mean"), so a graph reads back against ``model.summary()``; the model's config
rides along as metadata, for from_onnx to restore its spellings. Training-only behaviour
(dropout masks, batch statistics) is deliberately not exported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from fastcnn import _atomic
from fastcnn import _validation as V
from fastcnn.models import _specs
from fastcnn.models._onnx import (
    DEFAULT_OPSET,
    ELEM_TYPES,
    MIN_EXPORT_OPSET,
    OnnxError,
    require_onnx,
)
from fastcnn.models._sequential import Sequential
from fastcnn.reference import layers as _ref

# The metadata entry holding model.config as JSON: from_onnx restores the config's spellings
# from it (pad "same", init, the name) when it describes the graph exactly.
CONFIG_KEY = "fastcnn.config"

# protobuf refuses to serialise a message of 2 GiB or more (ONNX's single-file limit).
_MAX_PROTO = (1 << 31) - 1


def export_onnx(
    model: Sequential, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET
) -> None:
    """Write ``model`` as an ONNX graph in inference form to ``path``, atomically (a temporary
    file renamed over ``path``: an error leaves no file and an existing one unchanged).

    The graph's input "input" is (N, *model.input_dim) and its output "logits" is
    (N, model.output_size): what ``model.predict(x)`` returns, before any softmax. Its element
    type is the model's dtype (float or double). ``opset`` is the ai.onnx opset written, from
    13 to the newest the installed onnx package knows. See docs/onnx.md.
    """
    onnx = require_onnx()
    if not isinstance(model, Sequential):
        raise TypeError(
            f"export_onnx: model must be a fastcnn Sequential model, got {type(model).__name__}"
        )
    newest = int(onnx.defs.onnx_opset_version())
    opset = V.check_int(opset, "opset", "export_onnx", low=MIN_EXPORT_OPSET, high=newest)
    proto = to_model_proto(model, opset)
    if proto.ByteSize() > _MAX_PROTO:
        raise OnnxError(
            f"export_onnx: {model.name} needs {proto.ByteSize():,} bytes of ONNX, beyond the "
            "2 GiB a single ONNX file can hold"
        )
    onnx.checker.check_model(proto, full_check=True)  # a bug here, not the user's: fail loudly
    data = proto.SerializeToString()
    _atomic.write_atomic(path, lambda f: f.write(data))


def to_model_proto(model: Sequential, opset: int = DEFAULT_OPSET) -> Any:
    """The onnx.ModelProto export_onnx writes (checked by the caller)."""
    onnx = require_onnx()
    from fastcnn import __version__

    g = _Graph(model)
    out, shape = g.chain(model._specs, model.layers, "input", model.input_dim)
    assert shape == (model.output_size,)
    g.rename_output(out, "logits")
    elem = ELEM_TYPES[model.dtype]
    graph = onnx.helper.make_graph(
        g.nodes,
        model.name,
        [onnx.helper.make_tensor_value_info("input", elem, ["N", *model.input_dim])],
        [onnx.helper.make_tensor_value_info("logits", elem, ["N", model.output_size])],
        g.initializers,
        doc_string=f"fastcnn {model.name}: the logits model.predict returns (no softmax)",
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="fastcnn",
        producer_version=__version__,
    )
    onnx.helper.set_model_props(proto, {CONFIG_KEY: json.dumps(model.config)})
    # The IR version of the opset, not the newest the onnx package writes: an older runtime
    # that supports this opset can then read the file.
    proto.ir_version = min(proto.ir_version, _ir_version(onnx, opset))
    return proto


def _ir_version(onnx: Any, opset: int) -> int:
    for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx >= opset:
            return int(ir)
    return int(onnx.IR_VERSION)


class _Graph:
    """The nodes and initializers being written; tensor names are the producing node's name."""

    def __init__(self, model: Sequential) -> None:
        self.onnx = require_onnx()
        self.dtype = model.dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._written: set[str] = set()
        # The arrays' names: params (W1, b1, gamma1, ...) and batch-norm statistics.
        self._names = {id(a): k for k, a in {**model.params, **model.state_arrays()}.items()}

    def array(self, a: np.ndarray, what: str, value: np.ndarray | None = None) -> str:
        """The initializer of one of the model's arrays (named as in params / state_arrays),
        holding ``value`` if given (an array computed from ``a``), else ``a``."""
        name = self._names.get(id(a))
        if name is None:
            raise OnnxError(
                f"export_onnx: the {what} is not an array of model.params or "
                "model.state_arrays() (was a params key rebound rather than updated in place?)"
            )
        if name not in self._written:
            self._written.add(name)
            data = np.asarray(a if value is None else value)
            self.initializers.append(self.onnx.numpy_helper.from_array(data, name))
        return name

    def constant(self, name: str, a: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(a, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def rename_output(self, tensor: str, new: str) -> None:
        node = self.nodes[-1]
        assert list(node.output) == [tensor]
        node.output[0] = new

    def chain(
        self, specs: list[_specs.LayerSpec], layers: dict[str, Any], x: str, shape: _specs.Shape
    ) -> tuple[str, _specs.Shape]:
        # Each spec built exactly one entry of its chain's layers, in order.
        assert len(specs) == len(layers)
        for spec, (name, layer) in zip(specs, layers.items()):
            x = _EXPORTERS[spec.type](self, spec, name, layer, x, shape)
            shape = spec.output_shape(shape)
        return x, shape


def _flatten_to_rows(g: _Graph, x: str, name: str) -> str:
    return g.node("Reshape", [x, g.constant(f"{name}/shape", np.array([0, -1], np.int64))], name)


def _conv(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    w, b = g.array(layer.W, f"{name} W"), g.array(layer.b, f"{name} b")
    (sh, sw), (ph, pw) = V.as_pair(layer.stride, "stride"), V.as_pair(layer.pad, "pad")
    return g.node(
        "Conv", [x, w, b], name, kernel_shape=list(layer.W.shape[2:]), strides=[sh, sw],
        pads=[ph, pw, ph, pw], dilations=[1, 1], group=1,
    )  # fmt: skip


def _pool(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # Padding: MaxPool ignores padded cells (fastcnn pads with -inf), and AveragePool with
    # count_include_pad=1 divides by the whole window (fastcnn counts padding as zeros). Both
    # are exact because fastcnn requires pad < window, so no window is only padding.
    (sh, sw), (ph, pw) = V.as_pair(layer.stride, "stride"), V.as_pair(layer.pad, "pad")
    attrs: dict[str, Any] = {
        "kernel_shape": [layer.pool_h, layer.pool_w], "strides": [sh, sw],
        "pads": [ph, pw, ph, pw], "ceil_mode": 0,
    }  # fmt: skip
    if spec.type == "avgpool":
        return g.node("AveragePool", [x], name, count_include_pad=1, **attrs)
    return g.node("MaxPool", [x], name, **attrs)


def _affine(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # An affine layer flattens an image input itself (as the classic Affine does): a Reshape
    # to (N, -1) here, where a flatten layer of the config is a Flatten node.
    if len(shape) > 1:
        x = _flatten_to_rows(g, x, f"{name}/flatten")
    w, b = g.array(layer.W, f"{name} W"), g.array(layer.b, f"{name} b")
    return g.node("Gemm", [x, w, b], name)


def _simple(op: str) -> Callable[..., str]:
    def export(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
        return g.node(op, [x], name)

    return export


def _dropout(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # The classic dropout scales at inference: y = x * (1 - ratio), the scale in the model's
    # dtype as numpy rounds it.
    scale = np.asarray(1.0 - layer.dropout_ratio, dtype=g.dtype)
    return g.node("Mul", [x, g.constant(f"{name}/scale", scale)], name)


def _batchnorm(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # ONNX normalises per channel (axis 1). Per feature of an image is per channel of its
    # (N, C*H*W) view: flatten, normalise, restore the image shape.
    # ONNX keeps epsilon as a float32 (1e-6 becomes 9.99999997e-7); the difference goes into
    # the variance, so that var + epsilon is fastcnn's to float64 precision even where var is
    # 0 (a new model's). from_onnx takes it out again.
    eps = float(layer.eps)
    var = layer.running_var
    shifted = (var.astype(np.float64) + (eps - float(np.float32(eps)))).astype(var.dtype)
    inputs = [
        g.array(layer.gamma, f"{name} gamma"), g.array(layer.beta, f"{name} beta"),
        g.array(layer.running_mean, f"{name} running mean"),
        g.array(var, f"{name} running variance", shifted),
    ]  # fmt: skip
    attrs = {"epsilon": eps, "momentum": float(layer.momentum)}
    per_channel = isinstance(layer, _ref.SpatialBatchNormalization)
    if per_channel or len(shape) == 1:
        return g.node("BatchNormalization", [x, *inputs], name, **attrs)
    rows = g.node("Flatten", [x], f"{name}/flatten", axis=1)
    y = g.node("BatchNormalization", [rows, *inputs], f"{name}/normalize", **attrs)
    back = g.constant(f"{name}/image_shape", np.array([0, *shape], np.int64))
    return g.node("Reshape", [y, back], name)


def _globalavgpool(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # GlobalAveragePool keeps (N, C, 1, 1); fastcnn's gives (N, C).
    pooled = g.node("GlobalAveragePool", [x], f"{name}/pool")
    return g.node("Flatten", [pooled], name, axis=1)


def _flatten(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    return g.node("Flatten", [x], name, axis=1)


def _residual(g: _Graph, spec: Any, name: str, layer: Any, x: str, shape: _specs.Shape) -> str:
    # Add(block, shortcut), in that order: import reads the first input as the block.
    y, out = g.chain(spec.layers, layer.layers, x, shape)
    shortcut = x
    if layer.shortcut is not None:
        conv = layer.shortcut
        w, b = g.array(conv.W, f"{name} shortcut W"), g.array(conv.b, f"{name} shortcut b")
        sh, sw = V.as_pair(conv.stride, "stride")
        shortcut = g.node(
            "Conv", [x, w, b], f"{name}/shortcut", kernel_shape=[1, 1], strides=[sh, sw],
            pads=[0, 0, 0, 0], dilations=[1, 1], group=1,
        )  # fmt: skip
    return g.node("Add", [y, shortcut], name)


# Config type -> its exporter: (graph, spec, layer name, layer object, input tensor, per-sample
# input shape) -> output tensor. One entry per LAYER_TYPES entry.
_EXPORTERS: dict[str, Callable[..., str]] = {
    "conv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "flatten": _flatten,
    "affine": _affine,
    "relu": _simple("Relu"),
    "sigmoid": _simple("Sigmoid"),
    "dropout": _dropout,
    "batchnorm": _batchnorm,
    "globalavgpool": _globalavgpool,
    "residual": _residual,
}
assert set(_EXPORTERS) == set(_specs.LAYER_TYPES), "every layer type needs an ONNX exporter"
