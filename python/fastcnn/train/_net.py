"""The trainer's view of a network, one interface for two kinds: a fastcnn model (any
Sequential, the built-in ones and the user's) as itself, and any other object with the classic
protocol that the classic book's Trainer uses — a ``params`` dict of float arrays (updated in
place), ``gradient(x, t)`` (a dict keyed like params), ``loss(x, t)`` and ``accuracy(x, t)``;
``predict(x)`` is used when it exists. How such an object is saved is _checkpoint.py's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

from fastcnn import models as _models

CLASSIC_PROTOCOL = ("params", "gradient", "loss", "accuracy")


class FastcnnNet:
    """A fastcnn model: one fused forward + backward per step, logits for evaluation, files
    that hold the architecture."""

    fastcnn = True

    def __init__(self, model: _models.Model) -> None:
        self.model = model
        self.name = model.name
        self.params = model.params
        self.dtype = model.dtype
        self.backend = model.backend

    def describe(self) -> str:
        m = self.model
        return f"{m.name} ({m.num_params():,} params, {m.dtype.name}), backend {m.backend}"

    def step(
        self, x: np.ndarray, t: np.ndarray, rows: tuple[int, int] | None = None
    ) -> tuple[float, dict[str, np.ndarray], int]:
        """(loss, grads, correct) of one training batch, before the update. ``rows`` (lo, n):
        where the batch sits in a global one; one process always has the whole batch."""
        loss, grads = self.model.loss_and_gradient(x, t)
        correct = int((self.model.last_layer.y.argmax(axis=1) == t).sum())
        return loss, grads, correct

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def shape_data(self, x: np.ndarray, split: str) -> np.ndarray:
        c, h, w = self.model.input_dim
        if x.ndim == 2 and x.shape[1] == c * h * w:
            x = x.reshape(-1, c, h, w)
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise ValueError(
                f"Trainer: {split} images must be (N, {c}, {h}, {w}) or (N, {c * h * w}), "
                f"got {x.shape}"
            )
        return x


class ClassicNet:
    """An object with the classic protocol. Each step costs what the protocol offers: its own
    ``loss`` (a forward), ``predict`` or ``accuracy`` for the batch's correct count (a
    forward), then ``gradient`` (a forward and a backward)."""

    fastcnn = False

    def __init__(self, model: Any) -> None:
        self.model = model
        name = getattr(model, "name", None)
        self.name = name if isinstance(name, str) and name else type(model).__name__
        self.params: Mapping[str, np.ndarray] = model.params
        dtypes = {v.dtype for v in self.params.values()}
        self.dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)
        self.backend = "fast"
        predict = getattr(model, "predict", None)
        self._predict = predict if callable(predict) else None

    def describe(self) -> str:
        n = sum(math.prod(v.shape) for v in self.params.values())
        return f"{self.name} ({n:,} params, {self.dtype.name}; not a fastcnn model)"

    def step(
        self, x: np.ndarray, t: np.ndarray, rows: tuple[int, int] | None = None
    ) -> tuple[float, dict[str, np.ndarray], int]:
        loss = float(self.model.loss(x, t))
        if self._predict is not None:
            correct = int((np.asarray(self._predict(x)).argmax(axis=1) == t).sum())
        else:
            correct = round(float(self.model.accuracy(x, t)) * len(t))
        return loss, self.model.gradient(x, t), correct

    def scores(self, x: np.ndarray) -> np.ndarray | None:
        return None if self._predict is None else np.asarray(self._predict(x))

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return float(self.model.loss(x, t))

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        return float(self.model.accuracy(x, t))

    def shape_data(self, x: np.ndarray, split: str) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"Trainer: {split} images must be (N, ...), got {x.shape}")
        return x  # as given: the object decides what shapes it takes


Net = Union[FastcnnNet, ClassicNet]


def as_net(model: Any, where: str = "Trainer") -> Net:
    """``model`` seen through the interface above, or TypeError saying what it lacks."""
    if isinstance(model, _models.Model):
        return FastcnnNet(model)
    missing = [
        a for a in CLASSIC_PROTOCOL if not hasattr(model, a) or
        (a != "params" and not callable(getattr(model, a)))
    ]  # fmt: skip
    params = getattr(model, "params", None)
    if not missing and (not isinstance(params, Mapping) or not params):
        missing.append("params (a non-empty dict of arrays)")
    if missing:
        raise TypeError(
            f"{where}: model must be a fastcnn model or an object with the classic protocol "
            f"(a params dict of arrays, gradient(x, t), loss(x, t), accuracy(x, t)); "
            f"{type(model).__name__} lacks {', '.join(missing)}"
        )
    assert isinstance(params, Mapping)
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{where}: the keys of model.params must be names (str), got {key!r}")
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise TypeError(
                f"{where}: model.params[{key!r}] must be a float numpy array (it is updated in "
                f"place), got {type(value).__name__}"
                + (f" of {value.dtype}" if isinstance(value, np.ndarray) else "")
            )
    return ClassicNet(model)
