"""The Trainer on several ranks (fastcnn.distributed): what changes when a run is data-parallel.

- ``DataParallelNet``: the trainer's net. Its step runs this rank's rows of the global batch
  (the DataLoader's shard) and returns the global batch's loss, gradient and correct count,
  the same on every rank: each rank's mean gradient weighted by its share of the batch,
  summed in rank order. Dropout layers draw exactly their rows of the mask one process would
  draw (Dropout.first_row), so with N ranks and global batch B the step is the one-process
  step on B up to the order of the additions.
- ``evaluate_split``: each rank evaluates its rows of a set; the results are gathered.
- ``start``: before the first step the ranks check that they run the same thing (version,
  model, settings, data, position) and take rank 0's parameters and optimizer state.
- ``end_epoch``: the ranks' parameters are compared (a digest) and, if they drifted (ranks on
  CPUs that round differently), rank 0's are broadcast; batch-norm running statistics, which
  each rank keeps from its own rows, are averaged.
Only rank 0 writes files or prints; the Trainer sees to that.
"""

from __future__ import annotations

import hashlib
import json
import signal
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

import fastcnn
from fastcnn import models as _models
from fastcnn.datasets import shard_rows
from fastcnn.distributed import (
    Communicator,
    DistributedError,
    broadcast_optimizer_state,
    broadcast_parameters,
    sum_gradients,
)
from fastcnn.train._evaluate import EvalResult, evaluate, proba_loss
from fastcnn.train._net import Net
from fastcnn.train._stop import StopFlag

# The signals that ask a data-parallel run to stop after the current iteration: SIGINT (sent to
# one rank) and SIGUSR1 (what Open MPI's mpirun passes on to every rank; Ctrl-C at mpirun ends
# the job instead). The ranks agree on the stop within the step's sum.
STOP_SIGNALS = (signal.SIGINT, signal.SIGUSR1)

if TYPE_CHECKING:  # pragma: no cover
    from fastcnn.train._trainer import Trainer


class DataParallelNet:
    """``net`` run on this rank's rows of every global batch; see the module docstring."""

    def __init__(self, net: Net, comm: Communicator, stop: Callable[[], StopFlag]) -> None:
        self.net = net
        self.comm = comm
        self._stop = stop  # the current fit()'s stop flag: a request on any rank stops all
        self.fastcnn = net.fastcnn
        self.model = net.model
        self.name = net.name
        self.params = net.params
        self.dtype = net.dtype
        self.backend = net.backend
        self._dropouts = list(net.model._dropout_layers().values()) if net.fastcnn else []

    def describe(self) -> str:
        return f"{self.net.describe()}; data-parallel over {self.comm.size} ranks"

    def scores(self, x: np.ndarray) -> np.ndarray | None:
        return self.net.scores(x)

    def shape_data(self, x: np.ndarray, split: str) -> np.ndarray:
        return self.net.shape_data(x, split)

    def step(
        self, x: np.ndarray, t: np.ndarray, rows: tuple[int, int] | None = None
    ) -> tuple[float, dict[str, np.ndarray], int]:
        """(loss, grads, correct) of the global batch, whose rows lo:lo+len(t) of n
        (``rows`` = (lo, n)) are x and t."""
        lo, n = (0, len(t)) if rows is None else rows
        for layer in self._dropouts:
            layer.first_row = lo
        if len(t):
            loss, grads, correct = self.net.step(x, t)
        else:  # fewer rows than ranks: nothing to compute, but the masks' count moves on
            for layer in self._dropouts:
                layer.calls += 1
            loss, correct = 0.0, 0
            grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        share = len(t) / n
        stop = self._stop()
        totals = self.comm.allreduce_sum(
            np.array([loss * share, correct, stop.requested], dtype=np.float64), "a step's loss"
        )
        if totals[2] > 0:  # some rank was asked to stop: every rank stops after this step
            stop.requested = True
        return float(totals[0]), sum_gradients(self.comm, grads, share), int(totals[1])


