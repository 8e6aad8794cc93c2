"""fastcnn: fast CPU building blocks for convolutional neural networks.

The compiled kernels (``fastcnn._core``) sit behind ``fastcnn.functional`` and
``fastcnn.layers``; ``fastcnn.reference`` is the pure-numpy oracle with the same API.
Submodules and the compiled core load on first use, so ``import fastcnn.reference`` never
touches compiled code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "reference": ("fastcnn.reference", None),
    "functional": ("fastcnn.functional", None),
    "layers": ("fastcnn.layers", None),
    "models": ("fastcnn.models", None),
    "optim": ("fastcnn.optim", None),
    "datasets": ("fastcnn.datasets", None),
    "gemm": ("fastcnn._gemm", "gemm"),
    "get_num_threads": ("fastcnn._config", "get_num_threads"),
    "set_num_threads": ("fastcnn._config", "set_num_threads"),
    "threads": ("fastcnn._config", "threads"),
    "cpu_features": ("fastcnn._config", "cpu_features"),
    "cpu_info": ("fastcnn._config", "cpu_info"),
    "gemm_configs": ("fastcnn._config", "gemm_configs"),
    "available_isas": ("fastcnn._config", "available_isas"),
    "get_isa": ("fastcnn._config", "get_isa"),
    "set_isa": ("fastcnn._config", "set_isa"),
    "get_winograd": ("fastcnn._config", "get_winograd"),
    "set_winograd": ("fastcnn._config", "set_winograd"),
    "winograd": ("fastcnn._config", "winograd"),
    "conv_algorithms": ("fastcnn._config", "conv_algorithms"),
    "get_conv_algorithm": ("fastcnn._config", "get_conv_algorithm"),
    "set_conv_algorithm": ("fastcnn._config", "set_conv_algorithm"),
    "conv_algorithm": ("fastcnn._config", "conv_algorithm"),
    "last_conv_algorithms": ("fastcnn._config", "last_conv_algorithms"),
    "config": ("fastcnn._config", "config"),
    "show_config": ("fastcnn._config", "show_config"),
    "keep_freed_memory": ("fastcnn._malloc", "keep_freed_memory"),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from fastcnn import datasets, functional, layers, models, optim, reference  # noqa: F401
    from fastcnn._config import (  # noqa: F401
        available_isas,
        config,
        conv_algorithm,
        conv_algorithms,
        cpu_features,
        cpu_info,
        gemm_configs,
        get_conv_algorithm,
        get_isa,
        get_num_threads,
        get_winograd,
        last_conv_algorithms,
        set_conv_algorithm,
        set_isa,
        set_num_threads,
        set_winograd,
        show_config,
        threads,
        winograd,
    )
    from fastcnn._gemm import gemm  # noqa: F401
    from fastcnn._malloc import keep_freed_memory  # noqa: F401


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fastcnn' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
