"""The Trainer: mini-batch training with per-epoch evaluation, checkpoints and the run log, of
a fastcnn model or of any object with the classic protocol (_net.py).

The loop itself, and the decisions around it: when to evaluate, save, stop (Ctrl-C) or give
up (a loss or parameter that is not finite). The settings are checked in _settings.py, the
run state is _state.py's RunState, and checkpoints, the log, the report and the plots have
their own modules.
"""

from __future__ import annotations

import collections
import math
import os
import time
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from fastcnn import models as _models
from fastcnn import optim as _optim
from fastcnn.datasets import Augment, DataLoader, DatasetSource
from fastcnn.train import _checkpoint, _parallel, _settings
from fastcnn.train._data import Data, check_data, source_info
from fastcnn.train._evaluate import EvalResult, evaluate
from fastcnn.train._final import BEST_NAME, CHECKPOINT_NAME, EPOCHS_CSV_NAME, LOG_NAME, finish
from fastcnn.train._gradients import add_weight_decay, clip_by_norm, decayed_names
from fastcnn.train._log import epoch_line, write_epochs_csv, write_log
from fastcnn.train._net import as_net
from fastcnn.train._progress import Progress
from fastcnn.train._results import TrainingDiverged, TrainingInterrupted, TrainResult
from fastcnn.train._settings import DEFAULTS
from fastcnn.train._split import default_val_size, validation_split
from fastcnn.train._state import RunState, Session

PathLike = Union[str, "os.PathLike[str]"]

_RECENT_BATCHES = 50  # the progress bar's train accuracy is over this many recent batches


