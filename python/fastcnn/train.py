"""Training: the ``Trainer`` loop, evaluation, checkpoints and resuming, the JSON run log, the
classification report and (when matplotlib is installed) plots.

One process, one model, mini-batch training on arrays already in memory (MNIST-sized data).
Everything random comes from the seed (batch order and augmentation from (seed, epoch, batch),
dropout masks from the model), so a run is reproducible and a resumed run sees exactly the
batches an uninterrupted one would. No distributed training, no mixed precision, no early
stopping.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from fastcnn import models as _models
from fastcnn import optim as _optim
from fastcnn._atomic import write_atomic
from fastcnn.datasets import Augment, DataLoader, MNISTSource

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
    "plot_curves",
    "plot_misclassified",
    "have_matplotlib",
]

PathLike = Union[str, "os.PathLike[str]"]
Data = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CHECKPOINT_NAME = "checkpoint.npz"
MODEL_NAME = "model.npz"
LOG_NAME = "log.json"
CURVES_NAME = "curves.png"
MISCLASSIFIED_NAME = "misclassified.png"
_RECENT_BATCHES = 50  # the progress bar's train accuracy is over this many recent batches


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


# ---------------------------------------------------------------------------------------------
# Classification report
# ---------------------------------------------------------------------------------------------


def classification_report(y_true: Any, y_pred: Any, n_classes: int) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / F1 / support and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class i predicted as j. A ratio whose
    denominator is 0 (a class never predicted, or absent from y_true) is reported as 0.0.
    ``macro`` averages the per-class values over all n_classes classes. Plain JSON types.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"classification_report: n_classes must be an int, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"classification_report: n_classes must be >= 1, got {n_classes}")
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            "classification_report: y_true and y_pred must be 1-D of the same length, got "
            f"shapes {y_true.shape} and {y_pred.shape}"
        )
    if y_true.size == 0:
        raise ValueError("classification_report: no samples")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.dtype.kind not in "iu":
            raise TypeError(f"classification_report: {name} must hold integers, got {y.dtype}")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"classification_report: {name} must be in [0, {n_classes}), "
                f"got values in [{y.min()}, {y.max()}]"
            )
    n = int(n_classes)
    confusion = np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros(n), where=den > 0)

    precision = ratio(tp, predicted)
    recall = ratio(tp, support)
    f1 = ratio(2 * precision * recall, precision + recall)
    return {
        "n": int(y_true.size),
        "accuracy": float(tp.sum() / y_true.size),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "confusion": confusion.tolist(),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a compact text table: per-class precision/recall/F1/support, then the
    confusion matrix (rows: true class, columns: predicted)."""
    n = len(report["support"])
    lines = [
        f"test accuracy {100 * report['accuracy']:.2f} % "
        f"({round(report['accuracy'] * report['n'])} / {report['n']})",
        "",
        "class  precision  recall     f1  support",
    ]
    for c in range(n):
        lines.append(
            f"{c:>5}  {report['precision'][c]:9.4f}  {report['recall'][c]:6.4f}  "
            f"{report['f1'][c]:5.4f}  {report['support'][c]:7d}"
        )
    m = report["macro"]
    lines.append(
        f"macro  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:5.4f}  {report['n']:7d}"
    )
    width = max(4, len(str(max(max(row) for row in report["confusion"]))) + 1)
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append("     " + "".join(f"{c:>{width}}" for c in range(n)))
    for c, row in enumerate(report["confusion"]):
        lines.append(f"{c:>5}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Inference-mode results on a set: mean cross-entropy, accuracy, probabilities (N, M)."""

    loss: float
    accuracy: float
    proba: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.proba.argmax(axis=1)


def evaluate(
    model: _models.Model,
    x: np.ndarray,
    t: np.ndarray,
    batch_size: int = 500,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult | None:
    """Loss, accuracy and probabilities of ``model`` on (x, t) in inference mode, in batches.
    Returns None when ``should_stop()`` turns true between batches (Ctrl-C during evaluation)."""
    n = x.shape[0]
    if n == 0:
        raise ValueError("evaluate: no samples")
    proba = np.empty((n, model.output_size), dtype=np.float64)
    for i in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            return None
        logits = model.predict(x[i : i + batch_size]).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        proba[i : i + batch_size] = logits
    p_true = proba[np.arange(n), t]
    loss = float(-np.log(np.maximum(p_true, 1e-300)).mean())
    acc = float((proba.argmax(axis=1) == t).mean())
    return EvalResult(loss, acc, proba)


def load_test_set(source: MNISTSource, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Only the test split of ``source``: images (N, 1, 28, 28) in [0, 1] and int64 labels,
    with the same checks as ``load_mnist`` (evaluation need not read the training set)."""
    from fastcnn.datasets._mnist import _convert, _read_pair

    images, labels = _read_pair("test", source.files["test_images"], source.files["test_labels"])
    return _convert(images, labels, True, False, False, np.dtype(dtype))


# ---------------------------------------------------------------------------------------------
# Schedules by name
# ---------------------------------------------------------------------------------------------

SCHEDULE_NAMES = ("constant", "step", "cosine", "warmup")


def make_schedule(
    name: str | None,
    epochs: float,
    *,
    warmup: float = 0.0,
    step_epochs: float | None = None,
    gamma: float = 0.1,
) -> _optim.Schedule | None:
    """The schedule a CLI name stands for, with lengths in epochs (the Trainer steps schedules
    every iteration with t = the fractional epoch).

    - "constant" (or None): the base rate (after ``warmup`` epochs of linear warm-up, if any).
    - "cosine": one cosine decay from the base rate to 0 over the epochs after the warm-up.
    - "step": times ``gamma`` every ``step_epochs`` (default: a third of the post-warm-up run).
    - "warmup": linear warm-up over ``warmup`` epochs (1 if not given), then constant.
    Returns None for "constant"/None without warm-up (no schedule at all).
    """
    if name is not None and name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r} (known: {', '.join(SCHEDULE_NAMES)})")
    if not warmup >= 0:
        raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
    if name == "warmup" and warmup == 0:
        warmup = 1.0
    rest = max(epochs - warmup, 1e-9)
    then: _optim.Schedule | None
    if name == "cosine":
        then = _optim.CosineAnnealingWarmRestarts(t0=rest)
    elif name == "step":
        then = _optim.StepDecay(step_epochs if step_epochs is not None else rest / 3, gamma)
    else:
        then = None
    if warmup > 0:
        return _optim.LinearWarmup(warmup, then=then)
    return then


# ---------------------------------------------------------------------------------------------
# Files: atomic writes, the machine description
# ---------------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the run log records about the machine: CPU, threads, ISA, the convolution
    algorithm, versions."""
    from fastcnn import config

    cfg = config()
    return {
        "cpu": _cpu_name(),
        "cpu_count": cfg["cpu_count"],
        "threads": cfg["num_threads"],
        "isa": cfg["isa"],
        "winograd": cfg["winograd"],
        "cpu_features": [k for k, v in cfg["cpu_features"].items() if v],
        "fastcnn": cfg["version"],
        "python": cfg["python"],
        "numpy": np.__version__,
        "platform": cfg["platform"],
    }


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns.

    ``history``: one dict per epoch (epoch, train_loss, train_acc, test_loss, test_acc, lr,
    seconds, images_per_s, iterations); ``iteration_losses``: the training loss of every
    ``log_every``-th iteration; ``report``: ``classification_report`` on the whole test set
    after the last epoch; ``files``: name -> path of everything written to out_dir.
    """

    model: _models.Model
    history: list[dict[str, Any]]
    iteration_losses: np.ndarray
    report: dict[str, Any]
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return float(self.report["accuracy"])


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------


class _StopFlag:
    """Ctrl-C while fitting: the first press asks the loop to stop after the current iteration
    (so the state saved is consistent); a second press interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nfastcnn: Ctrl-C: stopping after the current iteration (press again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> _StopFlag:
        # Signal handlers can only be set from the main thread; elsewhere SIGINT never arrives.
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False


class Trainer:
    """Mini-batch training of a fastcnn model with per-epoch evaluation and checkpoints.

    ``data`` is ``((x_train, t_train), (x_test, t_test))`` (images (N, 1, 28, 28) or (N, 784),
    integer labels) or an ``MNISTSource`` (loaded here, and recorded in the log).

    - ``optimizer``: a name from ``fastcnn.optim.OPTIMIZERS`` (built with ``lr`` and
      ``optimizer_kwargs`` on the model's backend) or an optimizer object (``lr`` overrides its
      rate when given).
    - ``schedule``: None, a name (see ``make_schedule``; ``warmup`` in epochs) or a schedule
      object. It is stepped every iteration with t = the fractional epoch
      (epoch + batch / batches_per_epoch), so all lengths are in epochs:
      ``optimizer.lr = schedule(base_lr, t)``.
    - ``augment``: None, True (``Augment()``'s defaults) or an ``Augment``; its seed is replaced
      by the trainer's seed so one seed fixes the run.
    - ``eval_sample``: evaluate each epoch on a fixed random sample of that many test images
      (None: the whole test set). The final report always uses the whole test set.
    - ``out_dir``: where ``checkpoint.npz`` (after every epoch), ``log.json`` (rewritten after
      every epoch), ``model.npz`` and the plots (at the end) go; None writes nothing.
    - ``log_every``: keep the loss of every k-th iteration in the log (1: all of them).
    - ``limit_batches``: run only the first N batches of each epoch (smoke tests).
    - ``callbacks``: functions ``f(trainer, info)`` called after every iteration with
      info = {"epoch", "batch", "iteration", "loss", "lr"}.
    """

    def __init__(
        self,
        model: _models.Model,
        data: Data | MNISTSource,
        *,
        epochs: int = 20,
        batch_size: int = 100,
        optimizer: str | _optim.Optimizer = "adam",
        lr: float | None = None,
        optimizer_kwargs: Mapping[str, float] | None = None,
        schedule: str | _optim.Schedule | None = None,
        warmup: float = 0.0,
        augment: bool | Augment | None = None,
        eval_sample: int | None = None,
        seed: int = 0,
        out_dir: PathLike | None = None,
        progress: bool = True,
        verbose: bool = True,
        log_every: int = 1,
        limit_batches: int | None = None,
        callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
        command: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(model, _models.Model):
            raise TypeError(f"Trainer: model must be a fastcnn model, got {type(model).__name__}")
        self.model = model
        self.epochs = _positive_int(epochs, "epochs")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.seed = _positive_int(seed, "seed", low=0)
        self.log_every = _positive_int(log_every, "log_every")
        self.limit_batches = (
            None if limit_batches is None else _positive_int(limit_batches, "limit_batches")
        )
        self.eval_sample = (
            None if eval_sample is None else _positive_int(eval_sample, "eval_sample")
        )
        self.progress = bool(progress)
        self.verbose = bool(verbose)
        self.callbacks = list(callbacks)
        self.command = list(command) if command is not None else None
        self.out_dir = None if out_dir is None else Path(out_dir)

        # Data
        self.source_info: dict[str, Any]
        if isinstance(data, MNISTSource):
            self.source_info = {
                "kind": data.kind,
                "directory": str(data.directory),
                "description": str(data),
            }
            data = data.load(flatten=False, dtype=model.dtype)
        else:
            self.source_info = {"kind": "arrays"}
        (self.x_train, self.t_train), (self.x_test, self.t_test) = _check_data(data, model)
        self.source_info.update(n_train=len(self.t_train), n_test=len(self.t_test))

        # Optimizer
        if isinstance(optimizer, str):
            if optimizer not in _optim.OPTIMIZERS:
                raise ValueError(
                    f"Trainer: unknown optimizer {optimizer!r} "
                    f"(known: {', '.join(_optim.OPTIMIZERS)})"
                )
            kwargs = dict(optimizer_kwargs or {})
            if lr is not None:
                kwargs["lr"] = lr
            self.optimizer = _optim.OPTIMIZERS[optimizer](**kwargs, backend=model.backend)
            self.optimizer_name = optimizer
        elif isinstance(optimizer, _optim.Optimizer):
            if optimizer_kwargs:
                raise ValueError("Trainer: optimizer_kwargs only apply to an optimizer name")
            self.optimizer = optimizer
            if lr is not None:
                self.optimizer.lr = lr
            names = {cls: name for name, cls in _optim.OPTIMIZERS.items()}
            self.optimizer_name = names.get(type(optimizer), type(optimizer).__name__)
        else:
            raise TypeError(
                f"Trainer: optimizer must be a name or a fastcnn.optim optimizer, "
                f"got {type(optimizer).__name__}"
            )
        self.base_lr = float(self.optimizer.lr)

        # Schedule
        self.schedule_spec: dict[str, Any] | None
        if schedule is None or isinstance(schedule, str):
            self.schedule = make_schedule(schedule, self.epochs, warmup=warmup)
            self.schedule_spec = {"name": schedule or "constant", "warmup": float(warmup)}
        elif callable(schedule):
            self.schedule = schedule
            self.schedule_spec = None
        else:
            raise TypeError(
                "Trainer: schedule must be None, a name or a schedule, "
                f"got {type(schedule).__name__}"
            )

        # Augmentation
        if augment is True:
            augment = Augment(seed=self.seed)
        elif isinstance(augment, Augment):
            augment = Augment(augment.max_shift, augment.max_rotation, seed=self.seed)
        elif augment not in (None, False):
            raise TypeError(f"Trainer: augment must be None, a bool or an Augment, got {augment!r}")
        self.augment: Augment | None = augment or None
        self.loader = DataLoader(
            self.x_train,
            self.t_train,
            self.batch_size,
            shuffle=True,
            seed=self.seed,
            augment=self.augment,
        )
        self.batches_per_epoch = len(self.loader)
        if self.limit_batches is not None:
            self.batches_per_epoch = min(self.batches_per_epoch, self.limit_batches)

        # The per-epoch evaluation set: a fixed sample of the test set, or all of it.
        if self.eval_sample is not None and self.eval_sample < len(self.t_test):
            rng = np.random.default_rng([self.seed, 2])
            self.eval_index: np.ndarray | None = np.sort(
                rng.choice(len(self.t_test), self.eval_sample, replace=False)
            )
        else:
            self.eval_index = None

        # Progress of the run (what a checkpoint restores)
        self.epoch = 0  # the epoch being run (or next to run)
        self.batch = 0  # the next batch of that epoch
        self.iteration = 0  # updates done so far
        self.history: list[dict[str, Any]] = []
        self.iteration_losses: list[float] = []
        self._partial = _EpochSums()
        self.elapsed = 0.0  # seconds of fitting before this process (resumed runs)
        self._resumed_from: str | None = None
        self._good_checkpoint: Path | None = None  # the last checkpoint of this run's state

    # -- description ----------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The run's settings, as stored in log.json and in checkpoints (JSON types)."""
        return {
            "model": type(self.model).__name__,
            "model_config": self.model.config,
            "backend": self.model.backend,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer_name,
            "optimizer_state": {
                k: v for k, v in self.optimizer.state_dict().items() if "/" not in k and k != "step"
            }
            | {"lr": self.base_lr},
            "schedule": self.schedule_spec or {"name": "custom", "repr": repr(self.schedule)},
            "augment": None
            if self.augment is None
            else {"max_shift": self.augment.max_shift, "max_rotation": self.augment.max_rotation},
            "eval_sample": self.eval_sample,
            "seed": self.seed,
            "log_every": self.log_every,
            "limit_batches": self.limit_batches,
        }

    # -- checkpoints ----------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "trainer": self.config(),
            "data": self.source_info,
            "position": {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration},
            "partial": self._partial.as_dict(),
            "history": self.history,
            "elapsed": self.elapsed + self._session_seconds(),
            "iteration_losses": np.asarray(self.iteration_losses, dtype=np.float64),
        }

    def save_checkpoint(self, path: PathLike | None = None) -> Path:
        """Write the current state (after the last completed iteration) to ``path``
        (default ``out_dir / checkpoint.npz``)."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("Trainer.save_checkpoint: no path and no out_dir")
            path = self.out_dir / CHECKPOINT_NAME
        path = Path(path)
        _models.save_checkpoint(path, self.model, self.optimizer, self._meta())
        return path

    @classmethod
    def resume(
        cls,
        checkpoint: PathLike,
        data: Data | MNISTSource | None = None,
        *,
        backend: str | None = None,
        epochs: int | None = None,
        schedule: _optim.Schedule | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """A trainer that continues the run saved in ``checkpoint``: model, optimizer state,
        position (epoch, batch), history and per-iteration losses are restored, and the
        remaining batches are exactly those the uninterrupted run would have used.

        ``data`` must be the same data set; None reloads the MNIST the checkpoint names
        (the embedded subset, or the full set from the same directory). ``backend`` (default:
        fast) may differ from the original run's. ``epochs`` may extend the run (a named
        schedule is then rebuilt for the new length). A custom schedule object must be passed
        again as ``schedule``. Other keyword arguments (out_dir, progress, verbose, callbacks,
        command) are as for ``Trainer``; the training settings come from the checkpoint.
        """
        checkpoint = Path(checkpoint)
        ckpt = _models.load_checkpoint(checkpoint, backend=backend or "fast")
        meta = ckpt.meta
        cfg = meta.get("trainer")
        pos = meta.get("position")
        if not isinstance(cfg, dict) or not isinstance(pos, dict):
            raise _models.ModelFileError(
                f"{checkpoint}: not a training checkpoint (no trainer state; a model file?)"
            )
        if ckpt.optimizer is None:
            raise _models.ModelFileError(f"{checkpoint}: not a training checkpoint (no optimizer)")
        spec = cfg["schedule"]
        if spec.get("name") == "custom":
            if schedule is None:
                raise ValueError(
                    f"{checkpoint}: the run used a custom schedule ({spec.get('repr')}); "
                    "pass it again as schedule="
                )
            sched: Any = schedule
            warmup = 0.0
        else:
            sched, warmup = spec["name"], spec["warmup"]
        aug = cfg["augment"]
        if data is None:
            data = _source_from_meta(checkpoint, meta.get("data", {}))
        trainer = cls(
            ckpt.model,
            data,
            epochs=epochs if epochs is not None else cfg["epochs"],
            batch_size=cfg["batch_size"],
            optimizer=ckpt.optimizer,
            schedule=sched,
            warmup=warmup,
            augment=None if aug is None else Augment(aug["max_shift"], aug["max_rotation"]),
            eval_sample=cfg["eval_sample"],
            seed=cfg["seed"],
            log_every=cfg["log_every"],
            limit_batches=cfg["limit_batches"],
            **kwargs,
        )
        trainer.optimizer_name = cfg["optimizer"]
        trainer.base_lr = float(cfg["optimizer_state"]["lr"])
        n_train = meta["data"].get("n_train")
        if n_train != len(trainer.t_train):
            raise ValueError(
                f"{checkpoint}: the run trained on {n_train} images, the data given has "
                f"{len(trainer.t_train)}; resume with the same data set"
            )
        trainer.epoch, trainer.batch = int(pos["epoch"]), int(pos["batch"])
        trainer.iteration = int(pos["iteration"])
        trainer._partial = _EpochSums(**meta["partial"])
        trainer.history = list(meta["history"])
        trainer.iteration_losses = [float(v) for v in meta["iteration_losses"]]
        trainer.elapsed = float(meta["elapsed"])
        trainer._resumed_from = str(checkpoint)
        trainer._good_checkpoint = checkpoint
        return trainer

    # -- the loop -------------------------------------------------------------------------------

    def _session_seconds(self) -> float:
        start = getattr(self, "_session_start", None)
        return 0.0 if start is None else time.perf_counter() - start

    def _lr_at(self, epoch: int, batch: int) -> float:
        if self.schedule is None:
            return self.base_lr
        return float(self.schedule(self.base_lr, epoch + batch / self.batches_per_epoch))

    def fit(self) -> TrainResult:
        """Train from the current position to ``epochs``; returns a TrainResult.

        After every epoch: evaluation, the history line, ``checkpoint.npz`` and ``log.json``.
        At the end: the report on the whole test set, ``model.npz`` and the plots. On Ctrl-C
        the last completed iteration is checkpointed and TrainingInterrupted is raised. When a
        batch's loss, an epoch's train or test loss, or a parameter is not finite,
        TrainingDiverged is raised: the last good checkpoint is kept, nothing is saved from
        the diverged state, and log.json says "diverged".
        """
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._session_start = time.perf_counter()
        self.elapsed_before = self.elapsed
        self._status = "running"
        self._in_step = False
        interrupted = False
        with _StopFlag() as stop:
            self._stop = stop
            try:
                interrupted = not self._fit_epochs()
            except KeyboardInterrupt:
                if self._in_step:
                    # Interrupted inside an update (a second Ctrl-C): the model is half-updated,
                    # so keep the last checkpoint rather than saving this state.
                    raise TrainingInterrupted(
                        "training aborted during an update; the last checkpoint is kept",
                        self._existing_checkpoint(),
                    ) from None
                interrupted = True  # between iterations: the state is consistent
            except TrainingDiverged:
                self._status = "diverged"
                if self.out_dir is not None:
                    self._write_log()  # the history up to the last good epoch, and why it ended
                raise
        if interrupted:
            self._interrupt()
        return self._finish()

    def _fit_epochs(self) -> bool:
        """Run the remaining epochs, saving each once it is complete; False if stopped by
        Ctrl-C between iterations."""
        while self.epoch < self.epochs:
            if not self._run_epoch():
                return False
            self.epoch += 1
            self.batch = 0
            self._partial = _EpochSums()
            self._save_state()
        return True

    def _existing_checkpoint(self) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / CHECKPOINT_NAME
        return path if path.exists() else None

    def _interrupt(self) -> None:
        self._status = "interrupted"
        path = None
        if self.out_dir is not None:
            path = self._save_state()
        where = f"; checkpoint saved to {path}" if path else ""
        raise TrainingInterrupted(
            f"interrupted at epoch {self.epoch + 1}, batch {self.batch} "
            f"(iteration {self.iteration}){where}",
            path,
        )

    def _run_epoch(self) -> bool:
        """Run the rest of the current epoch and its evaluation; False if stopped by Ctrl-C."""
        epoch, n_batches = self.epoch, self.batches_per_epoch
        self.loader.set_epoch(epoch)
        batches = iter(self.loader)
        recent: collections.deque[float] = collections.deque(maxlen=_RECENT_BATCHES)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=n_batches,
                initial=self.batch,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                unit="batch",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
        self._in_step = False
        try:
            for i, (xb, tb) in enumerate(batches):
                if i >= n_batches:
                    break
                if i < self.batch:
                    continue  # resumed mid-epoch: these batches were done before
                t0 = time.perf_counter()
                lr = self._lr_at(epoch, i)
                self._in_step = True
                self.optimizer.lr = lr
                loss, grads = self.model.loss_and_gradient(xb, tb)
                self.optimizer.update(self.model.params, grads)
                self._in_step = False
                correct = int((self.model.last_layer.y.argmax(axis=1) == tb).sum())
                self.batch = i + 1
                self.iteration += 1
                self._partial.add(loss, correct, len(tb), time.perf_counter() - t0)
                if (self.iteration - 1) % self.log_every == 0:
                    self.iteration_losses.append(float(loss))
                recent.append(correct / len(tb))
                if not math.isfinite(loss):
                    raise self._diverged(f"loss {loss}", f"epoch {epoch + 1}, batch {i + 1}")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(
                        f"loss {self._partial.mean_loss:.4f}  "
                        f"acc {100 * sum(recent) / len(recent):.2f}%  "
                        f"{self._partial.images_per_s:.0f} img/s",
                        refresh=False,
                    )
                info = {
                    "epoch": epoch,
                    "batch": i,
                    "iteration": self.iteration,
                    "loss": loss,
                    "lr": lr,
                }
                for callback in self.callbacks:
                    callback(self, info)
                if self._stop.requested:
                    return False
        finally:
            if bar is not None:
                bar.close()
            if isinstance(batches, Generator):
                batches.close()

        t0 = time.perf_counter()
        x_eval, t_eval = self.x_test, self.t_test
        if self.eval_index is not None:
            x_eval, t_eval = x_eval[self.eval_index], t_eval[self.eval_index]
        result = evaluate(self.model, x_eval, t_eval, should_stop=lambda: self._stop.requested)
        if result is None:
            return False
        p = self._partial
        for name, value in (("train loss", p.mean_loss), ("test loss", result.loss)):
            if not math.isfinite(value):
                raise self._diverged(f"{name} {value}", f"the end of epoch {epoch + 1}")
        self._check_params()  # a finite loss can come just before the update that overflowed
        if self.eval_index is None:
            self._last_full_eval = (self.iteration, result)
        record = {
            "epoch": epoch + 1,
            "iterations": self.iteration,
            "train_loss": p.mean_loss,
            "train_acc": p.accuracy,
            "test_loss": result.loss,
            "test_acc": result.accuracy,
            "test_n": len(t_eval),
            "lr": self._lr_at(epoch, n_batches),
            "train_seconds": p.seconds,
            "eval_seconds": time.perf_counter() - t0,
            "images_per_s": p.images_per_s,
            "elapsed": self.elapsed_before + self._session_seconds(),
        }
        self.history.append(record)
        if self.verbose:
            self._print(_epoch_line(record, self.epochs))
        return True

    def _print(self, text: str) -> None:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def _diverged(self, what: str, where: str) -> TrainingDiverged:
        kept = self._good_checkpoint
        return TrainingDiverged(
            f"training diverged: {what} at {where} (try a lower learning rate than "
            f"{self.base_lr:g}); no model file written, "
            + (f"the last good checkpoint is {kept}" if kept else "no checkpoint was written"),
            kept,
        )

    def _check_params(self) -> None:
        """Every parameter finite, or TrainingDiverged: a state is never saved otherwise."""
        for name, value in self.model.params.items():
            if not np.isfinite(value).all():
                where = f"epoch {self.epoch + 1}, batch {self.batch} (iteration {self.iteration})"
                raise self._diverged(f"parameter {name} is not finite", where)

    def _save_state(self) -> Path | None:
        if self.out_dir is None:
            return None
        self._check_params()
        path = self.save_checkpoint()
        self._good_checkpoint = path
        self._write_log()
        return path

    def _write_log(self, report: dict[str, Any] | None = None, files: dict | None = None) -> None:
        assert self.out_dir is not None
        log = {
            "fastcnn_log": 1,
            "status": self._status,
            "command": self.command,
            "resumed_from": self._resumed_from,
            "config": self.config(),
            "machine": machine(),
            "data": self.source_info,
            "position": {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration},
            "wall_time": self.elapsed_before + self._session_seconds(),
            "epochs": self.history,
            "iterations": {"every": self.log_every, "loss": self.iteration_losses},
            "report": report,
            "files": files or {},
        }
        _write_atomic(self.out_dir / LOG_NAME, json.dumps(log, indent=1) + "\n")

    def _finish(self) -> TrainResult:
        self._check_params()  # e.g. resumed from a checkpoint of a finished run: no bad model
        last = getattr(self, "_last_full_eval", None)
        if last is not None and last[0] == self.iteration:
            final = last[1]
        else:
            final = evaluate(self.model, self.x_test, self.t_test)
            assert final is not None
        report = classification_report(self.t_test, final.predictions, self.model.output_size)
        report["loss"] = final.loss
        self._status = "finished"
        self.elapsed = self.elapsed_before + self._session_seconds()
        files: dict[str, str] = {}
        if self.out_dir is not None:
            self.model.save(self.out_dir / MODEL_NAME)
            files["model"] = str(self.out_dir / MODEL_NAME)
            files["checkpoint"] = str(self.out_dir / CHECKPOINT_NAME)
            if have_matplotlib():
                plot_curves(self.history, self.iteration_losses, self.log_every,
                            self.batches_per_epoch, self.out_dir / CURVES_NAME)  # fmt: skip
                plot_misclassified(self.x_test, self.t_test, final.proba,
                                   self.out_dir / MISCLASSIFIED_NAME)  # fmt: skip
                files["curves"] = str(self.out_dir / CURVES_NAME)
                files["misclassified"] = str(self.out_dir / MISCLASSIFIED_NAME)
            files["log"] = str(self.out_dir / LOG_NAME)
            self._write_log(report, files)
        if self.verbose:
            self._print("\n" + format_report(report))
            if self.out_dir is not None:
                if not have_matplotlib():
                    self._print(
                        "(plots skipped: matplotlib is not installed; pip install matplotlib)"
                    )
                self._print("\nwrote:\n" + "\n".join(f"  {k:<14}{v}" for k, v in files.items()))
        return TrainResult(
            model=self.model,
            history=list(self.history),
            iteration_losses=np.asarray(self.iteration_losses),
            report=report,
            seconds=self.elapsed,
            files=files,
        )


@dataclass
class _EpochSums:
    """Running sums over the batches of the current epoch."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    batches: int = 0
    seconds: float = 0.0

    def add(self, loss: float, correct: int, n: int, seconds: float) -> None:
        self.loss_sum += float(loss)
        self.correct += correct
        self.seen += n
        self.batches += 1
        self.seconds += seconds

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
        }


def _epoch_line(r: Mapping[str, Any], epochs: int) -> str:
    width = len(str(epochs))
    return (
        f"epoch {r['epoch']:>{width}}/{epochs}  train loss {r['train_loss']:.4f} "
        f"acc {100 * r['train_acc']:6.2f}%  test loss {r['test_loss']:.4f} "
        f"acc {100 * r['test_acc']:6.2f}%  lr {r['lr']:.3g}  "
        f"{r['train_seconds']:.1f}+{r['eval_seconds']:.1f} s  {r['images_per_s']:.0f} img/s"
    )


def _source_from_meta(checkpoint: Path, info: Mapping[str, Any]) -> MNISTSource:
    from fastcnn.datasets import EMBEDDED_DIR, mnist_source

    kind = info.get("kind")
    if kind == "embedded":
        return MNISTSource("embedded", EMBEDDED_DIR)
    if kind == "full":
        directory = info.get("directory")
        if directory and Path(directory).is_dir():
            return mnist_source(directory)
        return mnist_source(subset="full")
    raise ValueError(
        f"{checkpoint}: the run trained on arrays given in Python (not MNIST by name); "
        "pass the same data to resume it"
    )


def _positive_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Trainer: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"Trainer: {name} must be >= {low}, got {value}")
    return int(value)


def _check_data(data: Any, model: _models.Model) -> Data:
    try:
        (x_train, t_train), (x_test, t_test) = data
    except (TypeError, ValueError):
        raise TypeError(
            "Trainer: data must be ((x_train, t_train), (x_test, t_test)) or an MNISTSource"
        ) from None
    c, h, w = model.input_dim
    out = []
    for split, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
        x, t = np.asarray(x), np.asarray(t)
        if x.ndim == 2 and x.shape[1] == c * h * w:
            x = x.reshape(-1, c, h, w)
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise ValueError(
                f"Trainer: {split} images must be (N, {c}, {h}, {w}) or (N, {c * h * w}), "
                f"got {x.shape}"
            )
        if t.ndim != 1 or t.dtype.kind not in "iu" or len(t) != len(x):
            raise ValueError(
                f"Trainer: {split} labels must be integers (N,) with N = {len(x)}, "
                f"got {t.dtype} {t.shape}"
            )
        if len(t) == 0:
            raise ValueError(f"Trainer: the {split} set is empty")
        out.append((x.astype(model.dtype, copy=False), t.astype(np.int64, copy=False)))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib, optional). The object API with an Agg canvas: no pyplot, no global backend.
