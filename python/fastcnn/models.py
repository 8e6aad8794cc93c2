"""CNN models on either backend, and their files: SimpleConvNet, DeepConvNet, save/load,
training checkpoints; load_classic_params reads the classic book's params.pkl (in
_classic_params.py).

A model is a stack of fastcnn layers plus a ``params`` dict whose arrays ARE the layers'
weights, so an optimizer updating ``params`` in place trains the model. ``backend="fast"``
builds it from fastcnn.layers, ``"reference"`` from fastcnn.reference.layers; with the same
seed both get bit-identical initial weights and dropout masks. Files are ``.npz`` archives read
and written without pickle: what their members mean is here, the checked container (sizes,
limits, atomic writes) in _model_file.py. Training loops, data loading and the CLI live
elsewhere.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from fastcnn import _backends
from fastcnn import _model_file as _mf
from fastcnn import _validation as V
from fastcnn import optim as _optim
from fastcnn._model_file import ModelFileError
from fastcnn.reference import layers as _ref_layers

__all__ = [
    "Model",
    "SimpleConvNet",
    "DeepConvNet",
    "MODELS",
    "ModelFileError",
    "FORMAT_VERSION",
    "load",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_classic_params",
    "ClassicParamsError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time see __getattr__
    from fastcnn._classic_params import ClassicParamsError, load_classic_params  # noqa: F401

PathLike = Union[str, "os.PathLike[str]"]

# Layers whose forward takes the train flag (both backends subclass these reference classes).
_TRAIN_AWARE = (
    _ref_layers.Dropout,
    _ref_layers.BatchNormalization,
    _ref_layers.SpatialBatchNormalization,
)


class Model:
    """Base class of the models: layers in ``layers`` (name -> layer, in order), the loss
    layer in ``last_layer``, the weights in ``params``.

    ``params`` maps "W1", "b1", ... to the very arrays the layers hold; update them in place
    (``params[k] -= ...``, ``params[k][...] = ...``) — rebinding a key would detach it from its
    layer. Inputs x are (N, C, H, W) matching ``input_dim`` or flattened (N, C*H*W), any real
    dtype (cast to the model's dtype). Targets t are integer labels (N,) or one-hot /
    probability rows (N, output_size).
    """

    def __init__(
        self,
        input_dim: Sequence[int],
        output_size: int,
        backend: str,
        seed: int,
        dtype: Any,
    ) -> None:
        where = type(self).__name__
        self.backend = _backends.check_backend(backend, where)
        self._L: ModuleType = _backends.layers_module(backend, where)
        self._F: ModuleType = _backends.functional_module(backend, where)
        self.input_dim = _check_input_dim(input_dim, where)
        self.output_size = V.check_int(output_size, "output_size", where, low=1)
        self.seed = V.check_int(seed, "seed", where, low=0)
        self.dtype = _check_dtype(dtype, where)
        self.params: dict[str, np.ndarray] = {}
        self.layers: dict[str, Any] = {}
        self.last_layer = self._L.SoftmaxWithLoss()
        self._grad_of: dict[str, tuple[Any, str]] = {}  # param key -> (layer, gradient attr)
        self._param_shapes: dict[str, tuple[int, ...]] = {}  # what params holds, or will
        self._rng = np.random.default_rng(self.seed)
        self._n_weighted = 0
        self._n_dropout = 0

    # -- building -------------------------------------------------------------------------------

    def _he(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        """He init, std = sqrt(2 / fan_in), drawn in float64 then cast: identical on every
        backend and for both dtypes up to the final rounding."""
        w = self._rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        return w.astype(self.dtype)

    def _add_layer(self, prefix: str, layer: Any) -> Any:
        """Append ``layer`` named prefix + its 1-based count (Conv1, Relu1, Pool1, Affine1...)."""
        count = sum(name.rstrip("0123456789") == prefix for name in self.layers)
        self.layers[f"{prefix}{count + 1}"] = layer
        return layer

    # How the weights are made: "init" draws them (He), "zeros" leaves them for a file's
    # params to overwrite (no random draws), "plan" makes no arrays and no weighted layers —
    # only _param_shapes, the dropout layers and the settings — so a model file's shapes are
    # checked against its architecture before a byte is allocated for it.
    _build_mode = "init"

    @classmethod
    def _construct(cls, kwargs: Mapping[str, Any], backend: str, mode: str) -> Model:
        """``cls(**kwargs, backend=backend)`` built in ``mode`` (see _build_mode)."""
        model = cls.__new__(cls)
        model._build_mode = mode
        cls.__init__(model, **kwargs, backend=backend)
        return model

    def _add_weighted(self, prefix: str, w_shape: tuple[int, ...], fan_in: int, make: Any) -> None:
        """Add a Convolution/Affine layer ``make(W, b)`` (b: one per output, the last axis of
        an affine W, the first of a conv W) and register W and b as params W<i>, b<i>."""
        self._n_weighted += 1
        i = self._n_weighted
        b_size = w_shape[0] if prefix == "Conv" else w_shape[-1]
        self._param_shapes[f"W{i}"], self._param_shapes[f"b{i}"] = w_shape, (b_size,)
        if self._build_mode == "plan":
            self._add_layer(prefix, None)
            return
        if self._build_mode == "init":
            weights = self._he(w_shape, fan_in)
        else:
            weights = np.zeros(w_shape, self.dtype)
        layer = make(weights, np.zeros(b_size, self.dtype))
        self.params[f"W{i}"], self.params[f"b{i}"] = layer.W, layer.b
        self._grad_of[f"W{i}"], self._grad_of[f"b{i}"] = (layer, "dW"), (layer, "db")
        self._add_layer(prefix, layer)

    def _add_conv(
        self, shape: tuple[int, int, int], p: Mapping[str, int], label: str
    ) -> tuple[int, int, int]:
        """Conv + ReLU on input ``shape`` (C, H, W); returns the output shape."""
        c, h, w = shape
        k, f, pad, stride = p["filter_num"], p["filter_size"], p["pad"], p["stride"]
        out_h, out_w = V.conv_output_size(
            (h, w), (f, f), (stride, stride), (pad, pad), f"{type(self).__name__}: {label}",
            f"its input is (C, H, W)={V._shape(shape)}",
        )  # fmt: skip
        self._add_weighted(
            "Conv", (k, c, f, f), c * f * f,  # fan_in = C*R*S
            lambda w, b: self._L.Convolution(w, b, stride=stride, pad=pad),
        )  # fmt: skip
        self._add_layer("Relu", self._L.Relu())
        return (k, out_h, out_w)

    def _add_pool(self, shape: tuple[int, int, int], label: str) -> tuple[int, int, int]:
        """2x2 max pooling, stride 2 (odd sizes are floored)."""
        c, h, w = shape
        out_h, out_w = V.pool_output_size(
            (h, w), (2, 2), (2, 2), (0, 0), f"{type(self).__name__}: {label}",
            f"its input is (C, H, W)={V._shape(shape)}",
        )  # fmt: skip
        self._add_layer("Pool", self._L.Pooling(2, 2, stride=2))
        return (c, out_h, out_w)

    def _add_affine(self, fan_in: int, size: int, relu: bool) -> None:
        self._add_weighted("Affine", (fan_in, size), fan_in, self._L.Affine)
        if relu:
            self._add_layer("Relu", self._L.Relu())

    def _add_dropout(self, ratio: float) -> None:
        # Each dropout layer gets its own 64-bit seed derived from the model seed (independent
        # of the weight draws), so masks are the same on both backends and across save/load.
        seed_seq = np.random.SeedSequence([self.seed, 1, self._n_dropout])
        layer_seed = int(seed_seq.generate_state(1, np.uint64)[0])
        self._n_dropout += 1
        self._add_layer("Dropout", self._L.Dropout(ratio, seed=layer_seed))

    # -- description ----------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON types, backend excluded): what a model file
        stores to rebuild the architecture."""
        raise NotImplementedError

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args}, backend={self.backend!r})"

    # -- computing ------------------------------------------------------------------------------

    def _input(self, x: Any, where: str) -> np.ndarray:
        x = V.as_array(x, "x", where)
        c, h, w = self.input_dim
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{where}: x must hold real numbers, got dtype {x.dtype}")
        if x.ndim == 2 and x.shape[1] == c * h * w:
            x = x.reshape(x.shape[0], c, h, w)
        elif x.ndim != 4 or x.shape[1:] != self.input_dim:
            raise ValueError(
                f"{where}: x must be (N, C, H, W)=(N, {c}, {h}, {w}) or flattened "
                f"(N, {c * h * w}), got x.shape={V._shape(x.shape)}"
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
        for layer in self.layers.values():
            if isinstance(layer, _TRAIN_AWARE):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Logits (N, output_size). train_flg=True applies dropout (and advances its masks)."""
        train_flg = V.check_bool(train_flg, "train_flg", f"{type(self).__name__}.predict")
        return self._forward(self._input(x, f"{type(self).__name__}.predict"), train_flg)

    def predict_proba(self, x: Any, batch_size: int = 100) -> np.ndarray:
        """Class probabilities (N, output_size) in inference mode, computed in batches."""
        where = f"{type(self).__name__}.predict_proba"
        x = self._input(x, where)
        batch_size = V.check_int(batch_size, "batch_size", where, low=1)
        out = np.empty((x.shape[0], self.output_size), dtype=self.dtype)
        for i in range(0, x.shape[0], batch_size):
            out[i : i + batch_size] = self._F.softmax(self._forward(x[i : i + batch_size], False))
        return out

    def loss(self, x: Any, t: Any, train_flg: bool = True) -> float:
        """Mean softmax cross-entropy. As in the classic code the forward pass runs in training
        mode by default (dropout on); pass train_flg=False to evaluate."""
        where = f"{type(self).__name__}.loss"
        train_flg = V.check_bool(train_flg, "train_flg", where)
        x = self._input(x, where)
        t = self._targets(t, x.shape[0], where)
        return float(self.last_layer.forward(self._forward(x, train_flg), t))

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of samples whose argmax logit is the label, inference mode, in batches."""
        where = f"{type(self).__name__}.accuracy"
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
        dout = self.last_layer.backward(1.0)
        layers = list(self.layers.values())
        for layer in reversed(layers[1:]):
            dout = layer.backward(dout)
        if isinstance(layers[0], _ref_layers.Convolution):
            layers[0].backward(dout, need_dx=False)  # the input image needs no gradient
        else:
            layers[0].backward(dout)
        return loss, {key: getattr(layer, attr) for key, (layer, attr) in self._grad_of.items()}

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients of loss(x, t) (training mode) w.r.t. every param, keyed like ``params``."""
        return self.loss_and_gradient(x, t)[1]

    # -- dropout state (part of a checkpoint: the masks of call k depend on the call count) ----

    def _dropout_layers(self) -> dict[str, Any]:
        return {k: v for k, v in self.layers.items() if isinstance(v, _ref_layers.Dropout)}

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the architecture and params to ``path`` (an npz archive, no pickle) atomically:
        a temporary file in the same directory is renamed over ``path``, so a crash or error
        never leaves a half-written file. The name is used as given (no ".npz" is appended)."""
        _mf.write_npz(os.fspath(path), _model_entries(self))

    def load_params(self, path: PathLike) -> None:
        """Copy the params of a model file (or checkpoint) into this model, in place.

        The file must hold the same architecture class with params of the same names, shapes
        and dtypes (other constructor arguments, e.g. the seed, may differ); otherwise
        ModelFileError, and this model is left unchanged."""
        with _open(path) as ar:
            cls, _ = _read_header(ar)
            if cls is not type(self):
                raise ModelFileError(
                    f"{ar.path}: the file holds a {cls.__name__}, this model is a "
                    f"{type(self).__name__}"
                )
            _check_params(ar, self)
            ar.check_inflation(f"params/{k}" for k in self._param_shapes)
            found = _read_params(ar, self)
        for key, want in self.params.items():
            want[...] = found[key]


class SimpleConvNet(Model):
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
        super().__init__(input_dim, output_size, backend, seed, dtype)
        where = "SimpleConvNet"
        self.conv_param = _check_conv_param(conv_param, self.DEFAULT_CONV, "conv_param", where)
        self.hidden_size = V.check_int(hidden_size, "hidden_size", where, low=1)
        shape = self._add_conv(self.input_dim, self.conv_param, "conv_param")
        shape = self._add_pool(shape, "pooling after conv_param")
        self._add_affine(math.prod(shape), self.hidden_size, relu=True)
        self._add_affine(self.hidden_size, self.output_size, relu=False)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "input_dim": list(self.input_dim),
            "conv_param": dict(self.conv_param),
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }


