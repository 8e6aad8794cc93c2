"""What a run ends with: the test set evaluated once (the report), the best validation epoch's
model tested too when it was kept, model.npz, the plots, and the last log; and the names of
the files a run writes. How the run got there is the Trainer's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fastcnn import models as _models
from fastcnn.train import _checkpoint
from fastcnn.train._evaluate import EvalResult, evaluate
from fastcnn.train._plots import have_matplotlib, plot_curves, plot_misclassified
from fastcnn.train._report import classification_report, format_report
from fastcnn.train._results import TrainResult

if TYPE_CHECKING:  # pragma: no cover
    from fastcnn.train._trainer import Trainer

CHECKPOINT_NAME = _checkpoint.CHECKPOINT_NAME
MODEL_NAME = "model.npz"
BEST_NAME = "best.npz"
LOG_NAME = "log.json"
EPOCHS_CSV_NAME = "epochs.csv"
CURVES_NAME = "curves.png"
MISCLASSIFIED_NAME = "misclassified.png"


def finish(trainer: Trainer) -> TrainResult:
    """Test the model (once: the per-epoch test evaluation is reused when it was of the whole
    test set after the last step), write the final files and the log, print the report."""
    trainer._check_params()  # e.g. resumed from a checkpoint of a finished run: no bad model
    last = trainer.session.last_full_eval
    final = last[1] if last is not None and last[0] == trainer.state.iteration else None
    if final is None:
        final = trainer.evaluate_set(trainer.x_test, trainer.t_test)
        assert final is not None
    report = _report(final, trainer.t_test, trainer.source_info.get("classes"))
    stop = trainer.early_stop()
    if stop is not None:
        report["early_stop"] = stop
    best = _best_report(trainer)
    if best is not None:
        report["best"] = best
    trainer.session.status = "finished"
    files: dict[str, str] = {}
    if trainer.out_dir is not None:
        files = _write_files(trainer, final.proba)
        trainer._write_log(report, files)
    if trainer.verbose:
        _print_end(trainer, report, files)
    return TrainResult(
        model=trainer.model,
        history=list(trainer.state.history),
        iteration_losses=np.asarray(trainer.state.iteration_losses),
        report=report,
        seconds=trainer.wall_time(),
        files=files,
    )


def _report(result: EvalResult, t: np.ndarray, classes: Any) -> dict[str, Any]:
    if result.proba is not None:
        report = classification_report(t, result.predictions, result.proba.shape[1], classes)
    else:  # an object without predict(x): its own accuracy only
        report = {"n": len(t), "accuracy": result.accuracy}
    report["loss"] = result.loss
    return report


def _best_report(trainer: Trainer) -> dict[str, Any] | None:
    """The kept best epoch: its validation figures, its file and (for a fastcnn model, which
    the file rebuilds) its test loss and accuracy."""
    best = trainer.best_epoch()
    if not trainer.save_best or best is None or trainer.out_dir is None:
        return None
    path = trainer.out_dir / BEST_NAME
    out: dict[str, Any] = {
        "epoch": best["epoch"],
        "val_loss": best["val_loss"],
        "val_acc": best["val_acc"],
        "file": str(path),
    }
    if trainer.net.fastcnn:
        model = _models.load(path, backend=trainer.net.backend)
        result = evaluate(model, trainer.x_test, trainer.t_test)
        assert result is not None
        out |= {"test_loss": result.loss, "test_acc": result.accuracy}
    return out


def eval_labels(trainer: Trainer) -> dict[str, str]:
    """What each per-epoch evaluation ran on, as the plots and the run header name it:
    {"val": "validation (5,000)", "test": "test sample of 1,000", ...}."""
    names = {"val": "validation", "test": "test"}
    labels = {}
    for key, (_, t) in trainer.eval_sets.items():
        whole = len(trainer.t_val if key == "val" else trainer.t_test)
        labels[key] = (
            f"{names[key]} sample of {len(t):,}" if len(t) < whole else f"{names[key]} ({whole:,})"
        )
    return labels


def run_title(trainer: Trainer) -> str:
    """The run in one line: model, data, optimizer, learning rate, schedule, batch."""
    data = trainer.source_info.get("title", "arrays")
    spec = trainer.schedule_spec
    schedule = "custom schedule" if spec is None else f"schedule {spec['name']}"
    if spec is not None and spec.get("warmup"):
        schedule += f" (warm-up {spec['warmup']:g} epochs)"
    extras = [", augmented" if trainer.augment is not None else ""]
    if trainer.weight_decay:
        extras.append(f", weight decay {trainer.weight_decay:g}")
    return (
        f"{trainer.net.name} on {data}{''.join(extras)}: {trainer.optimizer_name} lr "
        f"{trainer.base_lr:g}, {schedule}, batch {trainer.batch_size}"
    )


def _write_files(trainer: Trainer, proba: np.ndarray | None) -> dict[str, str]:
    """model.npz and the plots; returns name -> path of every file of the run."""
    out = trainer.out_dir
    assert out is not None
    _checkpoint.save_model(trainer, out / MODEL_NAME)
    files = {"model": str(out / MODEL_NAME), "checkpoint": str(out / CHECKPOINT_NAME)}
    if trainer.save_best and (out / BEST_NAME).exists():
        files["best"] = str(out / BEST_NAME)
    if have_matplotlib():
        s = trainer.state
        plot_curves(s.history, s.iteration_losses, trainer.log_every, trainer.batches_per_epoch,
                    out / CURVES_NAME, title=run_title(trainer),
                    dropout=bool(getattr(trainer.model, "has_dropout", False)),
                    eval_labels=eval_labels(trainer))  # fmt: skip
        files["curves"] = str(out / CURVES_NAME)
        if proba is not None:
            plot_misclassified(trainer.x_test, trainer.t_test, proba, out / MISCLASSIFIED_NAME,
                               classes=trainer.source_info.get("classes"))  # fmt: skip
            files["misclassified"] = str(out / MISCLASSIFIED_NAME)
    files["log"] = str(out / LOG_NAME)
    files["epochs_csv"] = str(out / EPOCHS_CSV_NAME)
    return files


def _print_end(trainer: Trainer, report: dict[str, Any], files: dict[str, str]) -> None:
    write = trainer.display.write
    stop = report.get("early_stop")
    if stop is not None:
        write(
            f"stopped early after epoch {stop['after_epoch']}: the validation loss has not "
            f"improved for {stop['patience']} epochs (best: epoch {stop['best_epoch']})"
        )
    write("\n" + format_report(report))
    best = report.get("best")
    if best is not None:
        tested = (
            f": test loss {best['test_loss']:.4f}, accuracy {100 * best['test_acc']:.2f} %"
            if "test_acc" in best
            else ""
        )
        write(f"best validation epoch {best['epoch']} (loss {best['val_loss']:.4f}){tested}")
    if trainer.out_dir is not None:
        if not have_matplotlib():
            write("(plots skipped: matplotlib is not installed; pip install matplotlib)")
        write("\nwrote:\n" + "\n".join(f"  {k:<14}{v}" for k, v in files.items()))
