"""A run's checkpoints: what ``checkpoint.npz`` holds beyond the model file (the optimizer
state, the settings, the run state, the data's record) and how ``Trainer.resume`` rebuilds a
trainer from one. A fastcnn model is saved whole (its config and params); an object with the
classic protocol by its params alone (fastcnn.models._params_file). The file formats
themselves are fastcnn.models'.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from fastcnn import models as _models
from fastcnn import optim as _optim
from fastcnn.datasets import Augment, DatasetSource
from fastcnn.models._params_file import load_params_checkpoint, save_params_checkpoint
from fastcnn.train._data import Data, source_from_meta
from fastcnn.train._net import as_net
from fastcnn.train._state import RunState

if TYPE_CHECKING:  # pragma: no cover
    from fastcnn.train._trainer import Trainer

PathLike = Union[str, "os.PathLike[str]"]

CHECKPOINT_NAME = "checkpoint.npz"


def params_only_note(name: str) -> str:
    """What is and is not saved for a network fastcnn did not build (the one-time warning)."""
    return (
        f"{name} is not a fastcnn model: its checkpoint.npz and model.npz hold its params, "
        "the optimizer state and the run state only, not its architecture or code nor any "
        "state outside params (batch-norm statistics, random generators); resume with "
        "Trainer.resume(path, model=<the same kind of network>); the files cannot be "
        "evaluated or used to predict from alone"
    )


def save(trainer: Trainer, path: Path) -> None:
    """Write ``trainer``'s model (or params), optimizer, settings and run state to ``path``
    atomically."""
    meta = {"trainer": trainer.config(), "data": trainer.source_info}
    meta |= trainer.state.to_meta(trainer.wall_time())
    net = trainer.net
    if net.fastcnn:
        _models.save_checkpoint(path, trainer.model, trainer.optimizer, meta)
    else:
        save_params_checkpoint(path, net.name, net.params, trainer.optimizer, meta)


def save_model(trainer: Trainer, path: Path) -> None:
    """The final model file: a fastcnn model whole, another object's params only."""
    net = trainer.net
    if net.fastcnn:
        trainer.model.save(path)
    else:
        save_params_checkpoint(path, net.name, net.params)


def _read(
    checkpoint: Path, model: Any, backend: str
) -> tuple[Any, _optim.Optimizer | None, dict[str, Any], Callable[[], None]]:
    """(model, optimizer, meta, restore) of a checkpoint. A fastcnn checkpoint rebuilds its
    model unless one is given; a params-only one needs the object. ``restore()`` puts the
    file's params into a ``model`` given, and is called once everything else is checked: a
    resume that fails leaves the caller's model as it was."""
    if model is not None and not isinstance(model, _models.Model):
        as_net(model, "Trainer.resume")  # the classic protocol, or a TypeError saying why not
        staged = {key: np.empty_like(value) for key, value in model.params.items()}
        try:
            optimizer, meta = load_params_checkpoint(checkpoint, staged, backend=backend)
        except _models.ModelFileError as exc:
            if "not a params-only file" not in str(exc):
                raise
            raise ValueError(
                f"{checkpoint}: holds a fastcnn model; resume it without model= (the file "
                f"rebuilds it), not into a {type(model).__name__}"
            ) from None

        def restore() -> None:
            for key, value in staged.items():
                model.params[key][...] = value

        return model, optimizer, meta, restore
    try:
        ckpt = _models.load_checkpoint(checkpoint, backend=backend)
    except _models.ParamsOnlyError:
        raise ValueError(
            f"{checkpoint}: a checkpoint of a network fastcnn did not build holds its params "
            "only, not its architecture; pass the network to resume into: "
            "Trainer.resume(path, model=net)"
        ) from None
    if model is None:
        return ckpt.model, ckpt.optimizer, ckpt.meta, lambda: None

    def restore_into_model() -> None:  # checks the architecture before changing anything
        _models.load_checkpoint(checkpoint, model, backend=model.backend)

    return model, ckpt.optimizer, ckpt.meta, restore_into_model


def _n_train(data: Any) -> int | None:
    """How many training images ``data`` has (None when it is not data: the Trainer says why)."""
    if hasattr(data, "n_train"):
        return int(data.n_train)
    try:
        return len(data[0][1])
    except (TypeError, IndexError, KeyError):
        return None


def resume(
    cls: type[Trainer],
    checkpoint: PathLike,
    data: Data | DatasetSource | None,
    model: Any,
    backend: str,
    epochs: int | None,
    schedule: _optim.Schedule | None,
    kwargs: dict[str, Any],
) -> Trainer:
    """Trainer.resume (see there)."""
    checkpoint = Path(checkpoint)
    model, optimizer, meta, restore = _read(checkpoint, model, backend)
    cfg = meta.get("trainer")
    if not isinstance(cfg, dict) or not isinstance(meta.get("position"), dict):
        raise _models.ModelFileError(
            f"{checkpoint}: not a training checkpoint (no trainer state; a model file?)"
        )
    if optimizer is None:
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
    recorded = meta.get("data", {}).get("dataset")
    if isinstance(data, DatasetSource) and recorded is not None and data.name != recorded:
        raise ValueError(
            f"{checkpoint}: the run trained on {recorded}, the data given is {data.name}; "
            "resume with the same data set"
        )
    n_train, given = meta["data"].get("n_train"), _n_train(data)
    if given is not None and n_train != given:  # before the trainer splits off a validation set
        raise ValueError(
            f"{checkpoint}: the run trained on {n_train} images, the data given has "
            f"{given}; resume with the same data set"
        )
    trainer = cls(
        model,
        data,
        epochs=epochs if epochs is not None else cfg["epochs"],
        batch_size=cfg["batch_size"],
        optimizer=optimizer,
        schedule=sched,
        warmup=warmup,
        augment=None if aug is None else Augment(aug["max_shift"], aug["max_rotation"]),
        # A checkpoint written before the validation split held out nothing and tested after
        # every epoch; one before weight decay, clipping and early stopping had none.
        val=cfg.get("val", 0),
        test_each_epoch=cfg.get("test_each_epoch", True),
        eval_sample=cfg["eval_sample"],
        weight_decay=cfg.get("weight_decay", 0.0),
        clip_norm=cfg.get("clip_norm"),
        early_stopping=cfg.get("early_stopping"),
        save_best=cfg.get("save_best", False),
        seed=cfg["seed"],
        log_every=cfg["log_every"],
        limit_batches=cfg["limit_batches"],
        **kwargs,
    )
    trainer.optimizer_name = cfg["optimizer"]
    trainer.base_lr = float(cfg["optimizer_state"]["lr"])
    restore()
    trainer.state = RunState.from_meta(meta)
    trainer.resumed_from = checkpoint
    trainer.good_checkpoint = checkpoint
    return trainer