class DeepConvNet(Model):
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
        super().__init__(input_dim, output_size, backend, seed, dtype)
        where = "DeepConvNet"
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        self.conv_params = [
            _check_conv_param(p, d, f"conv_param_{i}", where)
            for i, (p, d) in enumerate(zip(given, self.DEFAULT_CONVS), start=1)
        ]
        self.hidden_size = V.check_int(hidden_size, "hidden_size", where, low=1)
        self.dropout_ratio = V.check_real(dropout_ratio, "dropout_ratio", where, low=0.0, high=1.0)
        shape = self.input_dim
        for i, p in enumerate(self.conv_params, start=1):
            shape = self._add_conv(shape, p, f"conv_param_{i}")
            if i % 2 == 0:
                shape = self._add_pool(shape, f"pooling after conv_param_{i}")
        self._add_affine(math.prod(shape), self.hidden_size, relu=True)
        self._add_dropout(self.dropout_ratio)
        self._add_affine(self.hidden_size, self.output_size, relu=False)
        self._add_dropout(self.dropout_ratio)

    @property
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"input_dim": list(self.input_dim)}
        for i, p in enumerate(self.conv_params, start=1):
            cfg[f"conv_param_{i}"] = dict(p)
        cfg.update(
            hidden_size=self.hidden_size,
            output_size=self.output_size,
            dropout_ratio=self.dropout_ratio,
            seed=self.seed,
            dtype=self.dtype.name,
        )
        return cfg


