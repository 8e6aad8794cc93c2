"""Data-parallel training in a user's own loop, as Horovod offers it: every rank starts from
rank 0's parameters and optimizer state, computes gradients on its own part of the batch, and
``DistributedOptimizer`` averages them over the ranks before the same update on every rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fastcnn import optim as _optim
from fastcnn.distributed._comm import Communicator
from fastcnn.distributed._gradients import sum_gradients


def broadcast_parameters(
    comm: Communicator, params: Mapping[str, np.ndarray], root: int = 0
) -> None:
    """Overwrite ``params`` (a model's params dict, in place) with rank ``root``'s."""
    comm.broadcast_arrays(params, root)


def broadcast_optimizer_state(
    comm: Communicator,
    optimizer: _optim.Optimizer,
    params: Mapping[str, np.ndarray] | None = None,
    root: int = 0,
) -> None:
    """Give every rank rank ``root``'s optimizer state (its step count, rate, moments)."""
    state = comm.broadcast_object(optimizer.state_dict(), root)
    if comm.rank != root:
        optimizer.load_state_dict(state, params)


class DistributedOptimizer:
    """Wraps an optimizer: ``update(params, grads)`` averages ``grads`` over the ranks (a
    fixed-order sum: the same bits on every rank) and then applies the wrapped optimizer, so
    every rank takes the same step and the parameters stay identical.

    ``batch_size``: this rank's number of samples behind ``grads`` (the mean over them). When
    the ranks' parts differ in size, pass it: the average is then weighted by it, which is the
    gradient of the mean loss over all samples. Without it every rank counts the same.
    Everything else (``lr``, ``step``, ``state_dict()``, ...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: _optim.Optimizer, comm: Communicator) -> None:
        if not isinstance(optimizer, _optim.Optimizer):
            raise TypeError(
                "DistributedOptimizer: optimizer must be a fastcnn.optim optimizer, got "
                f"{type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.comm = comm

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def average(
        self, grads: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """The gradients averaged over the ranks (weighted by ``batch_size`` when given)."""
        if batch_size is None:
            return sum_gradients(self.comm, grads, 1.0 / self.comm.size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError("DistributedOptimizer: batch_size must be an int")
        if batch_size < 0:
            raise ValueError(f"DistributedOptimizer: batch_size must be >= 0, got {batch_size}")
        total = int(self.comm.allreduce_sum(np.array([batch_size], dtype=np.int64))[0])
        if total == 0:
            raise ValueError("DistributedOptimizer: no rank has any samples (batch_size 0)")
        return sum_gradients(self.comm, grads, batch_size / total)

    def update(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        batch_size: int | None = None,
    ) -> None:
        """Average ``grads`` over the ranks, then update ``params`` in place."""
        self.optimizer.update(params, self.average(grads, batch_size))
