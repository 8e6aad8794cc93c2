"""ONNX -> Sequential: reads a graph that is a chain of the ops fastcnn has layers for (with
residual Adds), as export_onnx writes it and as torch.onnx.export writes a small CNN, into a
config, params and batch-norm statistics. One reader per op type (``_READERS``).

It deliberately reads nothing else: no shape arithmetic (Shape/Gather/Concat), no ops fastcnn
has no layer for. Anything outside the subset raises OnnxError naming the
node (its name and op type) and why; a file that is not ONNX, or declares sizes beyond what it
holds or fastcnn builds, is refused before anything is allocated for it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fastcnn import _backends
from fastcnn import _validation as V
from fastcnn.models import _archive, _specs
from fastcnn.models._onnx import DTYPES, MIN_IMPORT_OPSET, OnnxError, require_onnx
from fastcnn.models._sequential import Sequential, _check_dtype

# The element types of the constants read: float, double, int32, int64.
_ELEMENTS = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64}

# A larger file is not read: protobuf cannot parse a message of 2 GiB or more anyway.
MAX_FILE_BYTES = (1 << 31) - 1

Shape = _specs.Shape


def from_onnx(
    path: str | os.PathLike[str], *, backend: str = "fast", dtype: Any = None
) -> Sequential:
    """The Sequential network an ONNX file describes, with its weights and batch-norm running
    statistics: ``predict`` gives the graph's output (the logits; a final Softmax node is
    read as the model's own softmax, see predict_proba). ``dtype`` (float32 or float64) casts
    the weights; by default the graph input's element type. The subset read is in
    docs/onnx.md; anything else is an OnnxError naming the node. A missing file is a
    FileNotFoundError.

    A file export_onnx wrote keeps the model's config (as metadata): it is used, for the
    spellings a graph does not keep (pad "same", init, the name), when it describes exactly
    this graph; otherwise (a graph edited since) the graph alone decides.
    """
    path = os.fspath(path)
    where = f"from_onnx: {path}"
    _backends.check_backend(backend, "from_onnx")
    if dtype is not None:
        dtype = _check_dtype(dtype, "from_onnx")
    proto = _read(path)
    r, layers = _read_graph(proto, path)
    name = proto.graph.name
    kwargs = {
        "layers": layers,
        "input_shape": r.g.input_shape,
        "dtype": dtype if dtype is not None else r.g.dtype,
        "name": name if isinstance(name, str) and 0 < len(name) <= 100 else None,
    }
    stored = _stored_config(proto, layers, r.g)
    if stored is not None:
        kwargs |= {"layers": stored["layers"], "name": stored.get("name")}
    try:
        model = Sequential._construct(kwargs, backend, "zeros")
    except ValueError as exc:
        raise OnnxError(f"{where}: {exc}") from None
    _fill(model, r, where)
    return model


def _read_graph(proto: Any, path: str) -> tuple[_Reader, list[_specs.LayerSpec]]:
    """The reader (holding the weights, in the builder's order) and the layer specs."""
    g = _Graph(proto, path)
    r = _Reader(g)
    specs, _, shape = r.chain(g.input, g.input_shape, stop={g.output})
    if len(shape) != 1:
        raise OnnxError(
            f"from_onnx: {path}: the graph's output is {V._shape(shape)} per sample; fastcnn "
            "reads networks that end in one score per class"
        )
    return r, specs


def _stored_config(proto: Any, layers: list[_specs.LayerSpec], g: _Graph) -> dict | None:
    """The config export_onnx stored, if exporting it gives a graph read as this one is (the
    same layers with the same options), else None. It only restores spellings: the weights
    and everything computed are the graph's."""
    from fastcnn.models._onnx_export import CONFIG_KEY, to_model_proto

    text = next((p.value for p in proto.metadata_props if p.key == CONFIG_KEY), None)
    if text is None or len(text) > 1 << 20:
        return None
    try:
        config = json.loads(text)
        if not isinstance(config, dict) or config.get("input_shape") != list(g.input_shape):
            return None
        kwargs = {
            "layers": config.get("layers"), "input_shape": g.input_shape, "dtype": g.dtype,
            "name": config.get("name"),
        }  # fmt: skip
        model = Sequential._construct(kwargs, "reference", "zeros")
        _, theirs = _read_graph(to_model_proto(model), "(the stored config)")
    except (ValueError, TypeError, RecursionError):  # OnnxError and ConfigError among them
        return None
    same = [s.to_config() for s in theirs] == [s.to_config() for s in layers]
    return config if same else None


def _read(path: str) -> Any:
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


def _where(node: Any) -> str:
    label = node.name or (f"producing {node.output[0]!r}" if node.output else "(unnamed)")
    return f"node {label!r} ({node.op_type})"


class _Graph:
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
                raise OnnxError(f"from_onnx: {_where(node)}: domain {node.domain!r} is not read")
            if node.op_type == "Constant":
                if len(node.output) != 1 or len(node.attribute) != 1:
                    raise OnnxError(f"from_onnx: {_where(node)}: expected one value")
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
        where = f"from_onnx: {_where(node)}: {what} {name!r}"
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


def _attrs(node: Any, allowed: Mapping[str, Any]) -> dict[str, Any]:
    """The node's attributes over the defaults ``allowed`` (name -> default); any other
    attribute is an error, as is one of another kind than its default's."""
    onnx = require_onnx()
    values = dict(allowed)
    for a in node.attribute:
        if a.name not in allowed:
            raise OnnxError(f"from_onnx: {_where(node)}: attribute {a.name!r} is not read")
        v = onnx.helper.get_attribute_value(a)
        v = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        default = allowed[a.name]
        ok = (
            isinstance(v, list) and all(isinstance(i, int) for i in v)
            if isinstance(default, list)
            else isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))
        )
        if not ok:
            raise OnnxError(f"from_onnx: {_where(node)}: attribute {a.name!r} has kind {a.type}")
        values[a.name] = v
    return values