MODELS: dict[str, type[Model]] = {"simple": SimpleConvNet, "deep": DeepConvNet}


# ---------------------------------------------------------------------------------------------
# Constructor argument checks
# ---------------------------------------------------------------------------------------------


def _check_input_dim(input_dim: Any, where: str) -> tuple[int, int, int]:
    if isinstance(input_dim, (str, bytes)) or not isinstance(input_dim, Sequence):
        raise TypeError(
            f"{where}: input_dim must be a (C, H, W) tuple, got {type(input_dim).__name__}"
        )
    if len(input_dim) != 3:
        raise ValueError(f"{where}: input_dim must be (C, H, W), got {tuple(input_dim)!r}")
    c, h, w = (V.check_int(d, "input_dim", where, low=1) for d in input_dim)
    return (c, h, w)


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    # np.dtype(None) is float64, and a dtype compares equal to None: reject None explicitly.
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in V.FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    return dt


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
    lows = {"filter_num": 1, "filter_size": 1, "pad": 0, "stride": 1}
    return {k: V.check_int(merged[k], f"{name}[{k!r}]", where, low=lows[k]) for k in default}


# ---------------------------------------------------------------------------------------------
# Model files. An npz archive (a zip of .npy members) holding:
#   __fastcnn_format__  0-d int64: FORMAT_VERSION
#   __fastcnn_model__   0-d str: JSON {"class": "<name>", "kwargs": {...}, "fastcnn": version}
#   params/<key>        every param, in the model's dtype
# and, in a checkpoint, also:
#   state/<dropout layer>  0-d int64: that layer's training-forward count (its mask position)
#   optim/<key>            the optimizer's state_dict (scalars as 0-d arrays)
#   __fastcnn_meta__       0-d str: JSON of the non-array meta values
#   meta/<key>             the array meta values
# Every member is written and read with allow_pickle=False: loading a file from someone else
# can fail, but can never run code. Reading (the container is _model_file.py's) goes header
# first: the architecture is planned without allocating a weight, every expected member's
# declared shape and dtype is compared with the plan, and only then is any array data
# decompressed — so no file can make a reader allocate more than its own size warrants.
# ---------------------------------------------------------------------------------------------

