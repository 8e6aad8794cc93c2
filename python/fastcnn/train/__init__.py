"""fastcnn.train: the ``Trainer`` loop, evaluation, checkpoints and resuming, the JSON run log,
the classification report and (when matplotlib is installed) plots.

One process, one model, mini-batch training on arrays already in memory (MNIST-sized data).
Everything random comes from the seed (batch order and augmentation from (seed, epoch, batch),
dropout masks from the model), so a run is reproducible and a resumed run sees exactly the
batches an uninterrupted one would. A validation split (held out from the training images)
is evaluated every epoch and chooses (early stopping, the best epoch); the test set once, at
the end. On several MPI ranks (``comm=``, fastcnn.distributed) each trains on its rows of every
global batch with the results of one process (_parallel). No mixed precision.

The modules, one concern each: _trainer (the Trainer and its loop), _net (the one interface
to a fastcnn model or an object with the classic protocol), _settings (the defaults table and
the arguments checked), _state (the run state a checkpoint restores), _checkpoint
(checkpoints and resume), _data (the data checked, its source recorded), _evaluate, _report,
_schedules (schedules by name), _split (the validation split), _gradients (weight decay,
clipping), _final (the end of a run: the test, the final files), _progress (the bar or plain
lines), _log (log.json), _plots, _results (what fit returns or raises), _stop (Ctrl-C),
_parallel (data-parallel runs).
"""

from __future__ import annotations

from fastcnn.train._data import load_test_set
from fastcnn.train._evaluate import EvalResult, evaluate
from fastcnn.train._plots import have_matplotlib, plot_curves, plot_misclassified
from fastcnn.train._report import classification_report, format_report
from fastcnn.train._results import TrainingDiverged, TrainingInterrupted, TrainResult
from fastcnn.train._schedules import SCHEDULE_NAMES, make_schedule
from fastcnn.train._settings import DEFAULTS
from fastcnn.train._trainer import Trainer

__all__ = [
    "Trainer",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingDiverged",
    "EvalResult",
    "classification_report",
    "format_report",
    "evaluate",
    "load_test_set",
    "make_schedule",
    "SCHEDULE_NAMES",
    "DEFAULTS",
    "plot_curves",
    "plot_misclassified",
    "have_matplotlib",
]