def _window(node: Any, a: dict[str, Any], kernel: list[int]) -> tuple[list[int], list[int]]:
    """(strides, pads) of a Conv or pooling node with a 2-D ``kernel``, as fastcnn pads:
    symmetrically, no dilation."""
    where = f"from_onnx: {_where(node)}"
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


_WINDOW_ATTRS = {"auto_pad": "NOTSET", "strides": [], "pads": [], "dilations": []}


class _Reader:
    """Walks the graph from its input, turning nodes into layer specs, and collects the
    weights in the order the model's builder numbers them (a residual's block before its
    shortcut)."""

    def __init__(self, g: _Graph) -> None:
        self.g = g
        self.weighted: list[tuple[np.ndarray, np.ndarray]] = []  # (W, b) per conv / affine
        self.norms: list[tuple[np.ndarray, ...]] = []  # (gamma, beta, mean, var, eps)
        self.depth = 0
        self.visited: set[int] = set()  # id() of the nodes read so far (a cycle is an error)

    def spec(
        self, node: Any, entry: dict[str, Any], shape: Shape
    ) -> tuple[_specs.LayerSpec, Shape]:
        """The checked spec of config ``entry`` read from ``node``, and its output shape."""
        kind = entry["type"]
        try:
            spec = _specs.LAYER_TYPES[kind].parse(entry, f"{_where(node)} as {kind}", self.depth)
            out = _specs.chain_shape([spec], shape)
        except ValueError as exc:
            raise OnnxError(f"from_onnx: {exc}") from None
        return spec, out

    def chain(
        self, x: str, shape: Shape, stop: set[str], skip: frozenset[int] = frozenset()
    ) -> tuple[list[_specs.LayerSpec], str, Shape]:
        """The specs from tensor ``x`` (per-sample ``shape``) until a tensor in ``stop``;
        nodes in ``skip`` (by id: the shortcuts of the residual blocks being read) are not
        followed from ``x``."""
        specs: list[_specs.LayerSpec] = []
        while x not in stop:
            users = [n for n in self.g.users.get(x, []) if id(n) not in skip]
            if len(users) >= 2:
                spec, x, shape = self.residual(x, shape, users, skip)
                specs.append(spec)
                continue
            if not users:
                raise OnnxError(
                    f"from_onnx: {self.g.path}: tensor {x!r} is read by no node and is not the "
                    "graph's output"
                )
            node = users[0]
            reader = _READERS.get(node.op_type)
            if reader is None:
                raise OnnxError(
                    f"from_onnx: {_where(node)}: op {node.op_type} is not in the subset "
                    f"fastcnn reads ({', '.join(sorted(_READERS))})"
                )
            if id(node) in self.visited:
                raise OnnxError(f"from_onnx: {_where(node)}: the graph has a cycle through it")
            self.visited.add(id(node))
            if not node.input or node.input[0] != x and node.op_type != "Mul":
                raise OnnxError(f"from_onnx: {_where(node)}: its first input must be {x!r}")
            new, x, shape = reader(self, node, shape)
            specs.extend(new)
        return specs, x, shape

    def residual(
        self, x: str, shape: Shape, users: list[Any], skip: frozenset[int]
    ) -> tuple[Any, str, Shape]:
        """y = block(x) + shortcut(x), the shortcut x itself or a 1×1 Conv of x. When x
        starts nested blocks, the outermost is the one whose Add comes last; when both
        branches of an Add could be the shortcut, the 1×1 Conv and then the Add's second
        input is (export writes Add(block, shortcut))."""
        g = self.g
        joins: list[tuple[Any, Any]] = []  # (Add, the shortcut Conv or None)
        for n in users:
            after = g.sole_user(n.output[0]) if n.output else None
            if n.op_type == "Add":
                joins.append((n, None))
            elif n.op_type == "Conv" and after is not None and after.op_type == "Add":
                joins.append((after, n))
        if not joins:
            raise OnnxError(
                f"from_onnx: {g.path}: tensor {x!r} is read by "
                + ", ".join(_where(n) for n in users)
                + "; a branch must be a residual block (its input added to the block's output, "
                "directly or through a 1×1 Conv)"
            )
        add = max((a for a, _ in joins), key=lambda a: g.index[id(a)])
        options = [c for a, c in joins if a is add]
        shortcut = None
        if None not in options:

            def rank(c: Any) -> tuple[bool, bool]:
                w = g.constant(c.input[1], c, "weight") if len(c.input) > 1 else None
                one = w is not None and w.ndim == 4 and w.shape[2:] == (1, 1)
                return (not one, list(add.input).index(c.output[0]) != 1)

            shortcut = min(options, key=rank)
        side = x if shortcut is None else shortcut.output[0]
        if len(add.input) != 2 or side not in add.input or len(set(add.input)) != 2:
            raise OnnxError(f"from_onnx: {_where(add)}: expected to add a block and its input")
        block_out = add.input[0] if add.input[1] == side else add.input[1]
        taken = id(add if shortcut is None else shortcut)
        if self.depth >= _specs.MAX_DEPTH:
            raise OnnxError(
                f"from_onnx: {_where(add)}: residual blocks nest deeper than {_specs.MAX_DEPTH}"
            )
        self.depth += 1
        block, _, block_shape = self.chain(x, shape, {block_out}, skip | {taken})
        self.depth -= 1
        entry: dict[str, Any] = {"type": "residual", "layers": block}
        if shortcut is not None:
            stride, w, b = self._shortcut(shortcut, shape)
            entry["shortcut"] = "auto" if block_shape != shape else "conv"
        spec, out = self.spec(add, entry, shape)
        if shortcut is not None:
            want = spec.projection(shape)
            if want is None or list(want) != stride or w.shape[0] != block_shape[0]:
                raise OnnxError(
                    f"from_onnx: {_where(shortcut)}: a 1×1 shortcut with stride {stride} and "
                    f"{w.shape[0]} filters, but fastcnn's shortcut from {V._shape(shape)} to "
                    f"{V._shape(block_shape)} has stride {want} and {block_shape[0]} filters"
                )
            self.weighted.append((w, b))
        return spec, add.output[0], out

    def _shortcut(self, node: Any, shape: Shape) -> tuple[list[int], np.ndarray, np.ndarray]:
        a = _attrs(node, {**_WINDOW_ATTRS, "kernel_shape": [], "group": 1})
        w, b = self._conv_weights(node, shape, a)
        strides, pads = _window(node, a, list(w.shape[2:]))
        if w.shape[2:] != (1, 1) or pads != [0, 0]:
            raise OnnxError(
                f"from_onnx: {_where(node)}: a shortcut Conv must be 1×1 without padding"
            )
        return strides, w, b

    def _conv_weights(self, node: Any, shape: Shape, a: dict[str, Any]) -> tuple[np.ndarray, ...]:
        where = f"from_onnx: {_where(node)}"
        if len(shape) != 3:
            raise OnnxError(f"{where}: needs an image input, got {V._shape(shape)} per sample")
        if a["group"] != 1:
            raise OnnxError(f"{where}: group {a['group']} (fastcnn convolutions are ungrouped)")
        w = self.g.constant(node.input[1], node, "weight")
        if w.ndim != 4 or w.shape[1] != shape[0] or 0 in w.shape:
            raise OnnxError(
                f"{where}: weight {V._shape(w.shape)} must be (K, {shape[0]}, R, S) for an input "
                f"of {V._shape(shape)}"
            )
        if a["kernel_shape"] and list(a["kernel_shape"]) != list(w.shape[2:]):
            raise OnnxError(f"{where}: kernel_shape {a['kernel_shape']} but weight {w.shape}")
        b = self._bias(node, 2, w.shape[0])
        return w, b

    def _bias(self, node: Any, index: int, size: int) -> np.ndarray:
        if len(node.input) <= index or not node.input[index]:
            return np.zeros(size)
        b = self.g.constant(node.input[index], node, "bias")
        if b.size == 1 and b.ndim <= 1:
            return np.full(size, b.reshape(()))
        if b.shape not in ((size,), (1, size)):
            raise OnnxError(f"from_onnx: {_where(node)}: bias {V._shape(b.shape)}, not ({size},)")
        return b.reshape(size)

    def check_outputs(self, node: Any) -> None:
        """Only a node's first output may be used (no MaxPool indices, no dropout mask)."""
        for out in node.output[1:]:
            if out and (out in self.g.users or out == self.g.output):
                raise OnnxError(f"from_onnx: {_where(node)}: its output {out!r} is used")

    def flattens(self, node: Any | None, shape: Shape) -> bool:
        """Whether ``node`` turns (N, *shape) into (N, prod(shape)): Flatten(axis=1), or a
        Reshape to a constant [0 or -1, D] / [0, -1]."""
        if node is None:
            return False
        if node.op_type == "Flatten":
            return _attrs(node, {"axis": 1})["axis"] == 1
        if node.op_type != "Reshape" or len(node.input) != 2:
            return False
        if not self.g.is_constant(node.input[1]):
            raise OnnxError(
                f"from_onnx: {_where(node)}: the shape must be a constant (a shape computed in "
                "the graph, e.g. by x.view(x.size(0), -1), is not read; torch.flatten is)"
            )
        s = self.g.constant(node.input[1], node, "shape", max_ndim=1).tolist()
        if _attrs(node, {"allowzero": 0})["allowzero"] and 0 in s:
            return False  # a 0 is then a zero-sized dimension, not "keep N"
        d = math.prod(shape)
        return len(s) == 2 and (s[0] in (0, -1) and s[1] == d or s == [0, -1])


