"""The ONNX graph as the importer (_onnx_import.py) reads it: the file parsed with its size
checked first, the one input and output, the constants (initializers and Constant nodes,
converted on first use and checked), who reads each tensor, and the attribute helpers every
op reader shares. It builds no layers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn.models import _archive, _specs
from fastcnn.models._onnx import DTYPES, MIN_IMPORT_OPSET, OnnxError, require_onnx

# The element types of the constants read: float, double, int32, int64.
_ELEMENTS = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64}

# A larger file is not read: protobuf cannot parse a message of 2 GiB or more anyway.
MAX_FILE_BYTES = (1 << 31) - 1

Shape = _specs.Shape


def read_proto(path: str) -> Any:
    onnx = require_onnx()
    size = os.path.getsize(path)  # FileNotFoundError for a missing file, as open() would
    if size > MAX_FILE_BYTES:
        raise OnnxError(f"from_onnx: {path}: {size:,} bytes, larger than an ONNX file can be")
    with open(path, "rb") as f:
        data = f.read()
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as exc:  # protobuf's DecodeError, or a RuntimeWarning-like error
        raise OnnxError(f"from_onnx: {path}: not an ONNX model ({exc})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise OnnxError(f"from_onnx: {path}: not an ONNX model (no graph with nodes)")
    return proto


def node_name(node: Any) -> str:
    label = node.name or (f"producing {node.output[0]!r}" if node.output else "(unnamed)")
    return f"node {label!r} ({node.op_type})"


class Graph:
    """The parsed graph: its one input and output, the constants (initializers and Constant
    nodes, converted on first use), and which nodes read each tensor."""

    def __init__(self, proto: Any, path: str) -> None:
        self.onnx = require_onnx()
        self.proto, self.path = proto, path
        graph = proto.graph
        opsets = {o.domain: o.version for o in proto.opset_import}
        opset = opsets.get("", opsets.get("ai.onnx"))
        if opset is None or opset < MIN_IMPORT_OPSET:
            raise OnnxError(
                f"from_onnx: {path}: ai.onnx opset {opset} is not read (opset "
                f"{MIN_IMPORT_OPSET} or newer)"
            )
        self.opset: int = opset
        self._tensors: dict[str, Any] = {t.name: t for t in graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self.users: dict[str, list[Any]] = {}
        self.index: dict[int, int] = {}  # id(node) -> its position (nodes are sorted)
        for i, node in enumerate(graph.node):
            self.index[id(node)] = i
            if node.domain not in ("", "ai.onnx"):
                raise OnnxError(f"from_onnx: {node_name(node)}: domain {node.domain!r} is not read")
            if node.op_type == "Constant":
                if len(node.output) != 1 or len(node.attribute) != 1:
                    raise OnnxError(f"from_onnx: {node_name(node)}: expected one value")
                self._tensors[node.output[0]] = node.attribute[0]
                continue
            for name in dict.fromkeys(node.input):  # a node reading a tensor twice counts once
                if name and name not in self._tensors:
                    self.users.setdefault(name, []).append(node)
        inputs = [i for i in graph.input if i.name not in self._tensors]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise OnnxError(
                f"from_onnx: {path}: the graph must have one input and one output, has "
                f"{len(inputs)} inputs (besides initializers) and {len(graph.output)} outputs"
            )
        self.input, self.output = inputs[0].name, graph.output[0].name
        self.dtype, self.input_shape = self._input_type(inputs[0])

    def _input_type(self, value: Any) -> tuple[np.dtype, Shape]:
        what = f"from_onnx: {self.path}: the graph input {value.name!r}"
        t = value.type.tensor_type if value.type.HasField("tensor_type") else None
        if t is None or t.elem_type not in DTYPES:
            raise OnnxError(f"{what} must be a float or double tensor")
        if not t.HasField("shape") or len(t.shape.dim) not in (2, 4):
            raise OnnxError(f"{what} must declare its shape (N, C, H, W) or (N, D)")
        dims = []
        for d in t.shape.dim[1:]:
            if not d.HasField("dim_value") or not 1 <= d.dim_value <= 1 << 16:
                raise OnnxError(
                    f"{what}: every dimension but the batch must be a number in [1, 65536], "
                    f"got {t.shape.dim}".replace("\n", " ")
                )
            dims.append(int(d.dim_value))
        if math.prod(dims) > _specs.MAX_ACTIVATION:
            raise OnnxError(f"{what}: {V._shape(dims)} per sample is too large")
        return DTYPES[t.elem_type], tuple(dims)

    def is_constant(self, name: str) -> bool:
        return name in self._tensors

    def constant(self, name: str, node: Any, what: str, max_ndim: int = 4) -> np.ndarray:
        """The value of constant tensor ``name`` (an input of ``node``), checked before it is
        converted: a real element type, at most ``max_ndim`` dims, and exactly the data its
        dims declare."""
        if name in self._arrays:
            return self._arrays[name]
        where = f"from_onnx: {node_name(node)}: {what} {name!r}"
        if name not in self._tensors:
            raise OnnxError(f"{where} must be a constant (an initializer or a Constant node)")
        t = self._tensors[name]
        if isinstance(t, self.onnx.AttributeProto):
            t = self._attribute_tensor(t, where)
        dims = list(t.dims)
        if len(dims) > max_ndim or any(d < 0 for d in dims):
            raise OnnxError(f"{where}: dims {dims} (at most {max_ndim}, none negative)")
        n = math.prod(dims)
        if n > _archive.LIMITS["params"]:
            raise OnnxError(f"{where}: declares {n:,} values, more than fastcnn builds")
        if t.data_type not in _ELEMENTS:
            raise OnnxError(f"{where}: element type {t.data_type} (float, double or integer)")
        dt = np.dtype(_ELEMENTS[t.data_type]).newbyteorder("<")  # ONNX's raw data byte order
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            a = np.frombuffer(self._external(t, n * dt.itemsize, where), dt)
        elif t.HasField("raw_data"):
            if len(t.raw_data) != n * dt.itemsize:
                raise OnnxError(
                    f"{where}: dims {dims} declare {n:,} values but it holds "
                    f"{len(t.raw_data):,} bytes"
                )
            a = np.frombuffer(t.raw_data, dt)
        else:
            field = {1: t.float_data, 11: t.double_data, 6: t.int32_data, 7: t.int64_data}
            values = field[t.data_type]
            if len(values) != n:
                raise OnnxError(
                    f"{where}: dims {dims} declare {n:,} values but it holds {len(values):,}"
                )
            a = np.asarray(values, dt)
        a = a.reshape(dims).astype(dt.newbyteorder("="))
        self._arrays[name] = a
        return a

    def _external(self, t: Any, size: int, where: str) -> bytes:
        """The ``size`` bytes of a tensor stored beside the model (as torch.onnx.export writes
        weights): a file in the model's own directory, named without any path, holding them
        at the offset the tensor gives."""
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if location in ("", ".", "..") or os.path.basename(location) != location:
            raise OnnxError(
                f"{where}: external data location {location!r} must be a file name in the "
                "model's directory"
            )
        directory = os.path.dirname(os.path.abspath(self.path))
        file = os.path.join(directory, location)
        if os.path.dirname(os.path.realpath(file)) != os.path.realpath(directory):
            raise OnnxError(f"{where}: external data {location!r} links out of the directory")
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", size))
        except ValueError:
            raise OnnxError(f"{where}: external data offset and length must be integers") from None
        if length != size or offset < 0:
            raise OnnxError(
                f"{where}: external data of {length:,} bytes at offset {offset}; its dims "
                f"need {size:,}"
            )
        try:
            with open(file, "rb") as f:
                f.seek(offset)
                data = f.read(size)
        except OSError as exc:
            raise OnnxError(f"{where}: cannot read external data {location!r} ({exc})") from None
        if len(data) != size:
            raise OnnxError(f"{where}: external data {location!r} ends before {size:,} bytes")
        return data

    def _attribute_tensor(self, attr: Any, where: str) -> Any:
        h = self.onnx.helper
        if attr.name == "value":
            return attr.t
        if attr.name in ("value_float", "value_floats"):
            vals = [attr.f] if attr.name == "value_float" else list(attr.floats)
            return h.make_tensor("c", 1, [] if attr.name == "value_float" else [len(vals)], vals)
        if attr.name in ("value_int", "value_ints"):
            vals = [attr.i] if attr.name == "value_int" else list(attr.ints)
            return h.make_tensor("c", 7, [] if attr.name == "value_int" else [len(vals)], vals)
        raise OnnxError(f"{where}: a Constant of kind {attr.name!r} is not read")

    def sole_user(self, tensor: str) -> Any | None:
        users = self.users.get(tensor, [])
        return users[0] if len(users) == 1 and tensor != self.output else None


def attrs(node: Any, allowed: Mapping[str, Any]) -> dict[str, Any]:
    """The node's attributes over the defaults ``allowed`` (name -> default); any other
    attribute is an error, as is one of another kind than its default's."""
    onnx = require_onnx()
    values = dict(allowed)
    for a in node.attribute:
        if a.name not in allowed:
            raise OnnxError(f"from_onnx: {node_name(node)}: attribute {a.name!r} is not read")
        v = onnx.helper.get_attribute_value(a)
        v = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        default = allowed[a.name]
        ok = (
            isinstance(v, list) and all(isinstance(i, int) for i in v)
            if isinstance(default, list)
            else isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))
        )
        if not ok:
            raise OnnxError(f"from_onnx: {node_name(node)}: attribute {a.name!r} has kind {a.type}")
        values[a.name] = v
    return values


