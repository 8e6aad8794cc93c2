"""The communicator: rank and size, a deterministic sum over ranks, broadcasts and gathers,
each bounded in time, and how a rank stops the job.

Every collective here is non-blocking MPI completed by polling (``_wait``): the rank can give
up after ``timeout`` seconds, when another rank died or hangs, with one line saying so, and
Python signal handlers run while it waits (the SIGTERM Open MPI's launcher sends the other
ranks when one dies: ``stop_on_terminate``).

The sum (``allreduce_sum``) does not use MPI_Allreduce. The MPI standard only recommends
(advice to implementors, "Reduce") that a reduction give the same result whenever it is
applied to the same arguments in the same order; Open MPI chooses among several algorithms
(ring, recursive doubling, Rabenseifner, tree) by message size, rank count and component,
which add in different orders. So the sum is done here in one fixed order: element by
element, ``((x_0 + x_1) + x_2) + ...`` in rank order, every element once, on the rank that
owns its chunk (an all-to-all sends chunk j of every rank to rank j, which adds them in rank
order; an all-gather then gives everyone every chunk). The result is the same bits on every
rank and in every run with the same number of ranks, and the traffic is what a ring
allreduce moves: 2 (N - 1) / N of the buffer per rank.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastcnn.datasets._loader import shard_rows
from fastcnn.distributed import _mpi

DEFAULT_TIMEOUT = 30.0  # seconds a rank waits for the others in one collective
EXIT_PEER_FAILED = 3  # the exit status of a rank that stops because another one failed
_SMALL = 1 << 16  # bytes: below this a sum all-gathers the whole buffers (one message)


class DistributedError(RuntimeError):
    """The ranks cannot go on together (they disagree, or one of them failed)."""


def default_timeout() -> float:
    """FASTCNN_DIST_TIMEOUT (seconds, > 0), else DEFAULT_TIMEOUT."""
    value = os.environ.get("FASTCNN_DIST_TIMEOUT", "")
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            f"environment variable FASTCNN_DIST_TIMEOUT={value!r} is not a number of seconds > 0"
        )
    return seconds


class Communicator:
    """The ranks of an MPI communicator (default: COMM_WORLD) as fastcnn uses them.

    ``rank``, ``size``; ``local_rank`` and ``local_size``: the rank's place among the ranks on
    its own machine (which share its cores). ``timeout``: seconds any one collective may wait
    for the other ranks before this rank stops the job (default FASTCNN_DIST_TIMEOUT or 30).
    """

    def __init__(self, comm: Any = None, *, timeout: float | None = None) -> None:
        self.MPI = _mpi.mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = int(node.Get_rank()), int(node.Get_size())
        node.Free()
        self.timeout = default_timeout() if timeout is None else float(timeout)
        if not self.timeout > 0:
            raise ValueError(f"Communicator: timeout must be > 0 seconds, got {timeout!r}")
        self.bytes_reduced = 0  # bytes this rank sent and received in sums (for the bench)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Communicator(rank {self.rank} of {self.size}, timeout {self.timeout:g} s)"

    # -- stopping -------------------------------------------------------------------------------

    def who(self) -> str:
        return f"rank {self.rank} of {self.size}"

    def abort(self, message: str, code: int = EXIT_PEER_FAILED) -> None:
        """Print ``message`` as one line on stderr and end every rank of the job (MPI_Abort):
        what a rank does when it cannot go on and the others would otherwise wait for it."""
        line = " ".join(message.split())
        print(f"fastcnn: {self.who()}: {line}", file=sys.stderr, flush=True)
        self.comm.Abort(code)

    def _wait(self, requests: list[Any], what: str) -> None:
        """Complete ``requests``, polling; after ``timeout`` seconds abort the job."""
        deadline = time.monotonic() + self.timeout
        polls = 0
        while not self.MPI.Request.Testall(requests):
            polls += 1
            if polls > 2000:  # a short spin for the fast case, then let the cores work
                time.sleep(0.0002)
                if time.monotonic() > deadline:
                    self.abort(
                        f"stopping: no answer from the other ranks for {self.timeout:g} s in "
                        f"{what} (a rank died or hangs; FASTCNN_DIST_TIMEOUT sets the limit)"
                    )

    # -- collectives ----------------------------------------------------------------------------

    def allreduce_sum(self, x: np.ndarray, what: str = "a gradient sum") -> np.ndarray:
        """The sum over ranks of the 1-D contiguous array ``x`` (same length and dtype on
        every rank), added in rank order element by element (the module's docstring): the
        same bits on every rank, and in every run with the same number of ranks."""
        x = np.ascontiguousarray(x)
        if x.ndim != 1:
            raise ValueError(f"allreduce_sum: x must be 1-D, got shape {x.shape}")
        if self.size == 1:
            return x.copy()
        if x.nbytes <= _SMALL:
            everyone = np.empty((self.size, x.size), dtype=x.dtype)
            self._wait([self.comm.Iallgather(x, everyone)], what)
            self.bytes_reduced += 2 * x.nbytes * (self.size - 1)
            return _ordered_sum(everyone)
        bounds = [shard_rows(x.size, j, self.size) for j in range(self.size)]
        counts = [hi - lo for lo, hi in bounds]
        starts = [lo for lo, _ in bounds]
        mine = counts[self.rank]
        parts = np.empty((self.size, mine), dtype=x.dtype)
        from mpi4py.util.dtlib import from_numpy_dtype

        mpi_type = from_numpy_dtype(x.dtype)
        self._wait(
            [
                self.comm.Ialltoallv(
                    [x, (counts, starts), mpi_type],
                    [parts, ([mine] * self.size, [mine * j for j in range(self.size)]), mpi_type],
                )
            ],
            what,
        )
        total = np.empty_like(x)
        chunk = _ordered_sum(parts)
        self._wait(
            [self.comm.Iallgatherv(chunk, [total, (counts, starts), mpi_type])],
            what,
        )
        self.bytes_reduced += 2 * (x.nbytes - chunk.nbytes)
        return total

    def broadcast_arrays(self, arrays: Mapping[str, np.ndarray], root: int = 0) -> None:
        """Overwrite every array of ``arrays`` (in place, same keys, shapes and dtypes on every
        rank: checked) with root's."""
        layout = [(k, v.shape, v.dtype.str) for k, v in arrays.items()]
        theirs = self.broadcast_object(layout, root)
        if theirs != layout:
            raise DistributedError(
                f"{self.who()}: the arrays to broadcast differ from rank {root}'s "
                f"(names, shapes or dtypes): {_first_difference(layout, theirs)}"
            )
        requests = []
        for value in arrays.values():
            if not value.flags.c_contiguous:
                raise ValueError("broadcast_arrays: the arrays must be C-contiguous")
            if value.size:
                requests.append(self.comm.Ibcast(value.reshape(-1).view(np.uint8), root=root))
        self._wait(requests, "a broadcast of parameters")

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """root's ``obj`` (any picklable object) on every rank."""
        payload = pickle.dumps(obj) if self.rank == root else b""
        length = np.array([len(payload)], dtype=np.int64)
        self._wait([self.comm.Ibcast(length, root=root)], "a broadcast")
        buf = np.frombuffer(payload, dtype=np.uint8).copy() if self.rank == root else None
        if buf is None:
            buf = np.empty(int(length[0]), dtype=np.uint8)
        self._wait([self.comm.Ibcast(buf, root=root)], "a broadcast")
        return obj if self.rank == root else pickle.loads(buf.tobytes())  # noqa: S301

    def allgather_object(self, obj: Any, what: str = "a gather") -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        lengths = np.empty(self.size, dtype=np.int64)
        self._wait([self.comm.Iallgather(np.array([payload.size], dtype=np.int64), lengths)], what)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        buf = np.empty(int(lengths.sum()), dtype=np.uint8)
        self._wait(
            [
                self.comm.Iallgatherv(
                    payload, [buf, (lengths.tolist(), starts.tolist()), self.MPI.BYTE]
                )
            ],
            what,
        )
        return [
            pickle.loads(buf[s : s + n].tobytes())  # noqa: S301
            for s, n in zip(starts.tolist(), lengths.tolist())
        ]

    def barrier(self, what: str = "a barrier") -> None:
        self._wait([self.comm.Ibarrier()], what)

    def stop_on_terminate(self, note: str = "") -> None:
        """On SIGTERM (what Open MPI's launcher sends the other ranks when one dies, or when
        the job is cancelled): one line on stderr, then exit at once with EXIT_PEER_FAILED."""

        def handler(signum: int, frame: Any) -> None:
            print(
                f"fastcnn: {self.who()}: stopping: the MPI launcher ended the job (signal "
                f"{signum}: another rank failed or the job was cancelled){note}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_PEER_FAILED)

        signal.signal(signal.SIGTERM, handler)


def _ordered_sum(rows: np.ndarray) -> np.ndarray:
    """rows[0] + rows[1] + ... + rows[-1], left to right, element by element."""
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    return total


def _first_difference(mine: list[Any], theirs: list[Any]) -> str:
    for a, b in zip(mine, theirs):
        if a != b:
            return f"here {a}, there {b}"
    return f"here {len(mine)} arrays, there {len(theirs)}"