# ---------------------------------------------------------------------------------------------


def have_matplotlib() -> bool:
    """True when matplotlib can be imported (plots are then written)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(
    history: Sequence[Mapping[str, Any]],
    iteration_losses: Sequence[float],
    log_every: int,
    batches_per_epoch: int,
    path: PathLike,
) -> None:
    """Loss (train, test; iteration losses faint) and accuracy (train, test) per epoch."""
    fig = _figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    if len(iteration_losses):
        t = (np.arange(len(iteration_losses)) * log_every + 1) / batches_per_epoch
        ax_loss.plot(t, iteration_losses, color="tab:blue", alpha=0.3, lw=0.5, label="iteration")
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", color="tab:blue", label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], "s-", color="tab:orange", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (dropout on)")
    ax_acc.plot(epochs, [100 * r["test_acc"] for r in history], "s-", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path))


def plot_misclassified(
    x: np.ndarray, t: np.ndarray, proba: np.ndarray, path: PathLike, max_images: int = 36
) -> int:
    """A grid of up to ``max_images`` misclassified images labelled "true→pred (p)", the most
    confident mistakes first. Returns how many were drawn."""
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != t)
    conf = proba[wrong, pred[wrong]]
    wrong = wrong[np.argsort(-conf, kind="stable")][:max_images]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure(cols * 1.5, rows * 1.65 + 0.4)
    fig.suptitle(f"misclassified test images: {int((pred != t).sum())} of {len(t)}")
    for k in range(rows * cols):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.set_axis_off()
        if k < len(wrong):
            i = wrong[k]
            ax.imshow(x[i].reshape(x.shape[-2], x.shape[-1]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{t[i]}→{pred[i]} ({proba[i, pred[i]]:.2f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    return len(wrong)
