"""fastcnn.models: networks on either backend and their files.

- ``Sequential`` (_sequential.py): a network from a list of layers, or from a config dict
  (``Sequential.from_config``); its layer types and options are _specs.py's one table, and
  _builder.py / _blocks.py build and run them.
- ``SimpleConvNet``, ``DeepConvNet`` (_classic.py): the book's networks, as Sequential ones.
- ``save`` / ``load`` / checkpoints (_file.py) in a checked npz container (_archive.py);
  ``load_classic_params`` reads the book's params.pkl (_classic_params.py); a network fastcnn
  did not build is saved by its params alone (_params_file.py; reading one where a model is
  needed is a ParamsOnlyError).

Training loops, data loading and the CLI live elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastcnn.models._archive import ModelFileError
from fastcnn.models._classic import MODELS, DeepConvNet, SimpleConvNet
from fastcnn.models._file import (
    FORMAT_VERSION,
    Checkpoint,
    ParamsOnlyError,
    load,
    load_checkpoint,
    save_checkpoint,
)
from fastcnn.models._sequential import Model, Sequential, read_config
from fastcnn.models._specs import LAYER_TYPES, ConfigError

__all__ = [
    "Model",
    "Sequential",
    "SimpleConvNet",
    "DeepConvNet",
    "MODELS",
    "LAYER_TYPES",
    "ConfigError",
    "read_config",
    "ModelFileError",
    "ParamsOnlyError",
    "FORMAT_VERSION",
    "load",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_classic_params",
    "ClassicParamsError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time see __getattr__
    from fastcnn.models._classic_params import ClassicParamsError, load_classic_params  # noqa: F401

# The classic book's params.pkl reader is imported on first use, so the pickle machinery
# loads only for those who read one.
_CLASSIC = ("load_classic_params", "ClassicParamsError")


def __getattr__(name: str) -> Any:
    if name in _CLASSIC:
        from fastcnn.models import _classic_params

        value = getattr(_classic_params, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