FORMAT_VERSION = 1
_FORMAT_KEY = "__fastcnn_format__"
_MODEL_KEY = "__fastcnn_model__"
_META_KEY = "__fastcnn_meta__"
_PREFIXES = ("params/", "state/", "optim/", "meta/")


def _model_entries(model: Model) -> dict[str, np.ndarray]:
    from fastcnn import __version__

    header = {"class": type(model).__name__, "kwargs": model.config, "fastcnn": __version__}
    entries = {
        _FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64),
        _MODEL_KEY: np.array(json.dumps(header)),
    }
    for key, arr in model.params.items():
        entries[f"params/{key}"] = arr
    return entries


def _json_entry(ar: _mf.Archive, key: str, what: str, limit: str) -> Any:
    if key not in ar.infos:
        raise ModelFileError(f"{ar.path}: missing metadata {key!r} ({what}); not a fastcnn file?")
    text = ar.read_text(key, limit)
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{ar.path}: metadata {key!r} nests too deeply to be read") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise ModelFileError(f"{ar.path}: metadata {key!r} is not valid JSON ({exc})") from None


def _read_header(ar: _mf.Archive) -> tuple[type[Model], dict]:
    """Check the entry names and format version; return (model class, constructor kwargs)."""
    path = ar.path
    known = (_FORMAT_KEY, _MODEL_KEY, _META_KEY)
    stray = [k for k in ar.infos if k not in known and not k.startswith(_PREFIXES)]
    if stray:
        raise ModelFileError(f"{path}: unexpected entries {sorted(stray)[:10]}")
    if _FORMAT_KEY not in ar.infos:
        raise ModelFileError(f"{path}: missing metadata {_FORMAT_KEY!r}; not a fastcnn model file")
    member = ar.member(_FORMAT_KEY)
    if member.shape != () or member.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: {_FORMAT_KEY!r} must be a 0-d integer")
    version = int(ar.read(_FORMAT_KEY)[()])
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version} is not supported "
            f"(this fastcnn reads version {FORMAT_VERSION})"
        )
    header = _json_entry(ar, _MODEL_KEY, "the architecture", "architecture JSON")
    if not isinstance(header, dict) or not isinstance(header.get("kwargs"), dict):
        raise ModelFileError(f"{path}: the architecture metadata must hold 'class' and 'kwargs'")
    classes = {cls.__name__: cls for cls in MODELS.values()}
    name = header.get("class")
    if not isinstance(name, str) or name not in classes:
        raise ModelFileError(
            f"{path}: unknown architecture {repr(name)[:60]} (known: {', '.join(sorted(classes))})"
        )
    return classes[name], header["kwargs"]


