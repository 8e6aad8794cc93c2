"""ONNX -> Sequential: reads a graph that is a chain of the ops fastcnn has layers for (with
residual Adds), as export_onnx writes it and as torch.onnx.export writes a small CNN, into a
config, params and batch-norm statistics: the walk over the graph (``_Reader``) and the
weights copied into the model. The graph itself is _onnx_graph.py's; one reader per op type
(``READERS``), _onnx_ops.py's.

It deliberately reads nothing else: no shape arithmetic (Shape/Gather/Concat), no ops fastcnn
has no layer for. Anything outside the subset raises OnnxError naming the
node (its name and op type) and why; a file that is not ONNX, or declares sizes beyond what it
holds or fastcnn builds, is refused before anything is allocated for it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from fastcnn import _backends
from fastcnn import _validation as V
from fastcnn.models import _specs
from fastcnn.models._onnx import OnnxError
from fastcnn.models._onnx_graph import WINDOW_ATTRS, Graph, attrs, node_name, read_proto, window
from fastcnn.models._onnx_ops import READERS
from fastcnn.models._sequential import Sequential, _check_dtype

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
    proto = read_proto(path)
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
    g = Graph(proto, path)
    r = _Reader(g)
    specs, _, shape = r.chain(g.input, g.input_shape, stop={g.output})
    if len(shape) != 1:
        raise OnnxError(
            f"from_onnx: {path}: the graph's output is {V._shape(shape)} per sample; fastcnn "
            "reads networks that end in one score per class"
        )
    return r, specs


def _stored_config(proto: Any, layers: list[_specs.LayerSpec], g: Graph) -> dict | None:
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


class _Reader:
    """Walks the graph from its input, turning nodes into layer specs, and collects the
    weights in the order the model's builder numbers them (a residual's block before its
    shortcut)."""

    def __init__(self, g: Graph) -> None:
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
            spec = _specs.LAYER_TYPES[kind].parse(entry, f"{node_name(node)} as {kind}", self.depth)
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
            reader = READERS.get(node.op_type)
            if reader is None:
                raise OnnxError(
                    f"from_onnx: {node_name(node)}: op {node.op_type} is not in the subset "
                    f"fastcnn reads ({', '.join(sorted(READERS))})"
                )
            if id(node) in self.visited:
                raise OnnxError(f"from_onnx: {node_name(node)}: the graph has a cycle through it")
            self.visited.add(id(node))
            if not node.input or node.input[0] != x and node.op_type != "Mul":
                raise OnnxError(f"from_onnx: {node_name(node)}: its first input must be {x!r}")
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
                + ", ".join(node_name(n) for n in users)
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
            raise OnnxError(f"from_onnx: {node_name(add)}: expected to add a block and its input")
        block_out = add.input[0] if add.input[1] == side else add.input[1]
        taken = id(add if shortcut is None else shortcut)
        if self.depth >= _specs.MAX_DEPTH:
            raise OnnxError(
                f"from_onnx: {node_name(add)}: residual blocks nest deeper than {_specs.MAX_DEPTH}"
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
                    f"from_onnx: {node_name(shortcut)}: a 1×1 shortcut with stride {stride} and "
                    f"{w.shape[0]} filters, but fastcnn's shortcut from {V._shape(shape)} to "
                    f"{V._shape(block_shape)} has stride {want} and {block_shape[0]} filters"
                )
            self.weighted.append((w, b))
        return spec, add.output[0], out

    def _shortcut(self, node: Any, shape: Shape) -> tuple[list[int], np.ndarray, np.ndarray]:
        a = attrs(node, {**WINDOW_ATTRS, "kernel_shape": [], "group": 1})
        w, b = self._conv_weights(node, shape, a)
        strides, pads = window(node, a, list(w.shape[2:]))
        if w.shape[2:] != (1, 1) or pads != [0, 0]:
            raise OnnxError(
                f"from_onnx: {node_name(node)}: a shortcut Conv must be 1×1 without padding"
            )
        return strides, w, b

    def _conv_weights(self, node: Any, shape: Shape, a: dict[str, Any]) -> tuple[np.ndarray, ...]:
        where = f"from_onnx: {node_name(node)}"
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
            raise OnnxError(
                f"from_onnx: {node_name(node)}: bias {V._shape(b.shape)}, not ({size},)"
            )
        return b.reshape(size)

    def check_outputs(self, node: Any) -> None:
        """Only a node's first output may be used (no MaxPool indices, no dropout mask)."""
        for out in node.output[1:]:
            if out and (out in self.g.users or out == self.g.output):
                raise OnnxError(f"from_onnx: {node_name(node)}: its output {out!r} is used")

    def flattens(self, node: Any | None, shape: Shape) -> bool:
        """Whether ``node`` turns (N, *shape) into (N, prod(shape)): Flatten(axis=1), or a
        Reshape to a constant [0 or -1, D] / [0, -1]."""
        if node is None:
            return False
        if node.op_type == "Flatten":
            return attrs(node, {"axis": 1})["axis"] == 1
        if node.op_type != "Reshape" or len(node.input) != 2:
            return False
        if not self.g.is_constant(node.input[1]):
            raise OnnxError(
                f"from_onnx: {node_name(node)}: the shape must be a constant (a shape computed in "
                "the graph, e.g. by x.view(x.size(0), -1), is not read; torch.flatten is)"
            )
        s = self.g.constant(node.input[1], node, "shape", max_ndim=1).tolist()
        if attrs(node, {"allowzero": 0})["allowzero"] and 0 in s:
            return False  # a 0 is then a zero-sized dimension, not "keep N"
        d = math.prod(shape)
        return len(s) == 2 and (s[0] in (0, -1) and s[1] == d or s == [0, -1])


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
