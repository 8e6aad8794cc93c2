"""The run log: ``log.json`` (rewritten atomically after every epoch: settings, machine, data,
position, per-epoch history, iteration losses, the final report, the files written), its
per-epoch figures as ``epochs.csv`` beside it (for a spreadsheet or pandas), and the one-line
summary of an epoch that the trainer prints. It records; it decides nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn._atomic import write_atomic

LOG_FORMAT = 1


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


def write_log(path: Path, **fields: Any) -> None:
    """Write log.json atomically: the format marker, then ``fields`` (status, command,
    resumed_from, config, data, position, wall_time, epochs, iterations, report, files) in
    that order, with the machine description after the config."""
    log: dict[str, Any] = {"fastcnn_log": LOG_FORMAT}
    for key, value in fields.items():
        log[key] = value
        if key == "config":
            log["machine"] = machine()
    text = json.dumps(log, indent=1) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def write_epochs_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write the per-epoch records as CSV atomically: a header of their keys (epoch,
    iterations, train_loss, ..., in the records' order), one row per epoch; floats in full
    precision (repr), so the file holds what log.json's "epochs" holds."""
    columns: dict[str, None] = {}
    for r in history:
        columns.update(dict.fromkeys(r))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in history:
        writer.writerow([repr(v) if isinstance(v := r.get(k, ""), float) else v for k in columns])
    text = out.getvalue()
    write_atomic(path, lambda f: f.write(text.encode()))


def epoch_line(r: Mapping[str, Any], epochs: int) -> str:
    """An epoch's history record as the one line the trainer prints: train figures, then
    those of each set evaluated after the epoch (validation, test) that the record has."""
    width = len(str(epochs))
    parts = [
        f"epoch {r['epoch']:>{width}}/{epochs}  train loss {r['train_loss']:.4f} "
        f"acc {100 * r['train_acc']:6.2f}%"
    ]
    for key, name in (("val", "val"), ("test", "test")):
        if f"{key}_loss" in r:
            parts.append(f"{name} loss {r[key + '_loss']:.4f} acc {100 * r[key + '_acc']:6.2f}%")
    if "grad_norm" in r:
        parts.append(f"grad norm {r['grad_norm']:.3g} ({100 * r['clipped']:.0f}% clipped)")
    parts.append(
        f"lr {r['lr']:.3g}  {r['train_seconds']:.1f}+{r['eval_seconds']:.1f} s  "
        f"{r['images_per_s']:.0f} img/s"
    )
    return "  ".join(parts)
