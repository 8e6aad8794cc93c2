"""One reader per ONNX op type (``READERS``): each turns a node into layer specs with the
walking reader's help (_onnx_import._Reader), or refuses it with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from fastcnn import _validation as V
from fastcnn.models import _specs
from fastcnn.models._onnx import OnnxError
from fastcnn.models._onnx_graph import WINDOW_ATTRS, attrs, node_name, window

if TYPE_CHECKING:  # pragma: no cover
    from fastcnn.models._onnx_import import _Reader

Shape = _specs.Shape


def _next(r: _Reader, node: Any) -> Any | None:
    return r.g.sole_user(node.output[0])


def _conv(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    a = attrs(node, {**WINDOW_ATTRS, "kernel_shape": [], "group": 1})
    w, b = r._conv_weights(node, shape, a)
    strides, pads = window(node, a, list(w.shape[2:]))
    entry = {
        "type": "conv", "filters": w.shape[0], "size": list(w.shape[2:]), "stride": strides,
        "pad": pads,
    }  # fmt: skip
    spec, out = r.spec(node, entry, shape)
    r.weighted.append((w, b))
    return [spec], node.output[0], out


def _pool(kind: str) -> Callable[..., tuple[list[Any], str, Shape]]:
    extra = {"count_include_pad": 0} if kind == "avgpool" else {"storage_order": 0}

    def read(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
        a = attrs(node, {**WINDOW_ATTRS, "kernel_shape": [], "ceil_mode": 0, **extra})
        strides, pads = window(node, a, list(a["kernel_shape"]))
        where = f"from_onnx: {node_name(node)}"
        if a["ceil_mode"]:
            raise OnnxError(f"{where}: ceil_mode 1 (fastcnn's output sizes round down)")
        if kind == "avgpool" and any(pads) and not a["count_include_pad"]:
            raise OnnxError(
                f"{where}: count_include_pad 0 with padding; fastcnn's average pool divides "
                "by the whole window (count_include_pad 1)"
            )
        if kind == "maxpool" and a["storage_order"]:
            raise OnnxError(f"{where}: storage_order 1 is not read")
        r.check_outputs(node)
        entry = {"type": kind, "size": a["kernel_shape"], "pad": pads}
        if strides != a["kernel_shape"]:
            entry["stride"] = strides  # else left out: the window size, the config's default
        spec, out = r.spec(node, entry, shape)
        return [spec], node.output[0], out

    return read


def _simple(kind: str) -> Callable[..., tuple[list[Any], str, Shape]]:
    def read(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
        attrs(node, {})
        spec, out = r.spec(node, {"type": kind}, shape)
        return [spec], node.output[0], out

    return read


def _flatten(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Flatten or Reshape to (N, D): a flatten layer; before a Gemm or MatMul, a Reshape is
    the affine layer's own flattening (export writes it so); Flatten, BatchNormalization,
    Reshape back to the image is a per-feature batch norm of the image."""
    if not r.flattens(node, shape):
        raise OnnxError(
            f"from_onnx: {node_name(node)}: only a reshape of (N, ...) to (N, D) is read (flatten)"
        )
    after = _next(r, node)
    if len(shape) == 3 and after is not None and after.op_type == "BatchNormalization":
        back = _next(r, after)
        if back is not None and back.op_type == "Reshape" and _restores(r, back, shape):
            specs, _, _ = _batchnorm(r, after, (math.prod(shape),), axis="feature")
            return specs, back.output[0], shape
    if node.op_type == "Reshape" and after is not None and after.op_type in ("Gemm", "MatMul"):
        return [], node.output[0], (math.prod(shape),)
    spec, out = r.spec(node, {"type": "flatten"}, shape)
    return [spec], node.output[0], out


def _restores(r: _Reader, node: Any, shape: Shape) -> bool:
    if len(node.input) != 2 or not r.g.is_constant(node.input[1]):
        return False
    s = r.g.constant(node.input[1], node, "shape", max_ndim=1).tolist()
    zero_is_n = not attrs(node, {"allowzero": 0})["allowzero"]
    return len(s) == 4 and s[0] in ((0, -1) if zero_is_n else (-1,)) and tuple(s[1:]) == shape


