"""The classic networks of "Deep Learning from Scratch" as Sequential networks: SimpleConvNet
and DeepConvNet keep the book's constructor arguments, layer names (Conv1, Relu1, Pool1, ...)
and parameter names and shapes (W1, b1, ...); their layer lists are built here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn.models._sequential import Sequential
from fastcnn.models._specs import LAYER_TYPES, LayerSpec

_CONV_KEYS = ("filter_num", "filter_size", "pad", "stride")
_CONV_LOWS = {"filter_num": 1, "filter_size": 1, "pad": 0, "stride": 1}


def _spec(entry: dict[str, Any], label: str) -> LayerSpec:
    """A layer spec whose messages name it as the classic arguments do (conv_param_2, ...)."""
    return LAYER_TYPES[entry["type"]].parse(entry, label, 0)


def _conv(p: Mapping[str, int], label: str) -> LayerSpec:
    entry = {
        "type": "conv", "filters": p["filter_num"], "size": p["filter_size"],
        "stride": p["stride"], "pad": p["pad"],
    }  # fmt: skip
    return _spec(entry, label)


def _pool(where: str, label: str) -> LayerSpec:
    return _spec({"type": "maxpool", "size": 2}, f"{where}: pooling after {label}")


def _check_input_dim(input_dim: Any, where: str) -> tuple[int, int, int]:
    if isinstance(input_dim, (str, bytes)) or not isinstance(input_dim, Sequence):
        raise TypeError(
            f"{where}: input_dim must be a (C, H, W) tuple, got {type(input_dim).__name__}"
        )
    if len(input_dim) != 3:
        raise ValueError(f"{where}: input_dim must be (C, H, W), got {tuple(input_dim)!r}")
    c, h, w = (V.check_int(d, "input_dim", where, low=1) for d in input_dim)
    return (c, h, w)


def _check_conv_param(
    given: Mapping[str, int] | None, default: Mapping[str, int], name: str, where: str
) -> dict[str, int]:
    """Merge the given conv settings over the defaults, rejecting unknown keys."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise TypeError(f"{where}: {name} must be a dict, got {type(given).__name__}")
    unknown = sorted(set(given) - set(default))
    if unknown:
        raise ValueError(f"{where}: {name} has unknown keys {unknown} (known: {sorted(default)})")
    merged = {**default, **given}
    return {k: V.check_int(merged[k], f"{name}[{k!r}]", where, low=_CONV_LOWS[k]) for k in default}


class SimpleConvNet(Sequential):
    """conv (filter_num f×f, pad, stride) – relu – maxpool 2 – affine(hidden_size) – relu –
    affine(output_size) – softmax-with-loss. Defaults: 30 5×5 filters, 100 hidden units.

    conv_param overrides any of filter_num, filter_size, pad, stride.
    """

    DEFAULT_CONV = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}

    def __init__(
        self,
        input_dim: Sequence[int] = (1, 28, 28),
        conv_param: Mapping[str, int] | None = None,
        hidden_size: int = 100,
        output_size: int = 10,
        *,
        backend: str = "fast",
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        where = "SimpleConvNet"
        input_dim = _check_input_dim(input_dim, where)
        self.conv_param = _check_conv_param(conv_param, self.DEFAULT_CONV, "conv_param", where)
        self.hidden_size = V.check_int(hidden_size, "hidden_size", where, low=1)
        output_size = V.check_int(output_size, "output_size", where, low=1)
        layers: list[dict[str, Any] | LayerSpec] = [
            _conv(self.conv_param, f"{where}: conv_param"), {"type": "relu"},
            _pool(where, "conv_param"), {"type": "affine", "units": self.hidden_size},
            {"type": "relu"}, {"type": "affine", "units": output_size},
        ]  # fmt: skip
        super().__init__(layers, input_dim, backend=backend, seed=seed, dtype=dtype, name=where)

    def arguments(self) -> dict[str, Any]:
        return {
            "input_dim": list(self.input_dim),
            "conv_param": dict(self.conv_param),
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }


class DeepConvNet(Sequential):
    """The "Deep Learning from Scratch" DeepConvNet:
    (conv – relu – conv – relu – maxpool 2) × 3 – affine(hidden_size) – relu – dropout –
    affine(output_size) – dropout – softmax-with-loss. Defaults: 3×3 convs with 16, 16, 32, 32,
    64, 64 filters, pad 1 except conv 4 (pad 2), 50 hidden units, dropout 0.5.

    conv_param_1 ... conv_param_6 override any of filter_num, filter_size, pad, stride.
    The published result: 99.38 % test accuracy on MNIST after 20 epochs, batch 100, Adam 0.001.
    """

    DEFAULT_CONVS = (
        {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
        {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
        {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
        {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
        {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
        {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    )

    def __init__(
        self,
        input_dim: Sequence[int] = (1, 28, 28),
        conv_param_1: Mapping[str, int] | None = None,
        conv_param_2: Mapping[str, int] | None = None,
        conv_param_3: Mapping[str, int] | None = None,
        conv_param_4: Mapping[str, int] | None = None,
        conv_param_5: Mapping[str, int] | None = None,
        conv_param_6: Mapping[str, int] | None = None,
        hidden_size: int = 50,
        output_size: int = 10,
        dropout_ratio: float = 0.5,
        *,
        backend: str = "fast",
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        where = "DeepConvNet"
        input_dim = _check_input_dim(input_dim, where)
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        self.conv_params = [
            _check_conv_param(p, d, f"conv_param_{i}", where)
            for i, (p, d) in enumerate(zip(given, self.DEFAULT_CONVS), start=1)
        ]
        self.hidden_size = V.check_int(hidden_size, "hidden_size", where, low=1)
        output_size = V.check_int(output_size, "output_size", where, low=1)
        self.dropout_ratio = V.check_real(dropout_ratio, "dropout_ratio", where, low=0.0, high=1.0)
        layers: list[Any] = []
        for i, p in enumerate(self.conv_params, start=1):
            layers += [_conv(p, f"{where}: conv_param_{i}"), {"type": "relu"}]
            if i % 2 == 0:
                layers.append(_pool(where, f"conv_param_{i}"))
        drop = {"type": "dropout", "ratio": self.dropout_ratio}
        layers += [
            {"type": "affine", "units": self.hidden_size}, {"type": "relu"}, drop,
            {"type": "affine", "units": output_size}, drop,
        ]  # fmt: skip
        super().__init__(layers, input_dim, backend=backend, seed=seed, dtype=dtype, name=where)

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"input_dim": list(self.input_dim)}
        for i, p in enumerate(self.conv_params, start=1):
            args[f"conv_param_{i}"] = dict(p)
        args.update(
            hidden_size=self.hidden_size,
            output_size=self.output_size,
            dropout_ratio=self.dropout_ratio,
            seed=self.seed,
            dtype=self.dtype.name,
        )
        return args


MODELS: dict[str, type[Sequential]] = {"simple": SimpleConvNet, "deep": DeepConvNet}