def _from_file(path: str, cls: type[Model], kwargs: dict, backend: str, mode: str) -> Model:
    # The class comes from a fixed list and every argument is range-checked by the
    # constructor; a "plan" allocates no weights, so any size can be checked against the file.
    try:
        return cls._construct(kwargs, backend, mode)
    except (TypeError, ValueError, MemoryError) as exc:
        raise ModelFileError(
            f"{path}: invalid {cls.__name__} arguments in the file ({exc})"
        ) from exc


def _plan(path: str, cls: type[Model], kwargs: dict, backend: str) -> Model:
    """The file's architecture with its param shapes, but no weights (see Model._construct)."""
    plan = _from_file(path, cls, kwargs, backend, "plan")
    n = sum(math.prod(s) for s in plan._param_shapes.values())
    if n > _mf.LIMITS["params"]:
        raise ModelFileError(
            f"{path}: the {cls.__name__} in the file has {n:,} params, more than the "
            f"{_mf.LIMITS['params']:,} fastcnn loads"
        )
    return plan


def _check_params(ar: _mf.Archive, model: Model) -> None:
    """The file's params against ``model``'s (a plan or a model): names, shapes and dtypes,
    from the .npy headers alone."""
    path, arch = ar.path, type(model).__name__
    shapes = model._param_shapes
    found = [k[len("params/") :] for k in ar.infos if k.startswith("params/")]
    missing = [k for k in shapes if k not in found]
    if missing:
        k = missing[0]
        raise ModelFileError(
            f"{path}: missing param {k!r} (the {arch} expects shape "
            f"{V._shape(shapes[k])}; missing: {missing})"
        )
    extra = [k for k in found if k not in shapes]
    if extra:
        raise ModelFileError(f"{path}: unexpected params {extra[:10]} for a {arch}")
    for key, want in shapes.items():
        got = ar.member(f"params/{key}")
        if got.shape != want:
            raise ModelFileError(
                f"{path}: param {key!r} has shape {V._shape(got.shape)} in the file but the "
                f"{arch} expects {V._shape(want)}"
            )
        if got.dtype != model.dtype:
            raise ModelFileError(
                f"{path}: param {key!r} has dtype {got.dtype} in the file but the {arch} "
                f"expects {model.dtype} (shape {V._shape(want)})"
            )


