"""Model files and checkpoints: what the members of a fastcnn ``.npz`` mean (architecture,
params, batch-norm statistics, optimizer state, dropout positions, caller meta), checked
against the architecture before anything is allocated. The container (zip, .npy headers,
size limits, atomic writes) is _archive.py's; this module never unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from fastcnn import _backends
from fastcnn import _validation as V
from fastcnn import optim as _optim
from fastcnn.models import _archive as _mf
from fastcnn.models._archive import ModelFileError
from fastcnn.models._classic import DeepConvNet, SimpleConvNet
from fastcnn.models._sequential import Sequential

Model = Sequential
PathLike = Union[str, "os.PathLike[str]"]

# The classes a file may name: the header's "class" picks one, its "kwargs" are the
# arguments() of the model saved. Nothing else is ever constructed from a file.
_CLASSES: dict[str, type[Sequential]] = {
    cls.__name__: cls for cls in (Sequential, SimpleConvNet, DeepConvNet)
}

# ---------------------------------------------------------------------------------------------
# Model files. An npz archive (a zip of .npy members) holding:
#   __fastcnn_format__  0-d int64: FORMAT_VERSION
#   __fastcnn_model__   0-d str: JSON {"class": "<name>", "kwargs": {...}, "fastcnn": version,
#                       and optionally "classes": [one name per output]}
#   params/<key>        every param, in the model's dtype
#   state/<layer>/<attr>  a batch norm's running_mean and running_var, in the model's dtype
# and, in a checkpoint, also:
#   state/<dropout layer>  0-d int64: that layer's training-forward count (its mask position)
#   optim/<key>            the optimizer's state_dict (scalars as 0-d arrays)
#   __fastcnn_meta__       0-d str: JSON of the non-array meta values
#   meta/<key>             the array meta values
# Every member is written and read with allow_pickle=False: loading a file from someone else
# can fail, but can never run code. Reading (the container is _archive.py's) goes header
# first: the architecture is planned without allocating a weight, every expected member's
# declared shape and dtype is compared with the plan, and only then is any array data
# decompressed — so no file can make a reader allocate more than its own size warrants.
# ---------------------------------------------------------------------------------------------

FORMAT_VERSION = 1
PARAMS_ONLY = "params-only"  # the "class" of a file of a foreign network's params (_params_file)
_FORMAT_KEY = "__fastcnn_format__"
_MODEL_KEY = "__fastcnn_model__"
_META_KEY = "__fastcnn_meta__"
_PREFIXES = ("params/", "state/", "optim/", "meta/")


class ParamsOnlyError(ModelFileError):
    """A params-only file (the params of a network fastcnn did not build, see _params_file.py)
    where a model file is needed: there is no architecture to rebuild the network from."""


def _model_entries(model: Model) -> dict[str, np.ndarray]:
    from fastcnn import __version__

    if not isinstance(model, Sequential):
        raise TypeError(f"save: model must be a fastcnn model, got {type(model).__name__}")
    # A built-in class is stored as itself (its own arguments); any other network, a
    # Sequential subclass of the user's included, as the Sequential its config describes.
    cls = type(model) if _CLASSES.get(type(model).__name__) is type(model) else Sequential
    kwargs = cls.arguments(model) if cls is not Sequential else Sequential.arguments(model)
    if cls is Sequential and model.name != "Sequential":
        kwargs["name"] = model.name
    header: dict[str, Any] = {"class": cls.__name__, "kwargs": kwargs, "fastcnn": __version__}
    if model.classes is not None:
        header["classes"] = list(model.classes)
    entries = {
        _FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64),
        _MODEL_KEY: np.array(json.dumps(header)),
    }
    for key, arr in model.params.items():
        entries[f"params/{key}"] = arr
    for key, arr in model.state_arrays().items():
        entries[f"state/{key}"] = arr
    return entries


def save(path: PathLike, model: Model) -> None:
    _mf.write_npz(os.fspath(path), _model_entries(model))


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


def _read_header(ar: _mf.Archive) -> tuple[type[Model], dict, tuple[str, ...] | None]:
    """Check the entry names and format version; return (model class, constructor kwargs,
    class names or None)."""
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
    if isinstance(header, dict) and header.get("class") == PARAMS_ONLY:
        of = str(header.get("of"))[:100]
        raise ParamsOnlyError(
            f"{path}: holds the params of a {of} only (a network fastcnn did not build, so "
            "the file has no architecture): it cannot be loaded, evaluated or used to predict "
            f"from the file alone; build the {of} in Python and resume training with "
            "fastcnn.train.Trainer.resume(path, model=...)"
        )
    if not isinstance(header, dict) or not isinstance(header.get("kwargs"), dict):
        raise ModelFileError(f"{path}: the architecture metadata must hold 'class' and 'kwargs'")
    classes = _CLASSES
    name = header.get("class")
    if not isinstance(name, str) or name not in classes:
        raise ModelFileError(
            f"{path}: unknown architecture {repr(name)[:60]} (known: {', '.join(sorted(classes))})"
        )
    return classes[name], header["kwargs"], _class_names(path, header.get("classes"))


MAX_CLASS_NAME = 200  # characters of one class name a file may hold


def _class_names(path: str, names: Any) -> tuple[str, ...] | None:
    """The optional "classes" of the header (files written before it existed have none)."""
    if names is None:
        return None
    if not isinstance(names, list) or not all(
        isinstance(n, str) and 0 < len(n) <= MAX_CLASS_NAME for n in names
    ):
        raise ModelFileError(
            f"{path}: the architecture metadata's 'classes' must be a list of names "
            f"(non-empty strings of at most {MAX_CLASS_NAME} characters)"
        )
    return tuple(names)


def _set_classes(path: str, model: Model, names: tuple[str, ...] | None) -> None:
    if names is not None and len(names) != model.output_size:
        raise ModelFileError(
            f"{path}: the file names {len(names)} classes but the model has "
            f"{model.output_size} outputs"
        )
    model.classes = names


def _from_file(path: str, cls: type[Model], kwargs: dict, backend: str, mode: str) -> Model:
    # The class comes from a fixed list and every argument is range-checked by the
    # constructor; a "plan" allocates no weights, so any size can be checked against the file.
    try:
        return cls._construct(kwargs, backend, mode)
    except (TypeError, ValueError, MemoryError, RecursionError) as exc:
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
    want = {k: (shape, model.dtype) for k, shape in model._param_shapes.items()}
    check_param_entries(ar, want, f"the {type(model).__name__}")


def check_param_entries(
    ar: _mf.Archive, want: Mapping[str, tuple[tuple[int, ...], np.dtype]], who: str
) -> None:
    """The file's params/ entries against ``want`` (name -> (shape, dtype)) of ``who`` ("the
    DeepConvNet", "the model given"): the same names, each with its shape and dtype, read from
    the .npy headers alone."""
    path = ar.path
    found = [k[len("params/") :] for k in ar.infos if k.startswith("params/")]
    missing = [k for k in want if k not in found]
    if missing:
        k = missing[0]
        raise ModelFileError(
            f"{path}: missing param {k!r} ({who} expects shape "
            f"{V._shape(want[k][0])}; missing: {missing[:10]})"
        )
    extra = [k for k in found if k not in want]
    if extra:
        raise ModelFileError(f"{path}: unexpected params {extra[:10]} for {who}")
    for key, (shape, dtype) in want.items():
        got = ar.member(f"params/{key}")
        if got.shape != shape:
            raise ModelFileError(
                f"{path}: param {key!r} has shape {V._shape(got.shape)} in the file but "
                f"{who} expects {V._shape(shape)}"
            )
        if got.dtype != dtype:
            raise ModelFileError(
                f"{path}: param {key!r} has dtype {got.dtype} in the file but {who} "
                f"expects {dtype} (shape {V._shape(shape)})"
            )


def _check_architecture(path: str, plan: Model, model: Model) -> None:
    """The file's architecture (``plan``) against a model given to receive its params: the
    same class and the same layers, so no params land in a network they were not made for."""
    if type(plan) is not type(model) and not (
        type(plan) is Sequential and isinstance(model, Sequential)
    ):
        raise ModelFileError(
            f"{path}: the file holds a {plan.name}, the model given is a {model.name}"
        )
    if type(plan) is Sequential:
        mine, theirs = dict(model.config), dict(plan.config)
    else:  # a classic model: its constructor arguments are the words users know
        mine, theirs = dict(model.arguments()), dict(plan.arguments())
    for cfg in (mine, theirs):
        for key in ("name", "dtype", "seed", "backend"):  # not architecture: dtypes are
            cfg.pop(key, None)  # compared param by param
    where = _first_difference(theirs, mine)
    if where is not None:
        at, in_file, given = where
        raise ModelFileError(
            f"{path}: the file holds a different {plan.name} from the model given: "
            f"{at} is {_brief(in_file)} in the file but {_brief(given)} in the model given"
        )


def _first_difference(a: Any, b: Any, at: str = "") -> tuple[str, Any, Any] | None:
    """The first place where two JSON-like values differ, as (path, a's part, b's part),
    or None when they are equal; the path reads like ``layers[3].units``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{at}.{key}" if at else str(key)
            if key not in a or key not in b:
                return sub, a.get(key, "(absent)"), b.get(key, "(absent)")
            found = _first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{at or 'the value'} (length)", len(a), len(b)
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{at}[{i}]")
            if found is not None:
                return found
        return None
    return None if a == b else (at or "the value", a, b)


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _check_state(ar: _mf.Archive, model: Model) -> dict[str, int]:
    """The file's state/ entries against ``model``'s: every batch-norm statistic present
    with its shape and dtype, dropout positions (checkpoints) valid; returns the positions."""
    path = ar.path
    dropout = model._dropout_layers()
    shapes = model._state_shapes
    calls: dict[str, int] = {}
    for key in (k for k in ar.infos if k.startswith("state/")):
        name, m = key[len("state/") :], ar.member(key)
        if name in shapes:
            if m.shape != shapes[name] or m.dtype != model.dtype:
                raise ModelFileError(
                    f"{path}: state {name!r} is {V._shape(m.shape)} {m.dtype} in the file but "
                    f"the {model.name} expects {V._shape(shapes[name])} {model.dtype}"
                )
            continue
        if name not in dropout or m.shape != () or m.dtype.kind not in "iu":
            raise ModelFileError(f"{path}: invalid model state entry {key!r}")
        n = int(ar.read(key)[()])
        if n < 0:
            raise ModelFileError(f"{path}: invalid model state entry {key!r} ({n} < 0)")
        calls[name] = n
    missing = [k for k in shapes if f"state/{k}" not in ar.infos]
    if missing:
        raise ModelFileError(f"{path}: missing state {missing[:4]} (batch-norm statistics)")
    return calls


