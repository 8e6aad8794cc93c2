"""fastcnn.distributed: data-parallel training over MPI (mpi4py), on one machine or many.

Each rank is a process with its own copy of the model; every step each takes its part of the
global batch, and the gradients are summed over the ranks in a fixed order
(``Communicator.allreduce_sum``), so every rank takes the same step and a run is bitwise
repeatable for a given number of ranks. ``mpirun -n N fastcnn train ...`` does all of it
(docs/distributed.md); in a loop of one's own::

    from fastcnn import distributed as dist
    comm = dist.Communicator()                 # MPI_COMM_WORLD; rank, size
    dist.broadcast_parameters(comm, model.params)
    opt = dist.DistributedOptimizer(fastcnn.optim.Adam(lr=1e-3), comm)
    for xb, tb in DataLoader(x, t, 100, shard=(comm.rank, comm.size)):
        loss, grads = model.loss_and_gradient(xb, tb)
        opt.update(model.params, grads, batch_size=len(tb))

Needs the ``mpi`` extra (``pip install 'fastcnn[mpi]'``: mpi4py and Open MPI); importing
this package does not import mpi4py, a Communicator does (MPIUnavailable if it is missing).
"""

from __future__ import annotations

from fastcnn.distributed._comm import (
    DEFAULT_TIMEOUT,
    EXIT_PEER_FAILED,
    Communicator,
    DistributedError,
    default_timeout,
)
from fastcnn.distributed._gradients import sum_gradients
from fastcnn.distributed._mpi import MPIUnavailable, launched, launched_size
from fastcnn.distributed._optimizer import (
    DistributedOptimizer,
    broadcast_optimizer_state,
    broadcast_parameters,
)

__all__ = [
    "Communicator",
    "DistributedOptimizer",
    "DistributedError",
    "MPIUnavailable",
    "broadcast_parameters",
    "broadcast_optimizer_state",
    "sum_gradients",
    "launched",
    "launched_size",
    "default_timeout",
    "DEFAULT_TIMEOUT",
    "EXIT_PEER_FAILED",
]