def _next(r: _Reader, node: Any) -> Any | None:
    return r.g.sole_user(node.output[0])


def _conv(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    a = _attrs(node, {**_WINDOW_ATTRS, "kernel_shape": [], "group": 1})
    w, b = r._conv_weights(node, shape, a)
    strides, pads = _window(node, a, list(w.shape[2:]))
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
        a = _attrs(node, {**_WINDOW_ATTRS, "kernel_shape": [], "ceil_mode": 0, **extra})
        strides, pads = _window(node, a, list(a["kernel_shape"]))
        where = f"from_onnx: {_where(node)}"
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
        _attrs(node, {})
        spec, out = r.spec(node, {"type": kind}, shape)
        return [spec], node.output[0], out

    return read


def _flatten(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Flatten or Reshape to (N, D): a flatten layer; before a Gemm or MatMul, a Reshape is
    the affine layer's own flattening (export writes it so); Flatten, BatchNormalization,
    Reshape back to the image is a per-feature batch norm of the image."""
    if not r.flattens(node, shape):
        raise OnnxError(
            f"from_onnx: {_where(node)}: only a reshape of (N, ...) to (N, D) is read (flatten)"
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
    zero_is_n = not _attrs(node, {"allowzero": 0})["allowzero"]
    return len(s) == 4 and s[0] in ((0, -1) if zero_is_n else (-1,)) and tuple(s[1:]) == shape


def _affine(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """Gemm(x, B, C) with any alpha, beta and transB (not transA), or MatMul(x, W) with an
    optional Add of a constant bias after it."""
    where = f"from_onnx: {_where(node)}"
    if len(shape) != 1:
        raise OnnxError(f"{where}: needs (N, D) rows; flatten the {V._shape(shape)} input first")
    if node.op_type == "Gemm":
        a = _attrs(node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
        if a["transA"]:
            raise OnnxError(f"{where}: transA 1 is not read")
        w = r.g.constant(node.input[1], node, "weight", max_ndim=2)
        w = w.T if a["transB"] else w
        _check_weight(node, w, shape)
        b = r._bias(node, 2, w.shape[1])
        w, b, out = w * a["alpha"] if a["alpha"] != 1 else w, b * a["beta"], node.output[0]
    else:
        _attrs(node, {})
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
            f"from_onnx: {_where(node)}: weight {V._shape(w.shape)} (as x @ W) must be "
            f"({d}, M) for {d} inputs"
        )


def _batchnorm(
    r: _Reader, node: Any, shape: Shape, axis: str = "auto"
) -> tuple[list[Any], str, Shape]:
    """Normalisation with the running statistics; per channel of an image, per feature of a
    vector. ONNX's epsilon is carried into the running variance (see _fill)."""
    a = _attrs(node, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0, "spatial": 1})
    where = f"from_onnx: {_where(node)}"
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
    _attrs(node, {})
    where = f"from_onnx: {_where(node)}"
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
        _attrs(node, {"ratio": 0.5, "seed": 0})
        if len(node.input) > 2 and node.input[2]:
            mode = r.g.constant(node.input[2], node, "training_mode", max_ndim=1)
            if mode.size != 1 or bool(mode.reshape(())):
                raise OnnxError(f"from_onnx: {_where(node)}: training_mode must be false")
        r.check_outputs(node)
    else:
        _attrs(node, {})
    return [], node.output[0], shape


def _globalavgpool(r: _Reader, node: Any, shape: Shape) -> tuple[list[Any], str, Shape]:
    """GlobalAveragePool, or ReduceMean over axes 2 and 3, then (when the dims are kept) a
    flatten to (N, C): fastcnn's global average pool."""
    where = f"from_onnx: {_where(node)}"
    keep = 1
    if node.op_type == "ReduceMean":
        a = _attrs(node, {"axes": [], "keepdims": 1, "noop_with_empty_axes": 0})
        axes = a["axes"]
        if len(node.input) > 1 and node.input[1]:
            axes = r.g.constant(node.input[1], node, "axes", max_ndim=1).tolist()
        if sorted(d % 4 for d in axes) != [2, 3]:
            raise OnnxError(f"{where}: only a mean over axes 2 and 3 (H and W) is read")
        keep = a["keepdims"]
    else:
        _attrs(node, {})
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
    a = _attrs(node, {"axis": -1 if r.g.opset >= 13 else 1})
    if node.output[0] != r.g.output or len(shape) != 1 or a["axis"] not in (1, -1):
        raise OnnxError(
            f"from_onnx: {_where(node)}: a Softmax is read only as the last node, over the "
            "classes of (N, classes) scores"
        )
    return [], node.output[0], shape


# ONNX op type -> its reader: (reader, node, per-sample input shape) -> (layer specs, output
# tensor, output shape). Residual Adds are read at the tensor that branches (_Reader.residual).
_READERS: dict[str, Callable[..., tuple[list[Any], str, Shape]]] = {
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


def _fill(model: Sequential, r: _Reader, where: str) -> None:
    """Copy the weights read into the model (built in "zeros" mode, so its params are the
    graph's in layer order: W1, b1, ..., gamma1, beta1, ...). ONNX's epsilon (a float32;
    PyTorch's 1e-5) differs from fastcnn's 1e-6; inference normalises by sqrt(var + epsilon),
    so the running variance is stored as var + epsilon - fastcnn's epsilon: the same result
    (for export_onnx's files, the exact inverse of its shift)."""
    n_w = sum(1 for k in model.params if k.startswith("W"))
    assert n_w == len(r.weighted) and len(model.state_arrays()) == 2 * len(r.norms)
    with np.errstate(over="raise", invalid="raise"):
        try:
            for i, (w, b) in enumerate(r.weighted, 1):
                _copy(model.params[f"W{i}"], w.reshape(model.params[f"W{i}"].shape), where)
                _copy(model.params[f"b{i}"], b, where)
            state = list(model._state.items())
            for j, (gamma, beta, mean, var, eps) in enumerate(r.norms, 1):
                _copy(model.params[f"gamma{j}"], gamma, where)
                _copy(model.params[f"beta{j}"], beta, where)
                (mean_key, (layer, _)), (var_key, _) = state[2 * j - 2], state[2 * j - 1]
                _copy(model.state_arrays()[mean_key], mean, where)
                shift = float(eps) - float(layer.eps)
                _copy(model.state_arrays()[var_key], var.astype(np.float64) + shift, where)
        except FloatingPointError:
            raise OnnxError(f"{where}: a weight is beyond the range of {model.dtype}") from None


def _copy(dst: np.ndarray, src: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(src)):
        raise OnnxError(f"{where}: a weight is NaN or infinite")
    dst[...] = src.astype(dst.dtype)