def _read_state(ar: _mf.Archive, model: Model) -> dict[str, np.ndarray]:
    return {key: _read_param(ar, key, kind="state") for key in model._state_shapes}


def _read_param(
    ar: _mf.Archive, key: str, out: np.ndarray | None = None, kind: str = "params"
) -> np.ndarray:
    arr = ar.read(f"{kind}/{key}", out)
    if not np.isfinite(arr).all():
        raise ModelFileError(
            f"{ar.path}: {kind[:-1] if kind == 'params' else kind} {key!r} holds NaN or "
            "infinite values (saved from a diverged run?); such a model cannot predict anything"
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
        cls, kwargs, names = _read_header(ar)
        plan = _plan(ar.path, cls, kwargs, backend)
        _set_classes(ar.path, plan, names)
        _check_params(ar, plan)
        _check_state(ar, plan)
        ar.check_inflation([*_param_members(plan), *_state_members(plan)])
        model = _from_file(ar.path, cls, kwargs, backend, "zeros")
        model.classes = names
        for key, param in model.params.items():  # straight into the new model: no copies
            _read_param(ar, key, out=param)
        for key, arr in model.state_arrays().items():
            _read_param(ar, key, out=arr, kind="state")
    return model


def _param_members(model: Model) -> list[str]:
    return [f"params/{k}" for k in model._param_shapes]


def _state_members(model: Model) -> list[str]:
    return [f"state/{k}" for k in model._state_shapes]


def load_params(path: PathLike, model: Model) -> None:
    """Model.load_params: the file's params and statistics into ``model``, all checked first."""
    with _open(path) as ar:
        cls, kwargs, _ = _read_header(ar)  # params only: the model keeps its class names
        _check_architecture(ar.path, _plan(ar.path, cls, kwargs, model.backend), model)
        _check_params(ar, model)
        _check_state(ar, model)
        ar.check_inflation([*_param_members(model), *_state_members(model)])
        found = _read_params(ar, model)
        state = _read_state(ar, model)
    _assign(model, found, state)


def _assign(
    model: Model, params: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]
) -> None:
    for key, want in model.params.items():
        want[...] = params[key]
    for key, want in model.state_arrays().items():
        want[...] = state[key]


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
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: model must be a fastcnn model, got {type(model).__name__}")
    entries = _model_entries(model)
    for name, layer in model._dropout_layers().items():
        entries[f"state/{name}"] = np.array(layer.calls, dtype=np.int64)
    _add_checkpoint_entries(entries, optimizer, meta, where)
    _mf.write_npz(os.fspath(path), entries)


def _add_checkpoint_entries(
    entries: dict[str, np.ndarray],
    optimizer: _optim.Optimizer | None,
    meta: Mapping[str, Any] | None,
    where: str,
) -> None:
    """The optimizer state (optim/...) and the meta (__fastcnn_meta__, meta/...) members."""
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
        cls, kwargs, names = _read_header(ar)
        file_plan = _plan(path, cls, kwargs, backend if model is None else model.backend)
        if model is not None:
            _check_architecture(path, file_plan, model)
        plan = model if model is not None else file_plan
        _set_classes(path, file_plan, names)
        _check_params(ar, plan)
        calls = _check_state(ar, plan)
        optim_keys = [k for k in ar.infos if k.startswith("optim/")]
        if optimizer is not None and not optim_keys:
            raise ModelFileError(f"{path}: the file holds no optimizer state")
        ar.check_inflation(ar.infos)  # everything below is read
        params = _read_params(ar, plan)
        stats = _read_state(ar, plan)
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
    _assign(model, params, stats)
    if names is not None:
        model.classes = names
    dropout = model._dropout_layers()
    for name, n in calls.items():
        dropout[name].calls = n
    return Checkpoint(model, optimizer, meta)