def window(node: Any, a: dict[str, Any], kernel: list[int]) -> tuple[list[int], list[int]]:
    """(strides, pads) of a Conv or pooling node with a 2-D ``kernel``, as fastcnn pads:
    symmetrically, no dilation."""
    where = f"from_onnx: {node_name(node)}"
    if len(kernel) != 2:
        raise OnnxError(f"{where}: only 2-D windows are read, got kernel {kernel}")
    if a["auto_pad"] not in ("NOTSET", "VALID"):
        raise OnnxError(f"{where}: auto_pad {a['auto_pad']!r}; give explicit pads")
    strides = a["strides"] or [1, 1]
    pads = [0, 0, 0, 0] if a["auto_pad"] == "VALID" or not a["pads"] else a["pads"]
    if len(strides) != 2 or len(pads) != 4:
        raise OnnxError(f"{where}: strides {strides} and pads {pads} are not 2-D")
    if pads[:2] != pads[2:]:
        raise OnnxError(f"{where}: pads {pads} are not symmetric (fastcnn pads both sides alike)")
    if any(d != 1 for d in a.get("dilations") or [1, 1]):
        raise OnnxError(f"{where}: dilations {a['dilations']} (fastcnn has no dilation)")
    return strides, pads[:2]


WINDOW_ATTRS = {"auto_pad": "NOTSET", "strides": [], "pads": [], "dilations": []}
