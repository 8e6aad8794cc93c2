"""Sequential: a network built from a list of layers (config dicts or specs), with shapes
inferred from the input shape, on either backend, float32 or float64, seeded — and the one
model mechanism: SimpleConvNet and DeepConvNet (_classic.py) are Sequential networks.

A model is a Chain of fastcnn layers plus a ``params`` dict whose arrays ARE the layers'
weights, so an optimizer updating ``params`` in place trains the model. ``backend="fast"``
builds it from fastcnn.layers, ``"reference"`` from fastcnn.reference.layers; with the same
seed both get bit-identical initial weights and dropout masks. Files are _file.py's.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, TextIO, Union

import numpy as np

from fastcnn import _backends
from fastcnn import _validation as V
from fastcnn.models import _specs
from fastcnn.models._builder import Builder
from fastcnn.models._specs import ConfigError, LayerSpec

PathLike = Union[str, "os.PathLike[str]"]

_CONFIG_KEYS = ("input_shape", "layers", "dtype", "name")


class Sequential:
    """A feed-forward network: ``layers`` run in order, then softmax cross-entropy.

    ``layers`` is a list of config dicts, e.g. ``{"type": "conv", "filters": 8, "size": 5,
    "pad": "same"}`` (the layer types and their options are in docs/models.md);
    ``input_shape`` is one sample's (C, H, W) — or (D,) for vector inputs.

    ``params`` maps "W1", "b1", ... (and "gamma1", "beta1" of batch norms) in layer order to
    the very arrays the layers hold; update them in place (``params[k] -= ...``) — rebinding a
    key would detach it from its layer. Inputs x are (N, *input_shape) or flattened (N, D),
    any real dtype (cast to the model's dtype). Targets t are integer labels (N,) or one-hot /
    probability rows (N, output_size).
    """

    # How the weights are made (see _builder): "init" draws them, "zeros" leaves them for a
    # file's params, "plan" makes only names and shapes.
    _build_mode = "init"
    # The name of each output class, when the data it was trained on had them (saved with it).
    classes: tuple[str, ...] | None = None

    def __init__(
        self,
        layers: Sequence[Mapping[str, Any] | LayerSpec],
        input_shape: Sequence[int] = (1, 28, 28),
        *,
        backend: str = "fast",
        seed: int = 0,
        dtype: Any = np.float32,
        name: str | None = None,
    ) -> None:
        where = name if isinstance(name, str) and name else type(self).__name__
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 100):
            raise ConfigError(f"{where}: name must be a str of 1 to 100 characters, got {name!r}")
        self.name = where
        self._named = name is not None and type(self) is Sequential
        self.backend = _backends.check_backend(backend, where)
        self._L: ModuleType = _backends.layers_module(backend, where)
        self._F: ModuleType = _backends.functional_module(backend, where)
        self.input_dim = _check_input_shape(input_shape, where)
        self.seed = V.check_int(seed, "seed", where, low=0)
        self.dtype = _check_dtype(dtype, where)
        self._specs = _specs.parse_layers(layers, f"{where}: layers")
        if _specs.count_layers(self._specs) > _specs.MAX_LAYERS:
            raise ConfigError(f"{where}: more than {_specs.MAX_LAYERS} layers")
        b = Builder(self._L, self._F, self.dtype, self.seed, self._build_mode)
        self._chain, out = b.chain(self._specs, self.input_dim)
        if len(out) != 1:
            raise ConfigError(
                f"{where}: the last layer's output is {V._shape(out)} per sample; the loss "
                "needs one score per class (end with an affine layer)"
            )
        self.output_size = out[0]
        self.layers: dict[str, Any] = self._chain.layers
        self.last_layer = self._L.SoftmaxWithLoss()
        self.params = b.params
        self._grad_of = b.grad_of
        self._param_shapes = b.param_shapes
        self._state_shapes = b.state_shapes
        self._state = b.state
        self._dropouts = b.dropouts
        self._rows = b.rows

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, backend: str = "fast", seed: int = 0, dtype: Any = None
    ) -> Sequential:
        """The network a ``config`` describes: {"input_shape": [C, H, W], "layers": [...],
        optionally "dtype" ("float32" or "float64", the default unless ``dtype`` is given)
        and "name"}."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a dict, got {type(config).__name__}")
        unknown = sorted(str(k) for k in config if k not in _CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"config: unknown keys {unknown} (known: {', '.join(_CONFIG_KEYS)})")
        for key in ("input_shape", "layers"):
            if key not in config:
                raise ConfigError(f"config: missing {key!r}")
        if dtype is None:
            dtype = config.get("dtype", "float32")
        try:
            return Sequential(
                config["layers"], config["input_shape"], backend=backend, seed=seed,
                dtype=dtype, name=config.get("name"),
            )  # fmt: skip
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def _construct(cls, kwargs: Mapping[str, Any], backend: str, mode: str) -> Sequential:
        """``cls(**kwargs, backend=backend)`` built in ``mode`` (see _build_mode)."""
        model = cls.__new__(cls)
        model._build_mode = mode
        cls.__init__(model, **kwargs, backend=backend)
        return model

    # -- description ----------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The architecture as JSON-compatible data: ``Sequential.from_config(model.config)``
        builds the same network (with the same seed, the same weights)."""
        cfg: dict[str, Any] = {
            "input_shape": list(self.input_dim),
            "layers": [s.to_config() for s in self._specs],
            "dtype": self.dtype.name,
        }
        if self.name != "Sequential":
            cfg["name"] = self.name
        return cfg

    def arguments(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON types, backend excluded): what a model
        file stores to rebuild this model as this class."""
        args = {k: v for k, v in self.config.items() if k != "name"}
        args["seed"] = self.seed
        if self._named:
            args["name"] = self.name
        return args

    @property
    def has_dropout(self) -> bool:
        return bool(self._dropouts)

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self._param_shapes.values())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments().items())
        return f"{type(self).__name__}({args}, backend={self.backend!r})"

    def format_summary(self) -> str:
        """The summary() table as a string."""
        head = ("Layer (type)", "Output shape", "Params")
        rows = [
            ("  " * depth + f"{name} ({kind})", V._shape(out), f"{n:,}")
            for depth, name, kind, out, n in self._rows
        ]
        w0 = max(len(r[0]) for r in [head, *rows]) + 2
        w1 = max(len(r[1]) for r in [head, *rows]) + 2
        w2 = max(len(r[2]) for r in [head, *rows])
        rule = "=" * (w0 + w1 + w2)
        lines = [
            f'Model: "{self.name}" ({self.dtype.name}, backend {self.backend!r}, input '
            f"{V._shape(self.input_dim)})",
            f"{head[0]:<{w0}}{head[1]:<{w1}}{head[2]:>{w2}}",
            rule,
            *(f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows),
            rule,
            f"Total params: {self.num_params():,}",
            f"Loss: softmax cross-entropy over {self.output_size} classes",
        ]
        return "\n".join(lines)

    def summary(self, file: TextIO | None = None) -> None:
        """Print each layer with its output shape (per sample) and parameter count, as Keras's
        ``model.summary()``."""
        print(self.format_summary(), file=file if file is not None else sys.stdout)

    # -- computing ------------------------------------------------------------------------------

    def _input(self, x: Any, where: str) -> np.ndarray:
        x = V.as_array(x, "x", where)
        dims = self.input_dim
        d = math.prod(dims)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{where}: x must hold real numbers, got dtype {x.dtype}")
        if x.ndim == 2 and x.shape[1] == d:
            x = x.reshape(x.shape[0], *dims)
        elif x.ndim != 1 + len(dims) or x.shape[1:] != dims:
            want = ", ".join(map(str, dims))
            flat = f" or flattened (N, {d})" if len(dims) > 1 else ""
            raise ValueError(
                f"{where}: x must be (N, {want}){flat}, got x.shape={V._shape(x.shape)}"
            )
        return x.astype(self.dtype, copy=False)

    def _targets(self, t: Any, n: int, where: str) -> np.ndarray:
        t = V.as_array(t, "t", where)
        if t.ndim == 1:
            if t.dtype.kind not in "iu":
                raise TypeError(
                    f"{where}: labels t (N,) must be integers, got dtype {t.dtype}; "
                    "pass one-hot targets as (N, output_size)"
                )
            V.check_shape(t, (n,), "t", where, "one label per sample of x")
            return t
        if t.ndim == 2 and t.dtype.kind in "fiub":
            V.check_shape(t, (n, self.output_size), "t", where, "one row per sample of x")
            return t.astype(self.dtype, copy=False)
        raise ValueError(
            f"{where}: t must be integer labels (N,) or one-hot rows (N, {self.output_size}), "
            f"got t.shape={V._shape(t.shape)}, dtype {t.dtype}"
        )

    def _forward(self, x: np.ndarray, train_flg: bool) -> np.ndarray:
        return self._chain.forward(x, train_flg)

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Logits (N, output_size). train_flg=True applies dropout (and advances its masks)
        and batch norm's batch statistics."""
        train_flg = V.check_bool(train_flg, "train_flg", f"{self.name}.predict")
        return self._forward(self._input(x, f"{self.name}.predict"), train_flg)

    def predict_proba(self, x: Any, batch_size: int = 100) -> np.ndarray:
        """Class probabilities (N, output_size) in inference mode, computed in batches."""
        where = f"{self.name}.predict_proba"
        x = self._input(x, where)
        batch_size = V.check_int(batch_size, "batch_size", where, low=1)
        out = np.empty((x.shape[0], self.output_size), dtype=self.dtype)
        for i in range(0, x.shape[0], batch_size):
            out[i : i + batch_size] = self._F.softmax(self._forward(x[i : i + batch_size], False))
        return out

    def loss(self, x: Any, t: Any, train_flg: bool = True) -> float:
        """Mean softmax cross-entropy. As in the classic code the forward pass runs in training
        mode by default (dropout on); pass train_flg=False to evaluate."""
        where = f"{self.name}.loss"
        train_flg = V.check_bool(train_flg, "train_flg", where)
        x = self._input(x, where)
        t = self._targets(t, x.shape[0], where)
        return float(self.last_layer.forward(self._forward(x, train_flg), t))

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of samples whose argmax logit is the label, inference mode, in batches."""
        where = f"{self.name}.accuracy"
        x = self._input(x, where)
        t = self._targets(t, x.shape[0], where)
        batch_size = V.check_int(batch_size, "batch_size", where, low=1)
        if x.shape[0] == 0:
            raise ValueError(f"{where}: the accuracy of 0 samples is undefined")
        labels = t if t.ndim == 1 else t.argmax(axis=1)
        correct = 0
        for i in range(0, x.shape[0], batch_size):
            y = self._forward(x[i : i + batch_size], False)
            correct += int((y.argmax(axis=1) == labels[i : i + batch_size]).sum())
        return correct / x.shape[0]

    def loss_and_gradient(self, x: Any, t: Any) -> tuple[float, dict[str, np.ndarray]]:
        """One training-mode forward and backward pass: (loss, grads) with grads keyed like
        ``params``. Each call draws new dropout masks."""
        loss = self.loss(x, t, train_flg=True)
        self._chain.backward(self.last_layer.backward(1.0), need_dx=False)
        return loss, {key: getattr(layer, attr) for key, (layer, attr) in self._grad_of.items()}

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients of loss(x, t) (training mode) w.r.t. every param, keyed like ``params``."""
        return self.loss_and_gradient(x, t)[1]

    # -- state beside the params ------------------------------------------------------------------

    def _dropout_layers(self) -> dict[str, Any]:
        """Every dropout layer (nested ones too): their call counts fix the next masks."""
        return self._dropouts

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The arrays besides params that inference needs: batch norms' running mean and
        variance, keyed "<layer>/<attr>" (BatchNorm1/running_mean, ...)."""
        return {key: getattr(layer, attr) for key, (layer, attr) in self._state.items()}

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the architecture, params and batch-norm statistics to ``path`` (an npz
        archive, no pickle) atomically: a temporary file in the same directory is renamed
        over ``path``, so a crash or error never leaves a half-written file. The name is used
        as given (no ".npz" is appended)."""
        from fastcnn.models import _file

        _file.save(path, self)

    def load_params(self, path: PathLike) -> None:
        """Copy the params (and batch-norm statistics) of a model file or checkpoint into this
        model, in place. The file must hold the same architecture with params of the same
        names, shapes and dtypes (the seed may differ); otherwise ModelFileError, and this
        model is left unchanged."""
        from fastcnn.models import _file

        _file.load_params(path, self)


