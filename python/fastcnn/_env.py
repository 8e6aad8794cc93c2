"""The FASTCNN_* environment variables: one table of their names and accepted values.

The compiled core reads FASTCNN_ISA, FASTCNN_WINOGRAD and FASTCNN_GEMM_BLOCKING when it
loads, and its Winograd switch takes any value but a few "off" words as "on"; so every module
using the core imports it from here (``from fastcnn._env import _core``), which checks the
variables first: a ValueError naming the variable and its accepted values.
FASTCNN_CONV_ALGORITHM is applied here, once, when the core is first loaded (the core checks
the name against its algorithm lists).
Importing this module itself loads no compiled code (the CLI reads FASTCNN_DEBUG through it).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ below returns, as the type checker should see it
    from fastcnn import _core as _core

_ON = ("1", "true", "on", "yes")
_OFF = ("0", "false", "off", "no")

# Name -> the accepted values (compared ignoring case), or None for any value here (a path, or
# an ISA name: the core checks those itself, against the ISAs it was built with), and what the
# variable does. An empty value counts as unset.
VARIABLES: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "FASTCNN_ISA": (None, "the kernels' ISA at import (a name set_isa accepts)"),
    "FASTCNN_WINOGRAD": (_ON + _OFF, "whether 3x3 convolutions may use Winograd (default on)"),
    "FASTCNN_GEMM_BLOCKING": (
        None,
        "the GEMM cache blocking: measured numbers where the CPU has them (default), modelled,"
        " or MC,KC,NC set by hand for tuning (the core checks the value)",
    ),
    "FASTCNN_CONV_ALGORITHM": (
        None,
        "a convolution algorithm pinned at import (a name set_conv_algorithm accepts)",
    ),
    "FASTCNN_DEBUG": (_ON + _OFF, "the CLI shows tracebacks (default off)"),
    "FASTCNN_DATA_DIR": (None, "a directory with the four MNIST files"),
    "FASTCNN_CACHE_DIR": (None, "the cache root (MNIST downloads)"),
    "FASTCNN_DIST_TIMEOUT": (
        None,
        "seconds a data-parallel rank waits for the others before it stops the job (default"
        " 30; fastcnn.distributed checks the value)",
    ),
}


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Raise ValueError for a FASTCNN_* variable of the table set to a value it does not accept."""
    env = os.environ if environ is None else environ
    for name, (accepted, _) in VARIABLES.items():
        value = env.get(name, "")
        if value and accepted is not None and value.lower() not in accepted:
            raise ValueError(
                f"environment variable {name}={value!r} is not one of {', '.join(accepted)}"
            )


def flag(name: str, default: bool) -> bool:
    """The on/off variable ``name`` as a bool (``default`` when unset or empty)."""
    check_environment()
    value = os.environ.get(name, "").lower()
    return default if not value else value in _ON


_pinned_from_environment = False


def _pin_from_environment(core: Any) -> None:
    """Pins FASTCNN_CONV_ALGORITHM's algorithm the first time the core is handed out (later,
    ``set_conv_algorithm`` owns the setting)."""
    global _pinned_from_environment
    if _pinned_from_environment:
        return
    value = os.environ.get("FASTCNN_CONV_ALGORITHM", "")
    if value:
        try:
            core.set_conv_algorithm(value)
        except ValueError as err:
            raise ValueError(f"environment variable FASTCNN_CONV_ALGORITHM: {err}") from None
    _pinned_from_environment = True


def __getattr__(name: str) -> Any:
    """``_core``: the compiled core, loaded once the variables it reads are checked."""
    if name == "_core":
        check_environment()
        from fastcnn import _core

        _pin_from_environment(_core)
        return _core
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VARIABLES", "check_environment", "flag"]
