"""Atomic file writes that leave nothing behind: a temporary file in the target's directory,
fsynced and renamed over the target, after which the temporary files of earlier, killed writes
of the same target are removed.

The temporary name carries the writer's host and pid, ".<target>.<host>.<pid>.<random>.tmp",
so a later write can tell a temporary file left by a killed writer (kill -9, power loss) from
one a live writer is still filling: it removes only names of this pattern, for the same target,
written on this host by a pid that no longer exists. A live writer is never disturbed: its pid
exists (a recycled pid only keeps a stale file a little longer, never the reverse), files from
other hosts sharing the directory are left alone since their pids mean nothing here, and a
name is only unlinked, never opened, so a writer holding it open still completes its rename.
The names used before pids were (".<target>.<random>.tmp", whose writer cannot be told) are
removed once untouched for an hour: a live write writes continuously and takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from typing import BinaryIO

_LEGACY_AGE = 3600.0


def _host() -> str:
    # Dots separate the fields of the name; hostnames are letters, digits, '-' and '.'.
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files killed writers of ``path`` left in its directory (see the
    module docstring for why this never touches a live writer's file); returns their names."""
    directory = os.path.dirname(os.path.abspath(path))
    base = re.escape(os.path.basename(path))
    ours = re.compile(rf"\.{base}\.([A-Za-z0-9-]+)\.(\d+)\.[A-Za-z0-9_]+\.tmp")
    legacy = re.compile(rf"\.{base}\.[a-z0-9_]{{8}}\.tmp")
    host = _host()
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        full = os.path.join(directory, name)
        match = ours.fullmatch(name)
        if match:
            stale = match.group(1) == host and not _pid_alive(int(match.group(2)))
        elif legacy.fullmatch(name):
            try:
                stale = os.path.getmtime(full) < time.time() - _LEGACY_AGE
            except OSError:
                continue
        else:
            continue
        if stale:
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                os.unlink(full)
                removed.append(name)
    return removed


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a new temporary file next to ``path``, then rename it over ``path``
    (an existing file keeps its permissions; a new one gets rw-r--r--); on any failure the
    temporary file is removed and ``path`` is untouched. Then removes stale temporaries."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    prefix = f".{os.path.basename(path)}.{_host()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    remove_stale_temporaries(path)