class Trainer:
    """Mini-batch training with per-epoch validation, checkpoints and a final test.

    ``model`` is a fastcnn model (any ``Sequential``: the built-in networks, or one built from
    the user's layers or config) or any object with the classic protocol, as the classic
    book's Trainer takes: a ``params`` dict of float arrays that an update changes in place,
    ``gradient(x, t)`` (a dict keyed like params), ``loss(x, t)`` and ``accuracy(x, t)``;
    its ``predict(x)`` scores are used for the report when it has one. What is saved for such
    an object: checkpoint.npz holds its params, the optimizer state and the run state, and
    model.npz its params — never its architecture or code, nor any state outside ``params``
    (batch-norm running statistics, its random generators and so its dropout masks). Such a
    file resumes only into the same kind of object, passed again
    (``Trainer.resume(path, model=net)``), and cannot be evaluated from the file alone. A
    warning says so once when such a trainer writes files.

    ``data`` is ``((x_train, t_train), (x_test, t_test))`` (integer labels; for a fastcnn
    model images (N, C, H, W) or flattened, for another object the shape it takes) or an
    ``DatasetSource`` (checked against the model, loaded here as (N, C, H, W), recorded in the
    log with its class names). Images are cast
    to the model's dtype (for another object: its params' dtype).

    - ``optimizer``: a name from ``fastcnn.optim.OPTIMIZERS``, in any case as the classic code
      spells them ("Adam", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop"), built with
      ``lr`` and the hyperparameters in ``optimizer_param`` (the classic spelling, lr included:
      ``{"lr": 0.001}``) or ``optimizer_kwargs`` (the same); or an optimizer object (``lr``
      overrides its rate when given).
    - ``schedule``: None, a name (see ``make_schedule``; ``warmup`` in epochs) or a schedule
      object. It is stepped every iteration with t = the fractional epoch
      (epoch + batch / batches_per_epoch), so all lengths are in epochs:
      ``optimizer.lr = schedule(base_lr, t)``.
    - ``augment``: None, True (``Augment()``'s defaults) or an ``Augment``; its seed is replaced
      by the trainer's seed so one seed fixes the run.
    - ``val``: how many training images are held out as the validation set, chosen seeded and
      class-balanced (``_split.validation_split``); None: a twelfth (5,000 of MNIST's 60,000),
      0: none, every training image is trained on. The validation set is what every epoch is
      evaluated on, what the progress line shows and what ``early_stopping`` and
      ``save_best`` choose by. The test set is evaluated once, at the end (the report), and
      after every epoch too only with ``test_each_epoch`` (recorded as test_*, apart from
      the val_* figures). The classic recipe's figure, a test accuracy after training on all
      60,000 images, is ``val=0``.
    - ``eval_sample``: evaluate each epoch on a fixed random sample of that many images of
      each per-epoch set (None: all of them). The final report always uses the whole test set.
    - ``weight_decay``: L2 weight decay lambda (0: none): lambda * W is added to the gradient
      of every weight (parameters of 2 or more dimensions, not biases), the gradient of
      lambda / 2 * sum(W**2). The losses logged are the data loss alone.
    - ``clip_norm``: clip the gradients by their global L2 norm (None: no clipping); each
      epoch's record then has the mean norm before clipping and the fraction of clipped steps.
    - ``early_stopping``: stop when the validation loss has not improved for that many epochs
      (None: run all epochs). The log says when and why.
    - ``save_best``: keep the model of the epoch with the lowest validation loss as
      ``best.npz`` (rewritten when an epoch improves on it); the report then also gives its
      test accuracy. ``model.npz`` is always the last epoch's.
    - ``out_dir``: where ``checkpoint.npz`` (after every epoch), ``log.json`` and
      ``epochs.csv`` (rewritten after every epoch), ``model.npz`` and the plots (at the end)
      go; None writes nothing.
    - ``log_every``: keep the loss of every k-th iteration in the log (1: all of them).
    - ``limit_batches``: run only the first N batches of each epoch (smoke tests).
    - ``callbacks``: functions ``f(trainer, info)`` called after every iteration with
      info = {"epoch", "batch", "iteration", "loss", "lr"}.
    - ``comm``: a ``fastcnn.distributed.Communicator`` of several ranks: data-parallel
      training (_parallel.py). Every rank builds the same Trainer; each trains on its rows of
      every global batch of ``batch_size`` and evaluates its rows of each set, and all take
      the same steps. Only rank 0 writes ``out_dir`` and prints; the others ignore
      ``out_dir``, ``progress``, ``verbose`` and ``callbacks``.
    """

    def __init__(
        self,
        model: _models.Model | Any,
        data: Data | DatasetSource,
        *,
        epochs: int = DEFAULTS["epochs"],
        batch_size: int = DEFAULTS["batch_size"],
        optimizer: str | _optim.Optimizer = DEFAULTS["optimizer"],
        lr: float | None = None,
        optimizer_kwargs: Mapping[str, float] | None = None,
        optimizer_param: Mapping[str, float] | None = None,
        schedule: str | _optim.Schedule | None = DEFAULTS["schedule"],
        warmup: float = DEFAULTS["warmup"],
        augment: bool | Augment | None = None,
        val: int | None = DEFAULTS["val"],
        test_each_epoch: bool = False,
        eval_sample: int | None = None,
        weight_decay: float = DEFAULTS["weight_decay"],
        clip_norm: float | None = DEFAULTS["clip_norm"],
        early_stopping: int | None = DEFAULTS["early_stopping"],
        save_best: bool = False,
        seed: int = DEFAULTS["seed"],
        out_dir: PathLike | None = None,
        progress: bool = True,
        verbose: bool = True,
        log_every: int = DEFAULTS["log_every"],
        limit_batches: int | None = None,
        callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
        command: Sequence[str] | None = None,
        comm: Any = None,
    ) -> None:
        self.comm = comm if comm is not None and comm.size > 1 else None
        if self.comm is not None and not self.comm.is_root:
            out_dir, progress, verbose, callbacks = None, False, False, ()
        self.net: Any = as_net(model)
        self.model = model
        self.epochs = _settings.positive_int(epochs, "epochs")
        self.batch_size = _settings.positive_int(batch_size, "batch_size")
        self.seed = _settings.positive_int(seed, "seed", low=0)
        self.log_every = _settings.positive_int(log_every, "log_every")
        self.limit_batches = _settings.optional_int(limit_batches, "limit_batches")
        self.eval_sample = _settings.optional_int(eval_sample, "eval_sample")
        self.test_each_epoch = bool(test_each_epoch)
        self.weight_decay = _settings.real(weight_decay, "weight_decay", low=0.0)
        self.clip_norm = None if clip_norm is None else _settings.real(clip_norm, "clip_norm")
        self.early_stopping = _settings.optional_int(early_stopping, "early_stopping")
        self.save_best = bool(save_best)
        self.progress = bool(progress)
        self.verbose = bool(verbose)
        self.callbacks = list(callbacks)
        self.command = list(command) if command is not None else None
        self.out_dir = None if out_dir is None else Path(out_dir)

        self.source_info = source_info(data)
        (self.x_train, self.t_train), (self.x_test, self.t_test) = check_data(data, self.net)
        n_given = len(self.t_train)
        self.val = (
            default_val_size(n_given) if val is None else _settings.positive_int(val, "val", 0)
        )
        kept, held = validation_split(self.t_train, self.val, self.seed)
        self.x_val, self.t_val = self.x_train[held], self.t_train[held]
        if self.val:
            self.x_train, self.t_train = self.x_train[kept], self.t_train[kept]
        if not self.val and (self.early_stopping is not None or self.save_best):
            why = (
                f" (the default, a twelfth of the {n_given} training images, is 0: give val)"
                if val is None
                else ""
            )
            raise ValueError(
                "Trainer: early_stopping and save_best choose by the validation loss and need "
                f"a validation set (val > 0){why}; the test set is not used to choose"
            )
        self.source_info.update(n_train=n_given, n_val=self.val, n_test=len(self.t_test))
        self.decayed = decayed_names(self.net.params) if self.weight_decay else ()
        for name in self.decayed:  # 1e300 is a finite float64 but inf as float32: NaN weights
            dtype = self.net.params[name].dtype
            if self.weight_decay > float(np.finfo(dtype).max):
                raise ValueError(
                    f"Trainer: weight_decay={self.weight_decay:g} overflows the {dtype} "
                    f"parameter {name}"
                )

        self.optimizer, self.optimizer_name = _settings.make_optimizer(
            optimizer, lr, optimizer_kwargs, optimizer_param, self.net.backend
        )
        self.base_lr = float(self.optimizer.lr)
        self.schedule, self.schedule_spec = _settings.schedule_and_spec(
            schedule, self.epochs, warmup
        )
        self.augment = _settings.make_augment(augment, self.seed)
        shard = None if self.comm is None else (self.comm.rank, self.comm.size)
        self.loader = DataLoader(self.x_train, self.t_train, self.batch_size, shuffle=True,
                                 seed=self.seed, augment=self.augment, shard=shard)  # fmt: skip
        self.batches_per_epoch = len(self.loader)
        if self.limit_batches is not None:
            self.batches_per_epoch = min(self.batches_per_epoch, self.limit_batches)
        # The per-epoch evaluation sets, each all of its images or a fixed sample of them.
        self.eval_sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.val:
            self.eval_sets["val"] = self._sample(self.x_val, self.t_val, 4)
        if self.test_each_epoch:
            self.eval_sets["test"] = self._sample(self.x_test, self.t_test, 2)
        self.display = Progress(self.progress)

        self.state = RunState()  # where the run is: what a checkpoint restores
        self.session = Session()  # the current (or last) fit() call
        if self.comm is not None:  # mpirun passes SIGUSR1 on to every rank, not SIGINT
            self.session = Session(_parallel.STOP_SIGNALS, quiet=not self.comm.is_root)
            self.net = _parallel.DataParallelNet(self.net, self.comm, lambda: self.session.stop)
        self.resumed_from: Path | None = None
        self.good_checkpoint: Path | None = None  # the last checkpoint of this run's state
        if self.out_dir is not None and not self.net.fastcnn:
            warnings.warn(f"Trainer: {_checkpoint.params_only_note(self.net.name)}", stacklevel=2)

    def _sample(self, x: np.ndarray, t: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, t), or a fixed random sample of ``eval_sample`` of them (seeded by the run's
        seed and ``stream``, one stream per set)."""
        if self.eval_sample is None or self.eval_sample >= len(t):
            return x, t
        rng = np.random.default_rng([self.seed, stream])
        chosen = np.sort(rng.choice(len(t), self.eval_sample, replace=False))
        return x[chosen], t[chosen]

    # -- where the run is (RunState's fields, as the trainer's) -----------------------------------

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def batch(self) -> int:
        return self.state.batch

    @property
    def iteration(self) -> int:
        return self.state.iteration

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def iteration_losses(self) -> list[float]:
        return self.state.iteration_losses

    def wall_time(self) -> float:
        """Seconds of fitting in this run so far (earlier sessions of a resumed run included)."""
        return self.state.elapsed + self.session.seconds()

    # -- description ----------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The run's settings, as stored in log.json and in checkpoints (JSON types)."""
        optimizer_state = {
            k: v for k, v in self.optimizer.state_dict().items() if "/" not in k and k != "step"
        }
        aug = self.augment
        return {
            "model": self.net.name,
            "model_config": self.model.config if self.net.fastcnn else None,
            "files_hold": "the model" if self.net.fastcnn else "params only",
            "backend": self.net.backend,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer_name,
            "optimizer_state": optimizer_state | {"lr": self.base_lr},
            "schedule": self.schedule_spec or {"name": "custom", "repr": repr(self.schedule)},
            "augment": None
            if aug is None
            else {"max_shift": aug.max_shift, "max_rotation": aug.max_rotation},
            "val": self.val,
            "test_each_epoch": self.test_each_epoch,
            "eval_sample": self.eval_sample,
            "weight_decay": self.weight_decay,
            "clip_norm": self.clip_norm,
            "early_stopping": self.early_stopping,
            "save_best": self.save_best,
            "seed": self.seed,
            "log_every": self.log_every,
            "limit_batches": self.limit_batches,
        }

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self, path: PathLike | None = None) -> Path:
        """Write the current state (after the last completed iteration) to ``path``
        (default ``out_dir / checkpoint.npz``)."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("Trainer.save_checkpoint: no path and no out_dir")
            path = self.out_dir / CHECKPOINT_NAME
        path = Path(path)
        _checkpoint.save(self, path)
        return path

    @classmethod
    def resume(
        cls,
        checkpoint: PathLike,
        data: Data | DatasetSource | None = None,
        *,
        model: Any = None,
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

        ``model``: None rebuilds a fastcnn model from the checkpoint. A params-only checkpoint
        (of an object with the classic protocol) needs that object: its params are checked
        by name, shape and dtype and then overwritten in place. A fastcnn model given for a
        fastcnn checkpoint must have the checkpoint's architecture.
        """
        return _checkpoint.resume(
            cls, checkpoint, data, model, backend or "fast", epochs, schedule, kwargs
        )

    # -- the loop -------------------------------------------------------------------------------

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
        session = self.session
        if self.comm is not None:
            _parallel.start(self, self.comm)
        session.begin()
        try:
            interrupted = False
            with session.stop:
                try:
                    interrupted = not self._fit_epochs()
                except KeyboardInterrupt:
                    if session.in_step:
                        # Interrupted inside an update (a second Ctrl-C): the model is
                        # half-updated, so keep the last checkpoint rather than save this state.
                        raise TrainingInterrupted(
                            "training aborted during an update; the last checkpoint is kept",
                            self._existing_checkpoint(),
                        ) from None
                    interrupted = True  # between iterations: the state is consistent
                except TrainingDiverged:
                    session.status = "diverged"
                    if self.out_dir is not None:
                        self._write_log()  # the history up to the last good epoch, and why
                    raise
            if interrupted:
                self._interrupt()
            return self._finish()
        finally:
            self.state.elapsed += session.end()

    def _fit_epochs(self) -> bool:
        """Run the remaining epochs, saving each once it is complete; False if stopped by
        Ctrl-C between iterations."""
        while self.state.epoch < self.epochs and self.early_stop() is None:
            if not self._run_epoch():
                return False
            self.state.next_epoch()
            self._save_state()
        return True

    def best_epoch(self) -> dict[str, Any] | None:
        """The history record of the epoch with the lowest validation loss (the first of
        equals), or None without a validation set or before the first epoch."""
        records = [r for r in self.state.history if "val_loss" in r]
        return min(records, key=lambda r: r["val_loss"]) if records else None

    def early_stop(self) -> dict[str, Any] | None:
        """Why the run stops before its last epoch, or None: the validation loss has not
        improved for ``early_stopping`` epochs. Derived from the history, so a resumed run
        stops where the uninterrupted one did."""
        best = self.best_epoch()
        if self.early_stopping is None or best is None:
            return None
        last = self.state.history[-1]["epoch"]
        if last - best["epoch"] < self.early_stopping:
            return None
        return {"after_epoch": last, "best_epoch": best["epoch"], "patience": self.early_stopping}

    def _existing_checkpoint(self) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / CHECKPOINT_NAME
        return path if path.exists() else None

    def _interrupt(self) -> None:
        self.session.status = "interrupted"
        path = None
        if self.out_dir is not None:
            path = self._save_state()
        where = f"; checkpoint saved to {path}" if path else ""
        s = self.state
        raise TrainingInterrupted(
            f"interrupted at epoch {s.epoch + 1}, batch {s.batch} (iteration {s.iteration})"
            + where,
            path,
        )

    def _run_epoch(self) -> bool:
        """Run the rest of the current epoch and its evaluation; False if stopped by Ctrl-C."""
        s, session = self.state, self.session
        epoch, n_batches = s.epoch, self.batches_per_epoch
        self.loader.set_epoch(epoch)
        batches = iter(self.loader)
        recent: collections.deque[float] = collections.deque(maxlen=_RECENT_BATCHES)
        bar = self.display.epoch_bar(n_batches, s.batch, f"epoch {epoch + 1}/{self.epochs}")
        session.in_step = False
        try:
            for i, (xb, tb) in enumerate(batches):
                if i >= n_batches:
                    break
                if i < s.batch:
                    continue  # resumed mid-epoch: these batches were done before
                t0 = time.perf_counter()
                lr = self._lr_at(epoch, i)
                session.in_step = True
                self.optimizer.lr = lr
                rows = self.loader.rows(i)
                n = rows[1]  # the global batch's images (this rank's are len(tb))
                loss, grads, correct = self.net.step(xb, tb, rows)
                norm = self._update(grads)
                session.in_step = False
                s.batch = i + 1
                s.iteration += 1
                clipped = norm is not None and norm > self.clip_norm  # type: ignore[operator]
                s.partial.add(loss, correct, n, time.perf_counter() - t0, norm, clipped)
                if (s.iteration - 1) % self.log_every == 0:
                    s.iteration_losses.append(float(loss))
                recent.append(correct / n)
                if not math.isfinite(loss):
                    raise self._diverged(f"loss {loss}", f"epoch {epoch + 1}, batch {i + 1}")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(
                        f"loss {s.partial.mean_loss:.4f}  "
                        f"acc {100 * sum(recent) / len(recent):.2f}%  "
                        f"{s.partial.images_per_s:.0f} img/s",
                        refresh=False,
                    )
                info = {"epoch": epoch, "batch": i, "iteration": s.iteration, "loss": loss,
                        "lr": lr}  # fmt: skip
                for callback in self.callbacks:
                    callback(self, info)
                if session.stop.requested:
                    return False
        finally:
            if bar is not None:
                bar.close()
            if isinstance(batches, Generator):
                batches.close()
        return self._end_epoch(epoch, n_batches)

    def _update(self, grads: Mapping[str, np.ndarray]) -> float | None:
        """The optimizer step, after weight decay and clipping; returns the gradients' global
        norm before clipping when clipping (else None)."""
        if self.decayed:
            grads = add_weight_decay(self.net.params, grads, self.decayed, self.weight_decay)
        norm = None
        if self.clip_norm is not None:
            grads, norm = clip_by_norm(grads, self.clip_norm)
            if not math.isfinite(norm):  # stop before the update spreads it to every weight
                s = self.state
                raise self._diverged(
                    f"gradient norm {norm}", f"epoch {s.epoch + 1}, batch {s.batch + 1}"
                )
        self.optimizer.update(self.net.params, grads)
        return norm

    def _end_epoch(self, epoch: int, n_batches: int) -> bool:
        """Evaluate after an epoch's last batch and record its history line; False if
        stopped by Ctrl-C during the evaluation."""
        t0 = time.perf_counter()
        if self.comm is not None:
            _parallel.end_epoch(self, self.comm)
        stop = self.session.stop
        results: dict[str, EvalResult] = {}
        for key, (x, t) in self.eval_sets.items():
            result = self.evaluate_set(x, t, should_stop=lambda: stop.requested)
            if result is None:
                return False
            results[key] = result
        p = self.state.partial
        losses = {"train loss": p.mean_loss} | {f"{k} loss": r.loss for k, r in results.items()}
        for name, value in losses.items():
            if not math.isfinite(value):
                raise self._diverged(f"{name} {value}", f"the end of epoch {epoch + 1}")
        self._check_params()  # a finite loss can come just before the update that overflowed
        test = results.get("test")
        if test is not None and len(self.eval_sets["test"][1]) == len(self.t_test):
            self.session.last_full_eval = (self.state.iteration, test)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "iterations": self.state.iteration,
            "train_loss": p.mean_loss,
            "train_acc": p.accuracy,
        }
        for key, result in results.items():
            record[f"{key}_loss"] = result.loss
            record[f"{key}_acc"] = result.accuracy
            record[f"{key}_n"] = len(self.eval_sets[key][1])
        record["lr"] = self._lr_at(epoch, n_batches - 1)  # the rate of the epoch's last step
        if self.clip_norm is not None:
            record["grad_norm"] = p.mean_norm
            record["clipped"] = p.clipped / p.batches if p.batches else 0.0
        record |= {
            "train_seconds": p.seconds,
            "eval_seconds": time.perf_counter() - t0,
            "images_per_s": p.images_per_s,
            "elapsed": self.wall_time(),
        }
        self.state.history.append(record)
        if self.verbose:
            self.display.write(epoch_line(record, self.epochs))
        return True

    def evaluate_set(
        self, x: np.ndarray, t: np.ndarray, should_stop: Callable[[], bool] | None = None
    ) -> EvalResult | None:
        """``evaluate`` of the model on (x, t); on several ranks each evaluates its rows."""
        if self.comm is not None:
            return _parallel.evaluate_split(self.comm, self.model, x, t)
        return evaluate(self.model, x, t, should_stop=should_stop)

    def _diverged(self, what: str, where: str) -> TrainingDiverged:
        kept = self.good_checkpoint
        hint = f"a lower learning rate than {self.base_lr:g}"
        if self.weight_decay:
            hint += f" or weight decay than {self.weight_decay:g}"
        return TrainingDiverged(
            f"training diverged: {what} at {where} (try {hint}); no model file written, "
            + (f"the last good checkpoint is {kept}" if kept else "no checkpoint was written"),
            kept,
        )

    def _check_params(self) -> None:
        """Every parameter finite, or TrainingDiverged: a state is never saved otherwise."""
        for name, value in self.net.params.items():
            if not np.isfinite(value).all():
                s = self.state
                where = f"epoch {s.epoch + 1}, batch {s.batch} (iteration {s.iteration})"
                raise self._diverged(f"parameter {name} is not finite", where)

    def _save_state(self) -> Path | None:
        """The checkpoint and the log; at an epoch's end (no batch of the next one run yet)
        that improved on the validation loss also best.npz, written first, so a checkpoint
        never names an epoch whose best model is missing: also when a Ctrl-C interrupted
        the write after the epoch and this is the interrupted run's checkpoint."""
        if self.out_dir is None:
            return None
        self._check_params()
        best = self.best_epoch()
        if self.save_best and self.state.batch == 0 and best is self.state.history[-1]:
            _checkpoint.save_model(self, self.out_dir / BEST_NAME)
        path = self.save_checkpoint()
        self.good_checkpoint = path
        self._write_log()
        return path

    def _write_log(self, report: dict[str, Any] | None = None, files: dict | None = None) -> None:
        assert self.out_dir is not None
        s = self.state
        write_log(
            self.out_dir / LOG_NAME,
            status=self.session.status,
            command=self.command,
            resumed_from=None if self.resumed_from is None else str(self.resumed_from),
            config=self.config(),
            data=self.source_info,
            position=s.position(),
            wall_time=self.wall_time(),
            epochs=s.history,
            iterations={"every": self.log_every, "loss": s.iteration_losses},
            report=report,
            files=files or {},
        )
        write_epochs_csv(self.out_dir / EPOCHS_CSV_NAME, s.history)

    def _finish(self) -> TrainResult:
        return finish(self)
