"""Learning-rate schedules by name: what the trainer's ``schedule="cosine"`` and the CLI's
``--schedule`` stand for, with every length in epochs. The schedules themselves are
fastcnn.optim's; this module only names and sizes them.
"""

from __future__ import annotations

from fastcnn import optim as _optim

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