def evaluate_split(comm: Communicator, model: Any, x: np.ndarray, t: np.ndarray) -> EvalResult:
    """``evaluate(model, x, t)`` with the rows shared out over the ranks and the results
    gathered in rank order: the same figures on every rank."""
    lo, hi = shard_rows(len(t), comm.rank, comm.size)
    part = evaluate(model, x[lo:hi], t[lo:hi]) if hi > lo else None
    mine = None if part is None else (part.loss, part.accuracy, part.proba, hi - lo)
    parts = [p for p in comm.allgather_object(mine, "an evaluation") if p is not None]
    if not parts:
        raise ValueError("evaluate: no samples")
    if all(p[2] is not None for p in parts):
        proba = np.concatenate([p[2] for p in parts])
        accuracy = float((proba.argmax(axis=1) == t).mean())
    else:
        proba, accuracy = None, sum(p[1] * p[3] for p in parts) / len(t)
    if isinstance(model, _models.Model):  # from the whole set's probabilities, as evaluate
        assert proba is not None
        loss = proba_loss(proba, t)
    else:  # a foreign model's own loss: the rows' means, weighted
        loss = sum(p[0] * p[3] for p in parts) / len(t)
    return EvalResult(float(loss), accuracy, proba)


# -- the start and the end of an epoch ----------------------------------------------------------


def _facts(trainer: Trainer) -> dict[str, Any]:
    """What every rank must agree on before the first step, as JSON-comparable values."""
    x, t = trainer.x_train, trainer.t_train
    digest = hashlib.blake2b(digest_size=16)
    for arr in (t, x[:: max(1, len(x) // 512)], trainer.t_test):
        digest.update(np.ascontiguousarray(arr).tobytes())
    config = trainer.config()
    return {
        "fastcnn version": fastcnn.__version__,
        "model": json.dumps(config.pop("model_config"), sort_keys=True, default=str),
        "dtype": str(trainer.net.dtype),
        "seed": config.pop("seed"),
        "dataset": f"{trainer.source_info.get('title', 'arrays')}, {len(t)} training images "
        f"(content {digest.hexdigest()})",
        "settings": json.dumps(config, sort_keys=True, default=str),
        "position": json.dumps(trainer.state.position(), sort_keys=True),
    }


def start(trainer: Trainer, comm: Communicator) -> None:
    """Check that the ranks agree (DistributedError on every rank, naming what differs), then
    give every rank rank 0's parameters, batch-norm statistics and optimizer state."""
    facts = _facts(trainer)
    everyone = comm.allgather_object(facts, "the start-up check")
    differ = []
    for key in facts:
        for rank, theirs in enumerate(everyone):
            if theirs[key] != everyone[0][key]:
                differ.append(f"{key}: rank 0 has {everyone[0][key]}, rank {rank} {theirs[key]}")
                break
    if differ:
        raise DistributedError(
            f"the {comm.size} ranks disagree, so none starts: " + "; ".join(differ)
        )
    broadcast_parameters(comm, trainer.net.params)
    comm.broadcast_arrays(_state_arrays(trainer))
    broadcast_optimizer_state(comm, trainer.optimizer, trainer.net.params)
    if _state_arrays(trainer) and comm.is_root:
        warnings.warn(
            "data-parallel training: batch normalisation normalises each rank's rows by their "
            "own statistics (not synchronised), so the run differs from one process; the "
            "running statistics are averaged over the ranks after every epoch",
            stacklevel=3,
        )


def end_epoch(trainer: Trainer, comm: Communicator) -> None:
    """Keep the ranks identical: rank 0's parameters wherever they drifted, batch-norm
    running statistics averaged (before the epoch's evaluation and checkpoint)."""
    digest = hashlib.blake2b(digest_size=16)
    for value in trainer.net.params.values():
        digest.update(np.ascontiguousarray(value).tobytes())
    digests = comm.allgather_object(digest.hexdigest(), "the end-of-epoch check")
    if len(set(digests)) > 1:
        comm.broadcast_arrays(trainer.net.params)
        if comm.is_root:
            warnings.warn(
                "data-parallel training: the ranks' parameters drifted apart (ranks on CPUs "
                "that round differently); rank 0's were given to all",
                stacklevel=3,
            )
    state = _state_arrays(trainer)
    if state:
        mean = sum_gradients(comm, state, 1.0 / comm.size)
        for key, value in state.items():
            value[...] = mean[key]


def _state_arrays(trainer: Trainer) -> Mapping[str, np.ndarray]:
    return trainer.model.state_arrays() if trainer.net.fastcnn else {}
