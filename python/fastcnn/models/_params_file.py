"""Params-only files: what fastcnn writes for a network it did not build (an object with the
classic ``params`` dict, trained by fastcnn.train): its params, and in a checkpoint the
optimizer state and the caller's meta, in the checked npz container of model files. There is
no architecture, so such a file can only be read back into the very kind of object that
wrote it (its params by name, shape and dtype); ``load``, ``load_checkpoint``, ``fastcnn
evaluate`` and ``fastcnn predict`` refuse it with ParamsOnlyError, saying so.

Members: the format version, ``__fastcnn_model__`` = {"class": "params-only", "of": the
object's name, "fastcnn": version}, ``params/<key>``, ``optim/<key>``, ``__fastcnn_meta__``
and ``meta/<key>`` as in a checkpoint (see _file.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

from fastcnn import optim as _optim
from fastcnn.models import _archive as _mf
from fastcnn.models import _file
from fastcnn.models._archive import ModelFileError

PathLike = Union[str, "os.PathLike[str]"]

PARAMS_ONLY = _file.PARAMS_ONLY


def save_params_checkpoint(
    path: PathLike,
    name: str,
    params: Mapping[str, np.ndarray],
    optimizer: _optim.Optimizer | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write ``params`` (and the optimizer state and meta, as save_checkpoint
    does) as a params-only file of the network called ``name``."""
    from fastcnn import __version__

    header = {"class": PARAMS_ONLY, "of": str(name)[:100], "fastcnn": __version__}
    entries: dict[str, np.ndarray] = {
        _file._FORMAT_KEY: np.array(_file.FORMAT_VERSION, dtype=np.int64),
        _file._MODEL_KEY: np.array(json.dumps(header)),
    }
    for key, arr in params.items():
        entries[f"params/{key}"] = arr
    _file._add_checkpoint_entries(entries, optimizer, meta, "save_params_checkpoint")
    _mf.write_npz(os.fspath(path), entries)


def load_params_checkpoint(
    path: PathLike, params: Mapping[str, np.ndarray], *, backend: str = "fast"
) -> tuple[_optim.Optimizer | None, dict[str, Any]]:
    """Copy a params-only file's params into ``params`` in place (every name, shape and dtype
    checked first: on any error nothing is changed) and return (the optimizer its state
    rebuilds, or None; its meta)."""
    with _mf.Archive(os.fspath(path)) as ar:
        path = ar.path
        header = _file._json_entry(ar, _file._MODEL_KEY, "the architecture", "architecture JSON")
        if not isinstance(header, dict) or header.get("class") != PARAMS_ONLY:
            raise ModelFileError(
                f"{path}: not a params-only file (it holds a fastcnn model: load it with "
                "fastcnn.models.load_checkpoint)"
            )
        expected = {key: (np.shape(a), np.asarray(a).dtype) for key, a in params.items()}
        _file.check_param_entries(ar, expected, "the model given")
        ar.check_inflation(ar.infos)
        values = {key: _file._read_param(ar, key) for key in params}
        state = _file._read_optimizer_state(ar)
        meta = _file._read_meta(ar)
        optimizer = None
        if state:
            try:
                optimizer = _optim.from_state_dict(state, backend=backend, params=values)
            except (TypeError, ValueError) as exc:
                raise ModelFileError(
                    f"{path}: invalid optimizer state (entries optim/...: {exc})"
                ) from exc
    for key, want in params.items():
        want[...] = values[key]
    return optimizer, meta