def _read_param(ar: _mf.Archive, key: str, out: np.ndarray | None = None) -> np.ndarray:
    arr = ar.read(f"params/{key}", out)
    if not np.isfinite(arr).all():
        raise ModelFileError(
            f"{ar.path}: param {key!r} holds NaN or infinite values (saved from a diverged "
            "run?); such a model cannot predict anything"
        )
    return arr


def _read_params(ar: _mf.Archive, model: Model) -> dict[str, np.ndarray]:
    """The file's params (checked by _check_params) as new arrays."""
    return {key: _read_param(ar, key) for key in model._param_shapes}


def _open(path: PathLike) -> _mf.Archive:
    return _mf.Archive(os.fspath(path))


def load(path: PathLike, backend: str = "fast") -> Model:
    """Rebuild the model stored at ``path`` (by Model.save or save_checkpoint) on ``backend``.

    The architecture and dtype come from the file. Raises ModelFileError (a ValueError) naming
    the file for anything wrong with it — including params that are not finite — and
    FileNotFoundError if there is no file.
    """
    _backends.check_backend(backend, "load")
    with _open(path) as ar:
        cls, kwargs = _read_header(ar)
        plan = _plan(ar.path, cls, kwargs, backend)
        _check_params(ar, plan)
        ar.check_inflation(f"params/{k}" for k in plan._param_shapes)
        model = _from_file(ar.path, cls, kwargs, backend, "zeros")
        for key, param in model.params.items():  # straight into the new model: no copies
            _read_param(ar, key, out=param)
    return model


