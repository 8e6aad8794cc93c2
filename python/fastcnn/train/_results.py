"""What a run hands back: TrainResult from a finished ``fit``, and the two ways a run ends
early, TrainingInterrupted (Ctrl-C, state saved) and TrainingDiverged (nothing saved from the
bad state). Plain data: nothing here runs or writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by ``Trainer.fit`` after Ctrl-C (or a KeyboardInterrupt from a callback) once the
    last completed iteration is saved. ``checkpoint`` is its path (None without ``out_dir``)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class TrainingDiverged(FloatingPointError):
    """Raised by ``Trainer.fit`` when a training or test loss, or a parameter, is not finite.

    Nothing is saved from the diverged state (no checkpoint, no model file); ``checkpoint`` is
    the last good checkpoint of the run (None if none was written)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns.

    ``model``: the model trained (the object given to the Trainer); ``history``: one dict per
    epoch (epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds, images_per_s,
    iterations); ``iteration_losses``: the training loss of every ``log_every``-th iteration;
    ``report``: ``classification_report`` on the whole test set after the last epoch;
    ``files``: name -> path of everything written to out_dir.
    """

    model: Any
    history: list[dict[str, Any]]
    iteration_losses: np.ndarray
    report: dict[str, Any]
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return float(self.report["accuracy"])
