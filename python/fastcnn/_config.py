"""Runtime configuration of the compiled core: threads, CPU features and caches, the kernel ISA
and its GEMM blocking, and the convolution algorithm.

Thread count, ISA, the Winograd switch and the pinned convolution algorithm are process-wide
settings of ``fastcnn._core``; this module only validates arguments and presents them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from fastcnn import __version__
from fastcnn._env import _core


def get_num_threads() -> int:
    """Threads the kernels use: the last ``set_num_threads``, else ``OMP_NUM_THREADS``, else
    the number of cores."""
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the threads the kernels use (process-wide). ``n`` must be an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


@contextlib.contextmanager
def _scoped(
    get: Callable[[], Any], setter: Callable[[Any], None], restore: Callable[[Any], None], new: Any
) -> Iterator[None]:
    """Runs the body with ``setter(new)`` (which checks ``new``) in force, then puts back the
    value ``get`` read on entry, with ``restore`` (the core's setter: that value is valid)."""
    old = get()
    setter(new)
    try:
        yield
    finally:
        restore(old)


def threads(n: int) -> contextlib.AbstractContextManager[None]:
    """Context manager running its body with ``n`` kernel threads, then restoring the old count."""
    return _scoped(get_num_threads, set_num_threads, _core.set_num_threads, n)


def get_min_thread_work() -> float:
    """Estimated work (ns) every thread of a parallel region must get before the kernels
    wake a second thread (common/tuning.h's kMinNsPerThread unless set): smaller calls run on
    the calling thread, whatever ``get_num_threads`` says."""
    return float(_core.get_min_thread_work())


def set_min_thread_work(ns: float) -> None:
    """Set that threshold (process-wide); 0 lets every region with two or more work items use
    all the threads (the tests use it to exercise the multithreaded paths on small shapes)."""
    if isinstance(ns, bool) or not isinstance(ns, (int, float)):
        raise TypeError(f"set_min_thread_work: ns must be a number, got {type(ns).__name__}")
    if not ns >= 0:
        raise ValueError(f"set_min_thread_work: ns must be >= 0, got {ns}")
    _core.set_min_thread_work(float(ns))


def min_thread_work(ns: float) -> contextlib.AbstractContextManager[None]:
    """Context manager running its body with that threshold set to ``ns``, then restoring it."""
    return _scoped(get_min_thread_work, set_min_thread_work, _core.set_min_thread_work, ns)


def cpu_features() -> dict[str, bool]:
    """The CPU's SIMD features relevant to fastcnn's kernels."""
    return dict(_core.cpu_features())


def cpu_info() -> dict[str, Any]:
    """The CPU as the kernels see it, read once at import: ``vendor`` (CPUID's, e.g.
    ``"AuthenticAMD"``; ``""`` off x86), ``family`` and ``model`` (with the extended fields
    folded in), ``microarch`` (the class whose GEMM configuration is used: ``"zen5"``,
    ``"zen4"``, ``"zen3"``, ``"spr"``, ``"skx"``, ``"haswell"`` or ``"generic"``) and
    ``caches``: ``"l1d"``, ``"l2"``, ``"l3"`` as dicts of ``size`` (bytes), ``line`` (bytes),
    ``ways`` and ``sharing`` (logical processors sharing it), plus ``"source"``: where the
    sizes came from (``"cpuid"``, ``"sysfs"``, ``"default"``, or e.g. ``"cpuid+default"`` when
    some levels were assumed)."""
    return dict(_core.cpu_info())


def gemm_configs() -> dict[str, list[dict[str, Any]]]:
    """Per dtype (``"float32"``, ``"float64"``), the GEMM configurations of the active ISA on
    this CPU: the main one first, then the tiles chosen for short or narrow products. Each is a
    dict of ``kernel`` (the micro-kernel's name), ``mr`` x ``nr`` (its tile), the cache blocking
    ``mc``, ``kc``, ``nc``, and ``blocking``: ``"measured"`` (tuned on this microarchitecture),
    ``"modelled"`` (derived from the cache sizes) or ``"FASTCNN_GEMM_BLOCKING"`` (set by hand as
    ``MC,KC,NC`` in that variable, for tuning)."""
    return {str(k): [dict(c) for c in v] for k, v in _core.gemm_configs().items()}


def available_isas() -> list[str]:
    """Kernel ISAs this build has and this CPU runs, narrowest first."""
    return list(_core.available_isas())


def get_isa() -> str:
    """The ISA whose micro-kernels are in use ('generic', 'avx2' or 'avx512')."""
    return str(_core.get_isa())


def set_isa(name: str) -> None:
    """Select the micro-kernels' ISA (process-wide); FASTCNN_ISA sets it at import.

    Raises ValueError for an unknown ISA or one this CPU or build cannot run.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    _core.set_isa(name)


def get_winograd() -> bool:
    """Whether 3x3, stride-1 convolutions may use the Winograd F(2x2, 3x3) algorithm (the
    default) rather than a direct im2col-GEMM form. By default it runs where it is the faster:
    with the AVX2 or AVX-512 kernels, for the forward with at least 8 input and 16 output
    channels, backward-data with at least 8 output and 16 input channels (and padding under 3,
    finite weights), the weight gradient with at least 8 of each and 256 channel pairs, and
    enough output tiles (``get_winograd_min_tiles``); pinned (``conv_algorithm``), on any 3x3
    stride-1 call."""
    return bool(_core.get_winograd())


def set_winograd(enabled: bool) -> None:
    """Allow or forbid the Winograd F(2x2, 3x3) convolution (process-wide); FASTCNN_WINOGRAD=0
    (or false, off, no; 1, true, on, yes allow it; any other value is an error, see
    fastcnn._env.VARIABLES) forbids it at import.

    Winograd needs 2.25x fewer multiplies but rounds differently from the direct sum (well
    within float32's tolerance against the reference); turn it off to get the direct form's
    rounding. Off, it does not run even when pinned with ``set_conv_algorithm``.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_winograd: enabled must be a bool, got {type(enabled).__name__}")
    _core.set_winograd(enabled)


def winograd(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Context manager running its body with Winograd allowed or not, then restoring it."""
    return _scoped(get_winograd, set_winograd, _core.set_winograd, enabled)


def get_winograd_min_tiles() -> tuple[int, int]:
    """(forward, weight gradient): the 2x2 output tiles of a whole call, N*ceil(P/2)*ceil(Q/2),
    below which a convolution takes the direct form even where Winograd is allowed (its
    weight transforms cost more than it saves on a few images)."""
    forward, weights = _core.get_winograd_min_tiles()
    return int(forward), int(weights)


def set_winograd_min_tiles(forward: int, weights: int) -> None:
    """Set those minimums (process-wide; ints >= 0). 0, 0: Winograd wherever it is allowed
    (the tests use it to run Winograd on small shapes)."""
    for name, v in (("forward", forward), ("weights", weights)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(
                f"set_winograd_min_tiles: {name} must be an int, got {type(v).__name__}"
            )
        if v < 0:
            raise ValueError(f"set_winograd_min_tiles: {name} must be >= 0, got {v}")
    _core.set_winograd_min_tiles(forward, weights)


def winograd_min_tiles(forward: int, weights: int) -> contextlib.AbstractContextManager[None]:
    """Context manager running its body with those minimums, then restoring them."""
    return _scoped(
        get_winograd_min_tiles,
        lambda t: set_winograd_min_tiles(*t),
        lambda t: _core.set_winograd_min_tiles(*t),
        (forward, weights),
    )


def conv_algorithms() -> dict[str, list[str]]:
    """Each convolution pass's algorithms (``"forward"``, ``"backward_data"``,
    ``"backward_weights"``), in the order the default choice tries them: the first that
    supports a call and is preferred for it runs (preferred: measured faster than those after
    it), and the last always applies. Backward-data runs the forward's algorithms on the
    flipped problem (unit strides), else ``col2im_gemm``."""
    return {str(k): [str(n) for n in v] for k, v in _core.conv_algorithms().items()}


def get_conv_algorithm() -> str | None:
    """The pinned convolution algorithm (``set_conv_algorithm``), or None."""
    name = _core.get_conv_algorithm()
    return None if name is None else str(name)


def set_conv_algorithm(name: str | None) -> None:
    """Pin a convolution algorithm by name (process-wide; None unpins); FASTCNN_CONV_ALGORITHM
    pins one at import. Every pass whose list (``conv_algorithms``) has it runs it wherever it
    can compute the call, preferred there or not; where it cannot (a stride for
    ``direct_columns``, a 5x5 window for Winograd, Winograd switched off), or where Winograd
    declines on non-finite data, the default order decides, and ``last_conv_algorithms``
    shows what ran. Raises ValueError for an unknown name, naming the known ones."""
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"set_conv_algorithm: name must be a str or None, got {type(name).__name__}"
        )
    _core.set_conv_algorithm(name)


def conv_algorithm(name: str | None) -> contextlib.AbstractContextManager[None]:
    """Context manager running its body with ``name`` pinned (None: none), then restoring."""
    return _scoped(get_conv_algorithm, set_conv_algorithm, _core.set_conv_algorithm, name)


def last_conv_algorithms() -> dict[str, str | None]:
    """The algorithm each convolution pass last ran on the calling thread (None before its
    first call; a call on an empty batch runs none and changes nothing)."""
    return {
        str(k): (None if v is None else str(v)) for k, v in _core.last_conv_algorithms().items()
    }


def config() -> dict[str, Any]:
    """Everything ``show_config`` prints, as a dict."""
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "num_threads": get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "cpu_features": cpu_features(),
        "cpu": cpu_info(),
        "available_isas": available_isas(),
        "isa": get_isa(),
        "winograd": get_winograd(),
        "conv_algorithms": conv_algorithms(),
        "conv_algorithm": get_conv_algorithm(),
        "kernels": dict(_core.kernel_info()),
        "gemm": gemm_configs(),
        "build": dict(_core.build_info),
    }


def _bytes(n: int) -> str:
    """1048576 -> '1 MiB', 49152 -> '48 KiB'."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def _cpu_lines(cpu: dict[str, Any]) -> list[str]:
    """The cpu and caches lines of show_config."""
    vendor = cpu["vendor"] or "unknown vendor"
    caches = cpu["caches"]
    parts = []
    for name, label in (("l1d", "L1d"), ("l2", "L2"), ("l3", "L3")):
        c = caches[name]
        shared = f", shared by {c['sharing']}" if c["sharing"] > 1 else ""
        parts.append(f"{label} {_bytes(c['size'])} {c['ways']}-way{shared}")
    return [
        f"  cpu:             {vendor} family {cpu['family']:#x} model {cpu['model']:#x} "
        f"({cpu['microarch']})",
        f"  caches:          {', '.join(parts)} (from {caches['source']})",
    ]


def _gemm_lines(gemm: dict[str, list[dict[str, Any]]], microarch: str) -> list[str]:
    """One show_config line per GEMM configuration (the main one of each dtype first): tile,
    blocking, where the blocking came from, the micro-kernel."""
    source = {
        "measured": f"measured on {microarch}",
        "modelled": "modelled from the caches",
        "FASTCNN_GEMM_BLOCKING": "set by FASTCNN_GEMM_BLOCKING",
    }
    return [
        f"  {'gemm ' + dtype + ':':<17}{c['mr']}x{c['nr']} MC {c['mc']} KC {c['kc']} "
        f"NC {c['nc']} ({source[c['blocking']]}) {c['kernel']}"
        for dtype, cfgs in gemm.items()
        for c in cfgs
    ]


def show_config(file: TextIO | None = None) -> None:
    """Print the version, threads, CPU (identity, microarchitecture, caches) and features,
    kernel ISA, GEMM configurations (tile and blocking per dtype), convolution algorithms (each
    pass's list and the pinned one) and build of fastcnn."""
    out = file if file is not None else sys.stdout
    cfg = config()
    features = " ".join(name for name, have in cfg["cpu_features"].items() if have) or "none"
    lines = [
        f"fastcnn {cfg['version']} (Python {cfg['python']}, {cfg['platform']})",
        f"  threads:         {cfg['num_threads']} "
        f"(OMP_NUM_THREADS={cfg['OMP_NUM_THREADS'] or 'unset'}, {cfg['cpu_count']} CPUs)",
        *_cpu_lines(cfg["cpu"]),
        f"  cpu features:    {features}",
        f"  kernel isa:      {cfg['isa']} (available: {', '.join(cfg['available_isas'])})",
        *_gemm_lines(cfg["gemm"], cfg["cpu"]["microarch"]),
    ]
    lines.append(f"  winograd conv:   {'on' if cfg['winograd'] else 'off'} (3x3, stride 1)")
    lines += [
        f"  {'conv algorithms:' if i == 0 else '':<17}{conv_pass + ':':<18}{' > '.join(names)}"
        for i, (conv_pass, names) in enumerate(cfg["conv_algorithms"].items())
    ]
    lines.append(f"  conv pinned:     {cfg['conv_algorithm'] or 'none'}")
    build = cfg["build"]
    lines.append(f"  build:           {build['compiler']}")
    print("\n".join(lines), file=out)