def _check_input_shape(shape: Any, where: str) -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        raise TypeError(
            f"{where}: input_shape must be a (C, H, W) or (D,) tuple, got {type(shape).__name__}"
        )
    if len(shape) not in (1, 3):
        raise ValueError(f"{where}: input_shape must be (C, H, W) or (D,), got {tuple(shape)!r}")
    dims = tuple(V.check_int(d, "input_shape", where, low=1, high=1 << 16) for d in shape)
    if math.prod(dims) > _specs.MAX_ACTIVATION:
        raise ValueError(f"{where}: input_shape {V._shape(dims)} is too large")
    return dims


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    # np.dtype(None) is float64, and a dtype compares equal to None: reject None explicitly.
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in V.FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    return dt


def read_config(path: PathLike) -> dict[str, Any]:
    """A JSON architecture config file, checked as JSON (at most 1 MiB, an object); the layers
    are checked when it is built (Sequential.from_config). FileNotFoundError if there is none."""
    import json

    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read((1 << 20) + 1)
    if len(data) > 1 << 20:
        raise ConfigError(f"{path}: a config file is at most 1 MiB")
    try:
        config = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ConfigError(f"{path}: the config nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a JSON config ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, got {type(config).__name__}")
    return config


Model = Sequential  # the base of every fastcnn model: the name older code and checks use
