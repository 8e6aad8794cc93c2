"""MPI through mpi4py: imported only when asked for (importing mpi4py initialises MPI), with a
clear error when it or an MPI runtime is missing; and whether this process was started by an
MPI launcher (mpirun, mpiexec, srun), read from the environment without importing MPI.
"""

from __future__ import annotations

import os
from typing import Any

INSTALL_HINT = "pip install 'fastcnn[mpi]' (mpi4py and the Open MPI runtime, from PyPI)"

# The world size each launcher puts in its ranks' environment: Open MPI, MPICH / Intel MPI
# (Hydra, PMI), PMIx launchers, Slurm's srun.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


class MPIUnavailable(ImportError):
    """mpi4py (or the MPI library it loads) cannot be imported."""


def launched_size() -> int:
    """The number of ranks the launcher started, from the environment: 1 when no launcher
    started this process (or the variable is not a number)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def launched() -> bool:
    """Whether an MPI launcher started this process as one of several ranks."""
    return launched_size() > 1


def mpi() -> Any:
    """The ``mpi4py.MPI`` module (MPI initialised, threads: MPI_THREAD_MULTIPLE requested), or
    MPIUnavailable saying what to install."""
    try:
        import mpi4py
    except ImportError as exc:
        raise MPIUnavailable(
            f"fastcnn.distributed needs mpi4py, which is not installed: {INSTALL_HINT}"
        ) from exc
    mpi4py.rc.thread_level = "multiple"
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # mpi4py without a loadable MPI library
        raise MPIUnavailable(
            f"fastcnn.distributed: mpi4py is installed but no MPI library loads ({exc}): "
            f"{INSTALL_HINT}"
        ) from exc
    return MPI
