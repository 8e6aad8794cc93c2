"""The layer types of a Sequential network, one class per ``"type"`` of the config: each holds
its options (the config schema: names, defaults, checks — the one table of what a layer
takes), infers its output shape, and builds its layer objects through a ``_builder.Builder``.

Shapes here are per sample: (C, H, W) for images, (D,) for vectors. Nothing here computes on
arrays; the layers built are fastcnn.layers / fastcnn.reference.layers objects (or the blocks
of _blocks.py made from their ops).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fastcnn import _validation as V

Shape = tuple[int, ...]


class ConfigError(ValueError):
    """An architecture config that cannot be built; the message names the layer and why."""


# A network that needs more than this many values per sample in one activation (or layers,
# or nesting) is refused when its config is read: a config from a file must not be able to
# ask for memory far beyond what any CPU network fastcnn trains uses (DeepConvNet: 12,544).
MAX_ACTIVATION = 1 << 28
MAX_LAYERS = 1000
MAX_DEPTH = 8

_REQUIRED = object()


@dataclass(frozen=True)
class Option:
    """One config option: its default (or required) and how a given value is checked and
    normalised (``parse(value, name, where)``) and written back to JSON (``emit``)."""

    default: Any
    parse: Callable[[Any, str, str], Any]
    emit: Callable[[Any], Any] = lambda v: v


def _count(value: Any, name: str, where: str) -> int:
    return V.check_int(value, name, where, low=1, high=MAX_ACTIVATION)


def _pair(low: int) -> Callable[[Any, str, str], tuple[int, int]]:
    def parse(value: Any, name: str, where: str) -> tuple[int, int]:
        h, w = V.as_pair(value, name, where)
        if min(h, w) < low or max(h, w) > 1 << 16:
            raise ValueError(f"{where}: {name} must be in [{low}, 65536], got {value!r}")
        return (h, w)

    return parse


def _emit_pair(p: Any) -> Any:
    if p is None or isinstance(p, str):
        return p
    return p[0] if p[0] == p[1] else [p[0], p[1]]


def _conv_pad(value: Any, name: str, where: str) -> tuple[int, int] | str:
    if value == "same":
        return "same"
    if isinstance(value, str):
        raise ValueError(f"{where}: {name} must be an int, an (h, w) pair or 'same', got {value!r}")
    return _pair(0)(value, name, where)


def _init(value: Any, name: str, where: str) -> str | float:
    if value in ("auto", "he", "xavier"):
        return str(value)
    if isinstance(value, str):
        raise ValueError(
            f"{where}: {name} must be 'auto', 'he', 'xavier' or a standard deviation, got {value!r}"
        )
    return V.check_real(value, name, where, low=0.0, low_open=True)


def _ratio(value: Any, name: str, where: str) -> float:
    return V.check_real(value, name, where, low=0.0, high=1.0)


def _momentum(value: Any, name: str, where: str) -> float:
    return V.check_real(value, name, where, low=0.0, high=1.0)


def _bn_axis(value: Any, name: str, where: str) -> str:
    if value not in ("auto", "channel", "feature"):
        raise ValueError(f"{where}: {name} must be 'auto', 'channel' or 'feature', got {value!r}")
    return str(value)


def _shortcut(value: Any, name: str, where: str) -> str:
    if value not in ("auto", "identity", "conv"):
        raise ValueError(f"{where}: {name} must be 'auto', 'identity' or 'conv', got {value!r}")
    return str(value)


def _shape_str(shape: Shape) -> str:
    return V._shape(shape)


class LayerSpec:
    """A checked config entry. Subclasses set ``type`` (the config's name), ``prefix`` (the
    layer names' stem: Conv1, Relu2, ...) and ``options``; ``output_shape`` and ``build`` say
    what the layer does to a per-sample shape and which layer objects it becomes."""

    type: ClassVar[str]
    prefix: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    weighted: ClassVar[bool] = False  # has W and b (and so an init choice)
    activation: ClassVar[str | None] = None  # "he" or "xavier": what it asks of the layer before

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self.values = dict(values)
        self.where = where

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def parse(cls, entry: Mapping[str, Any], where: str, depth: int) -> LayerSpec:
        unknown = sorted(k for k in entry if k != "type" and k not in cls.options)
        if unknown:
            known = ", ".join(sorted(cls.options)) or "none"
            raise ConfigError(f"{where}: unknown options {unknown} (known: {known})")
        values = {}
        for name, opt in cls.options.items():
            if name not in entry and opt.default is _REQUIRED:
                raise ConfigError(f"{where}: missing option {name!r}")
            try:
                values[name] = opt.parse(entry.get(name, opt.default), name, where)
            except (TypeError, ValueError) as exc:
                raise ConfigError(str(exc)) from None
        return cls(values, where)

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type} | {k: o.emit(self.values[k]) for k, o in self.options.items()}

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def build(self, b: Any, shape: Shape) -> Shape:
        """Add this layer's objects to the builder ``b`` for an input of ``shape``; return
        the output shape."""
        b.add(self.prefix, b.make_simple(self.type))
        return self.output_shape(shape)

    def _need_image(self, shape: Shape) -> tuple[int, int, int]:
        if len(shape) != 3:
            raise ConfigError(
                f"{self.where}: needs an image input (C, H, W), got {_shape_str(shape)}"
                + ("; a flatten or affine layer came before it" if len(shape) == 1 else "")
            )
        return (shape[0], shape[1], shape[2])


class Conv(LayerSpec):
    type, prefix, weighted = "conv", "Conv", True
    options = {
        "filters": Option(_REQUIRED, _count),
        "size": Option(_REQUIRED, _pair(1), _emit_pair),
        "stride": Option(1, _pair(1), _emit_pair),
        "pad": Option(0, _conv_pad, _emit_pair),
        "init": Option("auto", _init),
    }

    def padding(self, shape: Shape) -> tuple[int, int]:
        """The pad pair; "same" gives an output of ceil(H / stride), padded equally on both
        sides (an odd total would need one more row on one side: refused, as the kernels pad
        symmetrically)."""
        if self.pad != "same":
            return tuple(self.pad)
        pads = []
        for axis, size, k, s in zip(("height", "width"), shape[1:], self.size, self.stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            if total % 2:
                raise ConfigError(
                    f"{self.where}: pad 'same' with a {axis} {size}, kernel {k} and stride {s} "
                    f"needs {total} rows of padding, which cannot be split evenly; give pad "
                    "explicitly"
                )
            pads.append(total // 2)
        return (pads[0], pads[1])

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = self._need_image(shape)
        try:
            p, q = V.conv_output_size(
                (h, w), self.size, self.stride, self.padding(shape), self.where
            )
        except ValueError as exc:
            raise ConfigError(f"{exc} (input {_shape_str(shape)})") from None
        return (self.filters, p, q)

    def build(self, b: Any, shape: Shape) -> Shape:
        out = self.output_shape(shape)
        c = shape[0]
        r, s = self.size
        b.add_conv((self.filters, c, r, s), self.stride, self.padding(shape))
        return out


class Affine(LayerSpec):
    type, prefix, weighted = "affine", "Affine", True
    options = {"units": Option(_REQUIRED, _count), "init": Option("auto", _init)}

    def output_shape(self, shape: Shape) -> Shape:
        return (self.units,)

    def build(self, b: Any, shape: Shape) -> Shape:
        b.add_affine((math.prod(shape), self.units))
        return (self.units,)


class _Pool(LayerSpec):
    options = {
        "size": Option(2, _pair(1), _emit_pair),
        "stride": Option(
            None, lambda v, n, w: None if v is None else _pair(1)(v, n, w), _emit_pair
        ),
        "pad": Option(0, _pair(0), _emit_pair),
    }

    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return self.size, self.stride or self.size, self.pad

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = self._need_image(shape)
        window, stride, pad = self.geometry()
        try:
            V.check_pool_pad(pad, window, self.where)
            p, q = V.pool_output_size((h, w), window, stride, pad, self.where)
        except ValueError as exc:
            raise ConfigError(f"{exc} (input {_shape_str(shape)})") from None
        return (c, p, q)

    def to_config(self) -> dict[str, Any]:
        cfg = super().to_config()
        if self.stride is None:
            del cfg["stride"]  # "the window size", kept as the user wrote it
        return cfg

    def build(self, b: Any, shape: Shape) -> Shape:
        out = self.output_shape(shape)
        window, stride, pad = self.geometry()
        cls = b.L.Pooling if self.type == "maxpool" else b.L.AvgPooling
        b.add(self.prefix, cls(window[0], window[1], stride=stride, pad=pad))
        return out


class MaxPool(_Pool):
    type, prefix = "maxpool", "Pool"


class AvgPool(_Pool):
    type, prefix = "avgpool", "AvgPool"


class Flatten(LayerSpec):
    type, prefix = "flatten", "Flatten"

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class GlobalAvgPool(LayerSpec):
    type, prefix = "globalavgpool", "GlobalAvgPool"

    def output_shape(self, shape: Shape) -> Shape:
        return (self._need_image(shape)[0],)


class Relu(LayerSpec):
    type, prefix, activation = "relu", "Relu", "he"


class Sigmoid(LayerSpec):
    type, prefix, activation = "sigmoid", "Sigmoid", "xavier"


class Dropout(LayerSpec):
    type, prefix = "dropout", "Dropout"
    options = {"ratio": Option(0.5, _ratio)}

    def build(self, b: Any, shape: Shape) -> Shape:
        b.add_dropout(self.ratio)
        return shape


class BatchNorm(LayerSpec):
    type, prefix = "batchnorm", "BatchNorm"
    options = {"momentum": Option(0.9, _momentum), "axis": Option("auto", _bn_axis)}

    def spatial(self, shape: Shape) -> bool:
        """Per channel (over N, H, W) for images unless axis is "feature"; per feature else."""
        if self.axis == "channel":
            self._need_image(shape)
            return True
        return self.axis == "auto" and len(shape) == 3

    def build(self, b: Any, shape: Shape) -> Shape:
        spatial = self.spatial(shape)
        b.add_batchnorm(shape[0] if spatial else math.prod(shape), spatial, self.momentum)
        return shape


class Residual(LayerSpec):
    """y = block(x) + shortcut(x): the shortcut is x itself when the block keeps the shape,
    else a 1×1 convolution (stride chosen so the sizes meet), as ResNet draws it."""

    type, prefix = "residual", "Residual"
    options = {
        "layers": Option(_REQUIRED, lambda v, n, w: v),
        "shortcut": Option("auto", _shortcut),
    }

    @classmethod
    def parse(cls, entry: Mapping[str, Any], where: str, depth: int) -> LayerSpec:
        spec = super().parse(entry, where, depth)
        spec.values["layers"] = parse_layers(spec.values["layers"], f"{where}.layers", depth + 1)
        return spec

    def to_config(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "layers": [s.to_config() for s in self.layers],
            "shortcut": self.shortcut,
        }

    def block_shape(self, shape: Shape) -> Shape:
        return chain_shape(self.layers, shape)

    def projection(self, shape: Shape) -> tuple[int, int] | None:
        """The 1×1 convolution's stride, or None for the identity shortcut."""
        out = self.block_shape(shape)
        if len(out) != len(shape):
            raise ConfigError(
                f"{self.where}: the block turns {_shape_str(shape)} into {_shape_str(out)}; "
                "a shortcut can only join blocks that keep images images (or vectors vectors)"
            )
        if out == shape and self.shortcut != "conv":
            return None
        if self.shortcut == "identity":
            raise ConfigError(
                f"{self.where}: shortcut 'identity' needs the block to keep the shape, but it "
                f"turns {_shape_str(shape)} into {_shape_str(out)}"
            )
        if len(shape) != 3:
            raise ConfigError(
                f"{self.where}: the block turns {_shape_str(shape)} into {_shape_str(out)}; a "
                "1×1 convolution shortcut needs image shapes"
            )
        strides = []
        for size, want in zip(shape[1:], out[1:]):
            s = next((s for s in range(1, size + 1) if (size - 1) // s + 1 == want), None)
            if s is None:
                raise ConfigError(
                    f"{self.where}: no 1×1 convolution shortcut turns {_shape_str(shape)} "
                    f"into the block's {_shape_str(out)} (the block may not grow an image)"
                )
            strides.append(s)
        return (strides[0], strides[1])

    def output_shape(self, shape: Shape) -> Shape:
        self.projection(shape)
        return self.block_shape(shape)

    def build(self, b: Any, shape: Shape) -> Shape:
        return b.add_residual(self, shape)


# The config's type names, one table: every layer type the config format knows.
LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.type: cls
    for cls in (
        Conv, MaxPool, AvgPool, Flatten, Affine, Relu, Sigmoid, Dropout, BatchNorm,
        GlobalAvgPool, Residual,
    )
}  # fmt: skip


def parse_layers(entries: Any, where: str, depth: int = 0) -> list[LayerSpec]:
    """Check a config's "layers" list (or a residual block's); returns the specs."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where}: residual blocks nest deeper than {MAX_DEPTH} levels")
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, (list, tuple)):
        raise ConfigError(f"{where}: must be a list of layers, got {type(entries).__name__}")
    if not entries:
        raise ConfigError(f"{where}: must hold at least one layer")
    specs = []
    for i, entry in enumerate(entries):
        here = f"{where}[{i}]"
        if isinstance(entry, LayerSpec):
            specs.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{here}: a layer must be a dict with a 'type', got {type(entry).__name__}"
            )
        kind = entry.get("type")
        if kind not in LAYER_TYPES:
            raise ConfigError(
                f"{here}: unknown layer type {repr(kind)[:40]} (known: {', '.join(LAYER_TYPES)})"
            )
        specs.append(LAYER_TYPES[kind].parse(entry, f"{here} ({kind})", depth))
    return specs


def count_layers(specs: list[LayerSpec]) -> int:
    return sum(1 + (count_layers(s.layers) if isinstance(s, Residual) else 0) for s in specs)


def chain_shape(specs: list[LayerSpec], shape: Shape) -> Shape:
    """The per-sample output shape of ``specs`` run in order on ``shape`` (checked)."""
    for spec in specs:
        shape = spec.output_shape(shape)
        if math.prod(shape) > MAX_ACTIVATION:
            raise ConfigError(
                f"{spec.where}: its output {_shape_str(shape)} holds more than "
                f"{MAX_ACTIVATION:,} values per sample"
            )
    return shape
