"""fastcnn.models: networks on either backend and their files.

- ``Sequential`` (_sequential.py): a network from a list of layers, or from a config dict
  (``Sequential.from_config``); its layer types and options are _specs.py's one table, and
  _builder.py / _blocks.py build and run them.
- ``SimpleConvNet``, ``DeepConvNet`` (_classic.py): the book's networks, as Sequential ones.
- ``save`` / ``load`` / checkpoints (_file.py) in a checked npz container (_archive.py);
  ``load_classic_params`` reads the book's params.pkl (_classic_params.py); a network fastcnn
  did not build is saved by its params alone (_params_file.py; reading one where a model is
  needed is a ParamsOnlyError).
- ``export_onnx`` / ``from_onnx`` (_onnx_export.py, _onnx_import.py): ONNX graphs out and in,
  with the optional onnx package.

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
    "export_onnx",
    "from_onnx",
    "OnnxError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time see __getattr__
    from fastcnn.models._classic_params import ClassicParamsError, load_classic_params  # noqa: F401
    from fastcnn.models._onnx import OnnxError  # noqa: F401
    from fastcnn.models._onnx_export import export_onnx  # noqa: F401
    from fastcnn.models._onnx_import import from_onnx  # noqa: F401

# Imported on first use: the classic book's params.pkl reader (so the pickle machinery loads
# only for those who read one) and ONNX (so `import fastcnn` never needs the onnx package).
_LAZY = {
    "load_classic_params": "_classic_params",
    "ClassicParamsError": "_classic_params",
    "export_onnx": "_onnx_export",
    "from_onnx": "_onnx_import",
    "OnnxError": "_onnx",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"fastcnn.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