def _affine(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Gemm(x, B, C) with any alpha, beta and transB (not transA), or MatMul(x, W) with an
    optional Add of a constant bias after it."""
    where = f"from_onnx: {node_name(node)}"
    if len(shape) != 1:
        raise OnnxError(f"{where}: needs (N, D) rows; flatten the {V._shape(shape)} input first")
    if node.op_type == "Gemm":
        a = attrs(node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
        if a["transA"]:
            raise OnnxError(f"{where}: transA 1 is not read")
        w = r.g.constant(node.input[1], node, "weight", max_ndim=2)
        w = w.T if a["transB"] else w
        _check_weight(node, w, shape)
        b = r._bias(node, 2, w.shape[1])
        w, b, out = w * a["alpha"] if a["alpha"] != 1 else w, b * a["beta"], node.output[0]
    else:
        attrs(node, {})
        w = r.g.constant(node.input[1], node, "weight", max_ndim=2)
        _check_weight(node, w, shape)
        out, b = node.output[0], np.zeros(w.shape[1])
        add = _next(r, node)
        if add is not None and add.op_type == "Add" and len(add.input) == 2:
            other = add.input[1] if add.input[0] == out else add.input[0]
            if r.g.is_constant(other):
                b = r._bias(add, list(add.input).index(other), w.shape[1])
                out = add.output[0]
    spec, shape_out = r.spec(node, {"type": "affine", "units": w.shape[1]}, shape)
    r.weighted.append((w, b))
    return [spec], out, shape_out


def _check_weight(node: Any, w: np.ndarray, shape: Shape) -> None:
    d = math.prod(shape)
    if w.ndim != 2 or w.shape[0] != d or w.shape[1] == 0:
        raise OnnxError(
            f"from_onnx: {node_name(node)}: weight {V._shape(w.shape)} (as x @ W) must be "
            f"({d}, M) for {d} inputs"
        )


def _batchnorm(
    r: _Reader, node: Any, shape: Shape, axis: str = "auto"
) -> tuple[list[Any], str, Shape]:
    """Normalisation with the running statistics; per channel of an image, per feature of a
    vector. ONNX's epsilon is carried into the running variance (see _fill)."""
    a = attrs(node, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0, "spatial": 1})
    where = f"from_onnx: {node_name(node)}"
    if a["training_mode"] or a["spatial"] != 1:
        raise OnnxError(f"{where}: only inference-mode, per-channel batch norm is read")
    r.check_outputs(node)
    if len(node.input) != 5:
        raise OnnxError(f"{where}: expected 5 inputs (x, scale, bias, mean, var)")
    size = shape[0]
    arrays = []
    for name, what in zip(node.input[1:], ("scale", "bias", "mean", "variance")):
        v = r.g.constant(name, node, what, max_ndim=1)
        if v.shape != (size,):
            raise OnnxError(f"{where}: {what} {V._shape(v.shape)}, not ({size},)")
        arrays.append(v)
    if not (math.isfinite(a["epsilon"]) and a["epsilon"] > 0):
        raise OnnxError(f"{where}: epsilon {a['epsilon']} must be positive")
    # The momentum is ONNX's training attribute with fastcnn's meaning (running = momentum *
    # running + (1 - momentum) * batch), kept for fine-tuning; clipped to fastcnn's [0, 1].
    # ONNX stores it as a float32: read back as the shortest decimal of that float32 (0.9).
    momentum = float(np.format_float_positional(np.float32(a["momentum"]), unique=True))
    momentum = min(max(momentum, 0.0), 1.0)
    entry = {"type": "batchnorm", "momentum": momentum, "axis": axis}
    spec, out = r.spec(node, entry, shape)
    r.norms.append((*arrays, np.float32(a["epsilon"])))
    return [spec], node.output[0], out


