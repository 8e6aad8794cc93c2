"""The training settings: their defaults in one table (read by the Trainer's signature, the
CLI's options and help, and ``fastcnn train --resume``'s checks), and the arguments turned
into the objects the loop uses (the optimizer, the schedule, the augmentation), each checked
with an error naming the argument. Where a run is belongs to _state.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastcnn import optim as _optim
from fastcnn.datasets import Augment
from fastcnn.train._schedules import make_schedule

_AUGMENT = Augment()

# The published DeepConvNet recipe: 20 epochs, batch 100, Adam at its default rate (0.001),
# no schedule, no augmentation (when asked for: Augment's own shift and rotation), no weight
# decay, no clipping. "val": None holds out a twelfth of the training images for validation
# (_split.py); the recipe's published figure trains on all of them (val 0).
DEFAULTS: dict[str, Any] = {
    "model": "deep",
    "epochs": 20,
    "batch_size": 100,
    "optimizer": "adam",
    "schedule": None,
    "warmup": 0.0,
    "max_shift": _AUGMENT.max_shift,
    "max_rotation": _AUGMENT.max_rotation,
    "val": None,
    "weight_decay": 0.0,
    "clip_norm": None,
    "early_stopping": None,
    "seed": 0,
    "dtype": "float32",
    "backend": "fast",
    "log_every": 1,
}


def positive_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Trainer: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"Trainer: {name} must be >= {low}, got {value}")
    return int(value)


def optional_int(value: Any, name: str) -> int | None:
    return None if value is None else positive_int(value, name)


def real(value: Any, name: str, low: float | None = None) -> float:
    """A finite real number, > 0 (or >= ``low`` when given), or an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Trainer: {name} must be a number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) and (v >= low if low is not None else v > 0)
    if not ok:
        raise ValueError(
            f"Trainer: {name} must be a finite number "
            f"{'>= ' + format(low, 'g') if low is not None else '> 0'}, got {value}"
        )
    return v


def optimizer_class(name: str) -> tuple[str, type[_optim.Optimizer]]:
    """The optimizer a name stands for, in any case as the classic code spells them ("Adam",
    "SGD", "AdaGrad", "RMSprop", ...): (its key in fastcnn.optim.OPTIMIZERS, its class)."""
    key = name.lower()
    if key not in _optim.OPTIMIZERS:
        raise ValueError(
            f"Trainer: unknown optimizer {name!r} (known, in any case: "
            f"{', '.join(cls.__name__ for cls in _optim.OPTIMIZERS.values())})"
        )
    return key, _optim.OPTIMIZERS[key]


def make_optimizer(
    optimizer: str | _optim.Optimizer,
    lr: float | None,
    optimizer_kwargs: Mapping[str, float] | None,
    optimizer_param: Mapping[str, float] | None,
    backend: str,
) -> tuple[_optim.Optimizer, str]:
    """The optimizer and its name in fastcnn.optim.OPTIMIZERS (the class name for others).
    ``optimizer_param`` is the classic spelling of the hyperparameters, lr included
    (``{"lr": 0.001}``); ``optimizer_kwargs`` the same without the classic name."""
    if optimizer_kwargs and optimizer_param:
        raise ValueError("Trainer: give optimizer_kwargs or optimizer_param, not both")
    hyper = dict(optimizer_kwargs or optimizer_param or {})
    if lr is not None and "lr" in hyper and hyper["lr"] != lr:
        raise ValueError(f"Trainer: lr is given twice ({lr} and {hyper['lr']} in the dict)")
    if isinstance(optimizer, str):
        key, cls = optimizer_class(optimizer)
        known = ("lr", *cls.HYPER)
        unknown = sorted(str(k) for k in hyper if k not in known)
        if unknown:
            raise ValueError(
                f"Trainer: {cls.__name__} has no hyperparameters {unknown} (known: "
                f"{', '.join(known)})"
            )
        if lr is not None:
            hyper["lr"] = lr
        return cls(**hyper, backend=backend), key
    if isinstance(optimizer, _optim.Optimizer):
        if hyper:
            raise ValueError(
                "Trainer: optimizer_kwargs / optimizer_param only apply to an optimizer name"
            )
        if lr is not None:
            optimizer.lr = lr
        names = {cls: name for name, cls in _optim.OPTIMIZERS.items()}
        return optimizer, names.get(type(optimizer), type(optimizer).__name__)
    raise TypeError(
        "Trainer: optimizer must be a name or a fastcnn.optim optimizer, "
        f"got {type(optimizer).__name__}"
    )


def schedule_and_spec(
    schedule: str | _optim.Schedule | None, epochs: int, warmup: float
) -> tuple[_optim.Schedule | None, dict[str, Any] | None]:
    """The schedule object and, for a named one, its spec {"name", "warmup"} (what a
    checkpoint stores to rebuild it; None for a custom schedule object)."""
    if schedule is None or isinstance(schedule, str):
        spec = {"name": schedule or "constant", "warmup": float(warmup)}
        return make_schedule(schedule, epochs, warmup=warmup), spec
    if callable(schedule):
        return schedule, None
    raise TypeError(
        f"Trainer: schedule must be None, a name or a schedule, got {type(schedule).__name__}"
    )


def make_augment(augment: bool | Augment | None, seed: int) -> Augment | None:
    """The augmentation with the trainer's seed (one seed fixes the run), or None."""
    if augment is True:
        return Augment(seed=seed)
    if isinstance(augment, Augment):
        return Augment(augment.max_shift, augment.max_rotation, seed=seed)
    if augment not in (None, False):
        raise TypeError(f"Trainer: augment must be None, a bool or an Augment, got {augment!r}")
    return None
