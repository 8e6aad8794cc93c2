"""What ``fastcnn train`` does when an MPI launcher started it as one of several ranks: the
communicator, the kernel threads of each rank, and a checkpoint only rank 0 may have on disk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastcnn.distributed._comm import Communicator
from fastcnn.distributed._mpi import launched


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def communicator(threads: int | None) -> Communicator | None:
    """The world communicator when a launcher started several ranks (None otherwise), with
    this rank's kernel threads set: ``threads`` when given, else the machine's CPUs shared
    out over the ranks on it (at least one each)."""
    if not launched():
        return None
    import fastcnn

    comm = Communicator()
    if threads is None:
        threads = max(1, cpus() // comm.local_size)
    fastcnn.set_num_threads(threads)
    return comm


def shared_file(comm: Communicator, path: Path) -> Path:
    """``path`` as rank 0 has it: its bytes sent to the other ranks, which read them from a
    private copy (machines of a cluster need not share a disk). Rank 0 gets ``path``."""
    data = path.read_bytes() if comm.is_root else None
    data = comm.broadcast_object(data)
    if comm.is_root:
        return path
    fd, name = tempfile.mkstemp(prefix="fastcnn-rank-", suffix=path.suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)
