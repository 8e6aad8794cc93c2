"""Loads the compiled core, ``fastcnn._core``, with fastcnn's OpenMP runtime settings.

GNU OpenMP reads its settings once, when the runtime is loaded with the core. Unless the user
set OMP_WAIT_POLICY or GOMP_SPINCOUNT, fastcnn asks for a short spin (GOMP_SPINCOUNT=2000)
before idle threads sleep: libgomp's default spins ~100x longer, and on a shared machine those
spinning threads take CPU time from the thread a parallel region is waiting for. Measured on
the 2-core development VM (DeepConvNet training step, 2 threads): with another process busy,
125 ms/step with the default vs 108 ms with the short spin (92 ms with OMP_WAIT_POLICY=passive);
idle, 49 vs 50 ms (55 ms passive). The variable is set only while the core loads, so OpenMP
libraries loaded later (e.g. torch's) keep their own defaults.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

_SETTINGS = {"GOMP_SPINCOUNT": "2000"}
_USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _load() -> ModuleType:
    name = "fastcnn._core"
    if name in sys.modules:  # already loaded: the runtime's settings were fixed then
        return sys.modules[name]
    added = []
    if not any(key in os.environ for key in _USER_KEYS):
        for key, value in _SETTINGS.items():
            os.environ[key] = value
            added.append(key)
    try:
        return importlib.import_module(name)
    finally:
        for key in added:
            del os.environ[key]


core = _load()
