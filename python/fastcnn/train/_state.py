"""The state of a run, explicit: ``RunState`` is where the run is (what a checkpoint saves and
resume restores), ``EpochSums`` the running sums of the epoch under way, ``Session`` what one
``fit()`` call keeps for itself (its clock, its status, Ctrl-C). The settings of a run are not
state (see _settings.py); the model and optimizer keep their own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastcnn.train._evaluate import EvalResult
from fastcnn.train._stop import StopFlag


@dataclass
class EpochSums:
    """Running sums over the batches of the current epoch."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    batches: int = 0
    seconds: float = 0.0
    norm_sum: float = 0.0  # with gradient clipping: the norms before clipping, and how many
    clipped: int = 0  # steps were clipped (0 without clipping)

    def add(
        self,
        loss: float,
        correct: int,
        n: int,
        seconds: float,
        norm: float | None = None,
        clipped: bool = False,
    ) -> None:
        self.loss_sum += float(loss)
        self.correct += correct
        self.seen += n
        self.batches += 1
        self.seconds += seconds
        if norm is not None:
            self.norm_sum += norm
            self.clipped += clipped

    @property
    def mean_norm(self) -> float:
        return self.norm_sum / self.batches if self.batches else float("nan")

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.batches if self.batches else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.seen / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "batches": self.batches,
            "seconds": self.seconds,
            "norm_sum": self.norm_sum,
            "clipped": self.clipped,
        }


@dataclass
class RunState:
    """Where a run is. ``epoch`` is the epoch being run (or next to run), ``batch`` the next
    batch of that epoch, ``iteration`` the updates done so far; ``elapsed`` the seconds of
    fitting in the sessions that have ended (a resumed run's earlier ones included)."""

    epoch: int = 0
    batch: int = 0
    iteration: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    iteration_losses: list[float] = field(default_factory=list)
    partial: EpochSums = field(default_factory=EpochSums)
    elapsed: float = 0.0

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration}

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch = 0
        self.partial = EpochSums()

    def to_meta(self, elapsed: float) -> dict[str, Any]:
        """The checkpoint meta entries of this state, with ``elapsed`` the wall time so far."""
        return {
            "position": self.position(),
            "partial": self.partial.as_dict(),
            "history": self.history,
            "elapsed": elapsed,
            "iteration_losses": np.asarray(self.iteration_losses, dtype=np.float64),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> RunState:
        """The state ``to_meta`` saved (the caller has checked that the entries exist)."""
        pos = meta["position"]
        return cls(
            epoch=int(pos["epoch"]),
            batch=int(pos["batch"]),
            iteration=int(pos["iteration"]),
            history=list(meta["history"]),
            iteration_losses=[float(v) for v in meta["iteration_losses"]],
            partial=EpochSums(**meta["partial"]),
            elapsed=float(meta["elapsed"]),
        )


class Session:
    """One ``fit()`` call: when it started, how it is going ("running", "interrupted",
    "diverged", "finished"), whether an update is under way (a second Ctrl-C then leaves a
    half-updated model, which must not be saved) and the last evaluation on the whole test
    set (reused by the final report when nothing was trained after it)."""

    def __init__(self, stop_signals: tuple[Any, ...] | None = None, quiet: bool = False) -> None:
        self.start: float | None = None
        self.status = "created"
        self.in_step = False
        self._stop_args: dict[str, Any] = {"quiet": quiet}
        if stop_signals is not None:
            self._stop_args["signals"] = stop_signals
        self.stop = StopFlag(**self._stop_args)
        self.last_full_eval: tuple[int, EvalResult] | None = None

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.status = "running"
        self.in_step = False
        self.stop = StopFlag(**self._stop_args)

    def end(self) -> float:
        """Stop the clock; returns the session's seconds."""
        seconds = self.seconds()
        self.start = None
        return seconds

    def seconds(self) -> float:
        return 0.0 if self.start is None else time.perf_counter() - self.start