# ---------------------------------------------------------------------------------------------
# Checkpoints: a model file plus optimizer state, dropout positions and caller meta.
# ---------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What load_checkpoint returns: the model, the optimizer (None if the file has none) and
    the meta dict given to save_checkpoint."""

    model: Model
    optimizer: _optim.Optimizer | None
    meta: dict[str, Any] = field(default_factory=dict)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def save_checkpoint(
    path: PathLike,
    model: Model,
    optimizer: _optim.Optimizer | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write everything needed to resume training to ``path`` (npz, no pickle):
    the model (so ``load(path)`` also works), its dropout positions, ``optimizer.state_dict()``
    and ``meta``. meta maps str keys to numpy arrays (stored as arrays) or to JSON values —
    numbers, strings, bools, None, lists, dicts, e.g. ``rng.bit_generator.state`` (tuples come
    back as lists, numpy scalars as Python numbers). Temporary files left in the directory by
    an earlier save to ``path`` that was killed are removed."""
    where = "save_checkpoint"
    if not isinstance(model, Model):
        raise TypeError(f"{where}: model must be a fastcnn model, got {type(model).__name__}")
    entries = _model_entries(model)
    for name, layer in model._dropout_layers().items():
        entries[f"state/{name}"] = np.array(layer.calls, dtype=np.int64)
    if optimizer is not None:
        if not isinstance(optimizer, _optim.Optimizer):
            raise TypeError(
                f"{where}: optimizer must be a fastcnn.optim optimizer, "
                f"got {type(optimizer).__name__}"
            )
        for key, value in optimizer.state_dict().items():
            entries[f"optim/{key}"] = np.asarray(value)
    json_meta: dict[str, Any] = {}
    for key, value in dict(meta or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: meta keys must be str, got {key!r}")
        if isinstance(value, np.ndarray):
            entries[f"meta/{key}"] = value
        else:
            json_meta[key] = value
    try:
        entries[_META_KEY] = np.array(json.dumps(json_meta, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: meta must hold arrays or JSON values ({exc})") from exc
    _mf.write_npz(os.fspath(path), entries)


def _read_dropout_state(ar: _mf.Archive, model: Model) -> dict[str, int]:
    dropout = model._dropout_layers()
    calls: dict[str, int] = {}
    for key in (k for k in ar.infos if k.startswith("state/")):
        name, m = key[len("state/") :], ar.member(key)
        if name not in dropout or m.shape != () or m.dtype.kind not in "iu":
            raise ModelFileError(f"{ar.path}: invalid model state entry {key!r}")
        n = int(ar.read(key)[()])
        if n < 0:
            raise ModelFileError(f"{ar.path}: invalid model state entry {key!r} ({n} < 0)")
        calls[name] = n
    return calls


def _read_optimizer_state(ar: _mf.Archive) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for key in (k for k in ar.infos if k.startswith("optim/")):
        name, arr = key[len("optim/") :], ar.read(key)
        # "<slot>/<param>" entries are state arrays; the others are 0-d scalars (type, lr, ...)
        state[name] = arr if "/" in name or arr.shape != () else arr[()].item()
    return state


def _read_meta(ar: _mf.Archive) -> dict[str, Any]:
    meta = (
        _json_entry(ar, _META_KEY, "checkpoint meta", "meta JSON") if _META_KEY in ar.infos else {}
    )
    if not isinstance(meta, dict):
        raise ModelFileError(f"{ar.path}: checkpoint meta must be a JSON object")
    meta.update({k[len("meta/") :]: ar.read(k) for k in ar.infos if k.startswith("meta/")})
    return meta


def load_checkpoint(
    path: PathLike,
    model: Model | None = None,
    optimizer: _optim.Optimizer | None = None,
    *,
    backend: str = "fast",
) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint.

    A given model / optimizer is restored in place (params, dropout positions; the optimizer
    state replaces its own); one left as None is rebuilt from the file on ``backend``. The
    optimizer is None when the file holds none and none was given; giving one for a file
    without optimizer state is a ModelFileError. Everything is checked before anything given
    is modified: the params as load checks them, and the optimizer state against the model
    and the optimizer (load_state_dict with the model's params: every entry present, none
    extra, shapes and dtypes the params', values valid for that optimizer).
    """
    _backends.check_backend(backend, "load_checkpoint")
    with _open(path) as ar:
        path = ar.path
        cls, kwargs = _read_header(ar)
        if model is not None and cls is not type(model):
            raise ModelFileError(
                f"{path}: the file holds a {cls.__name__}, the model given is a "
                f"{type(model).__name__}"
            )
        plan = model if model is not None else _plan(path, cls, kwargs, backend)
        _check_params(ar, plan)
        calls = _read_dropout_state(ar, plan)
        optim_keys = [k for k in ar.infos if k.startswith("optim/")]
        if optimizer is not None and not optim_keys:
            raise ModelFileError(f"{path}: the file holds no optimizer state")
        ar.check_inflation(ar.infos)  # everything below is read
        params = _read_params(ar, plan)
        state = _read_optimizer_state(ar)
        meta = _read_meta(ar)
        if state:
            try:
                if optimizer is None:
                    optimizer = _optim.from_state_dict(state, backend=backend, params=params)
                else:
                    optimizer.load_state_dict(state, params)  # checks all before changing any
            except (TypeError, ValueError) as exc:
                raise ModelFileError(
                    f"{path}: invalid optimizer state (entries optim/...: {exc})"
                ) from exc
    if model is None:
        model = _from_file(path, cls, kwargs, backend, "zeros")
    for key, want in model.params.items():
        want[...] = params[key]
    dropout = model._dropout_layers()
    for name, n in calls.items():
        dropout[name].calls = n
    return Checkpoint(model, optimizer, meta)


# ---------------------------------------------------------------------------------------------
# The classic book's params.pkl lives in _classic_params.py, which builds on this module (its
# error subclasses ModelFileError); it is imported on first use so that neither module needs
# the other half-initialised, and the pickle machinery loads only for those who read one.
# ---------------------------------------------------------------------------------------------

_CLASSIC = ("load_classic_params", "ClassicParamsError")


def __getattr__(name: str) -> Any:
    if name in _CLASSIC:
        from fastcnn import _classic_params

        value = getattr(_classic_params, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
