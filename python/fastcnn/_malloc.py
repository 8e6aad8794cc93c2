"""keep_freed_memory: ask glibc's malloc to keep freed memory for the next allocation instead of
giving it back to the kernel at once.

A network's forward and backward allocate and free arrays of a few MiB, layer after layer. By
default glibc returns a large freed block to the kernel (munmap, or trimming the top of its
heap) as soon as it is free, and the next array of that size is faulted in again page by page:
on the KVM guests these figures come from, about 1,400-1,900 page faults per DeepConvNet step
or batch-100 prediction, which cost more time than the pooling. Keeping up to ``limit_mib`` of
freed memory at the top of the heap (M_TRIM_THRESHOLD) and serving blocks up to 32 MiB from
the heap rather than from fresh mappings (M_MMAP_THRESHOLD) removes them.

This is a setting of the whole process, so the library never makes it by itself: the
``fastcnn`` command (an application) does at start, and a program of its own may call
``fastcnn.keep_freed_memory()``. The cost is memory that stays with the process after a large
call, up to ``limit_mib`` beyond what it uses. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an M_MMAP_THRESHOLD above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
_MMAP_THRESHOLD_MAX = 32 << 20

_applied: int | None = None  # the limit set, in MiB


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no such function)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(limit_mib: int = 256) -> bool:
    """Keep up to ``limit_mib`` MiB of freed memory in the process for reuse (see the module's
    docstring); True when glibc took the settings, False where there is no glibc. Calling it
    again with another limit changes the limit."""
    global _applied
    if isinstance(limit_mib, bool) or not isinstance(limit_mib, int):
        raise TypeError(f"keep_freed_memory: limit_mib must be an int, got {limit_mib!r}")
    if not 1 <= limit_mib <= 2047:  # mallopt takes an int of bytes
        raise ValueError(f"keep_freed_memory: limit_mib must be in [1, 2047], got {limit_mib}")
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_TRIM_THRESHOLD, limit_mib << 20) == 1
    ok = mallopt(_M_MMAP_THRESHOLD, _mmap_threshold(limit_mib)) == 1 and ok
    if ok:
        _applied = limit_mib
    return ok


def kept_limit_mib() -> int | None:
    """The limit keep_freed_memory set in this process (None: not called, or not glibc)."""
    return _applied


def _mmap_threshold(limit_mib: int) -> int:
    return min(_MMAP_THRESHOLD_MAX, (limit_mib << 20) // 2)


def child_environment() -> dict[str, str]:
    """The environment variables by which glibc gives a child process this process's setting
    (it reads them at start-up), or {} when keep_freed_memory has not been applied here: what
    the bench's child processes add so that every measurement runs under the same policy."""
    if _applied is None:
        return {}
    return {
        "MALLOC_TRIM_THRESHOLD_": str(_applied << 20),
        "MALLOC_MMAP_THRESHOLD_": str(_mmap_threshold(_applied)),
    }