def _dropout_scale(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Mul by a scalar c in [0, 1]: classic dropout's inference scaling, ratio 1 - c (written
    as the shortest decimal whose scale in c's dtype is c, so 0.5 reads back as 0.5)."""
    attrs(node, {})
    where = f"from_onnx: {node_name(node)}"
    constants = [i for i in node.input if r.g.is_constant(i)]
    if len(node.input) != 2 or len(constants) != 1:
        raise OnnxError(f"{where}: only a Mul by a constant scalar (dropout's scaling) is read")
    other = constants[0]
    c = r.g.constant(other, node, "scale")
    if c.size != 1 or not 0.0 <= float(c.reshape(())) <= 1.0:
        raise OnnxError(
            f"{where}: a Mul by {V._shape(c.shape)} values; only a scalar in [0, 1] (classic "
            "dropout's inference scaling) is read"
        )
    scale = c.reshape(())
    ratio = 1.0 - float(scale)
    for digits in range(1, 18):
        short = round(ratio, digits)
        if np.asarray(1.0 - short, dtype=scale.dtype) == scale:
            ratio = short
            break
    spec, out = r.spec(node, {"type": "dropout", "ratio": ratio}, shape)
    return [spec], node.output[0], out


def _identity(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Identity, and Dropout, which is the identity at inference (its ratio is not carried
    over: ONNX's and PyTorch's dropout rescale in training, fastcnn's classic one does not)."""
    if node.op_type == "Dropout":
        attrs(node, {"ratio": 0.5, "seed": 0})
        if len(node.input) > 2 and node.input[2]:
            mode = r.g.constant(node.input[2], node, "training_mode", max_ndim=1)
            if mode.size != 1 or bool(mode.reshape(())):
                raise OnnxError(f"from_onnx: {node_name(node)}: training_mode must be false")
        r.check_outputs(node)
    else:
        attrs(node, {})
    return [], node.output[0], shape


def _globalavgpool(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """GlobalAveragePool, or ReduceMean over axes 2 and 3, then (when the dims are kept) a
    flatten to (N, C): fastcnn's global average pool."""
    where = f"from_onnx: {node_name(node)}"
    keep = 1
    if node.op_type == "ReduceMean":
        a = attrs(node, {"axes": [], "keepdims": 1, "noop_with_empty_axes": 0})
        axes = a["axes"]
        if len(node.input) > 1 and node.input[1]:
            axes = r.g.constant(node.input[1], node, "axes", max_ndim=1).tolist()
        if sorted(d % 4 for d in axes) != [2, 3]:
            raise OnnxError(f"{where}: only a mean over axes 2 and 3 (H and W) is read")
        keep = a["keepdims"]
    else:
        attrs(node, {})
    spec, out = r.spec(node, {"type": "globalavgpool"}, shape)
    if not keep:
        return [spec], node.output[0], out
    after = _next(r, node)
    if not r.flattens(after, (shape[0], 1, 1)):
        raise OnnxError(
            f"{where}: its (N, C, 1, 1) output must be flattened next (fastcnn's global average "
            "pool gives (N, C))"
        )
    assert after is not None  # flattens(None) is False
    return [spec], after.output[0], out


def _softmax(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """A Softmax over the classes as the graph's last node: the model's own softmax
    (predict gives the logits before it, predict_proba the graph's output)."""
    a = attrs(node, {"axis": -1 if r.g.opset >= 13 else 1})
    if node.output[0] != r.g.output or len(shape) != 1 or a["axis"] not in (1, -1):
        raise OnnxError(
            f"from_onnx: {node_name(node)}: a Softmax is read only as the last node, over the "
            "classes of (N, classes) scores"
        )
    return [], node.output[0], shape


# ONNX op type -> its reader: (reader, node, per-sample input shape) -> (layer specs, output
# tensor, output shape). Residual Adds are read at the tensor that branches (_Reader.residual).
READERS: dict[str, Callable[..., tuple[list[Any], str, Shape]]] = {
    "Conv": _conv,
    "MaxPool": _pool("maxpool"),
    "AveragePool": _pool("avgpool"),
    "GlobalAveragePool": _globalavgpool,
    "ReduceMean": _globalavgpool,
    "Flatten": _flatten,
    "Reshape": _flatten,
    "Gemm": _affine,
    "MatMul": _affine,
    "Relu": _simple("relu"),
    "Sigmoid": _simple("sigmoid"),
    "Mul": _dropout_scale,
    "Dropout": _identity,
    "Identity": _identity,
    "BatchNormalization": _batchnorm,
    "Softmax": _softmax,
}
