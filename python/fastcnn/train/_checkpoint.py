"""A run's checkpoints: what ``checkpoint.npz`` holds beyond the model file (the optimizer
state, the settings, the run state, the data's record) and how ``Trainer.resume`` rebuilds a
trainer from one. The file format itself is fastcnn.models'.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from fastcnn import models as _models
from fastcnn import optim as _optim
from fastcnn.datasets import Augment, MNISTSource
from fastcnn.train._data import Data, source_from_meta
from fastcnn.train._state import RunState

if TYPE_CHECKING:  # pragma: no cover
    from fastcnn.train._trainer import Trainer

PathLike = Union[str, "os.PathLike[str]"]

CHECKPOINT_NAME = "checkpoint.npz"


def save(trainer: Trainer, path: Path) -> None:
    """Write ``trainer``'s model, optimizer, settings and run state to ``path`` atomically."""
    meta = {"trainer": trainer.config(), "data": trainer.source_info}
    meta |= trainer.state.to_meta(trainer.wall_time())
    _models.save_checkpoint(path, trainer.model, trainer.optimizer, meta)


def resume(
    cls: type[Trainer],
    checkpoint: PathLike,
    data: Data | MNISTSource | None,
    backend: str,
    epochs: int | None,
    schedule: _optim.Schedule | None,
    kwargs: dict[str, Any],
) -> Trainer:
    """Trainer.resume (see there)."""
    checkpoint = Path(checkpoint)
    ckpt = _models.load_checkpoint(checkpoint, backend=backend)
    meta = ckpt.meta
    cfg = meta.get("trainer")
    if not isinstance(cfg, dict) or not isinstance(meta.get("position"), dict):
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
        data = source_from_meta(checkpoint, meta.get("data", {}))
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
    trainer.state = RunState.from_meta(meta)
    trainer.resumed_from = checkpoint
    trainer.good_checkpoint = checkpoint
    return trainer
