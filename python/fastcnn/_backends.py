"""Backend selection by name: "fast" (the compiled core) or "reference" (pure numpy).

Models and optimizers take ``backend="fast" | "reference"`` and resolve it here, lazily, so a
reference-only user never imports the compiled core. Nothing else lives here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["BACKENDS", "check_backend", "functional_module", "layers_module"]

# backend name -> (functional module, layers module)
_MODULES = {
    "fast": ("fastcnn.functional", "fastcnn.layers"),
    "reference": ("fastcnn.reference.functional", "fastcnn.reference.layers"),
}
BACKENDS = tuple(_MODULES)


def check_backend(backend: Any, where: str) -> str:
    """Return ``backend`` if it names a backend, else ValueError listing the choices."""
    if not isinstance(backend, str) or backend not in _MODULES:
        choices = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"{where}: backend must be one of {choices}, got {backend!r}")
    return backend


def functional_module(backend: str, where: str = "") -> ModuleType:
    """fastcnn.functional or fastcnn.reference.functional (same names and signatures)."""
    return importlib.import_module(_MODULES[check_backend(backend, where)][0])


def layers_module(backend: str, where: str = "") -> ModuleType:
    """fastcnn.layers or fastcnn.reference.layers (same classes)."""
    return importlib.import_module(_MODULES[check_backend(backend, where)][1])
