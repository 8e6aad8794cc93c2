"""Evaluation: a model's loss, accuracy and class probabilities on a set, in inference mode and
in batches, stoppable between batches; for an object with the classic protocol, what its own
calls give. What the numbers are reported as is _report.py's;
where the test set comes from, _data.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastcnn.train._net import ClassicNet, as_net


@dataclass
class EvalResult:
    """Results on a set: the mean loss, the accuracy and the class probabilities (N, M).

    For a fastcnn model: inference mode, the loss the softmax cross-entropy of the logits. For
    an object with the classic protocol: the loss its own ``loss(x, t)`` gives; ``proba`` the
    softmax of its ``predict(x)`` scores (its rows as they are when they already are
    probabilities), or None when it has no ``predict`` (the accuracy is then its own
    ``accuracy(x, t)``, and there are no per-sample predictions)."""

    loss: float
    accuracy: float
    proba: np.ndarray | None

    @property
    def predictions(self) -> np.ndarray:
        if self.proba is None:
            raise ValueError("no predictions: the model has no predict(x)")
        return self.proba.argmax(axis=1)


def _softmax(scores: np.ndarray, maybe_proba: bool) -> np.ndarray:
    """Softmax rows in float64; with ``maybe_proba`` (a foreign predict) rows that already are
    probabilities are kept as they are."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"evaluate: predict(x) must give (N, classes) scores, got {s.shape}")
    if maybe_proba and (s >= 0).all() and np.allclose(s.sum(axis=1), 1.0, atol=1e-6):
        return s  # already probabilities (a predict that ends in a softmax)
    s = s - s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s


def proba_loss(proba: np.ndarray, t: np.ndarray) -> float:
    """The mean cross-entropy of class probabilities ``proba`` (N, M) for labels ``t``."""
    n = len(t)
    return float(-np.log(np.maximum(proba[np.arange(n), t], 1e-300)).mean())


def evaluate(
    model: Any,
    x: np.ndarray,
    t: np.ndarray,
    batch_size: int = 500,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult | None:
    """Loss, accuracy and probabilities of ``model`` (a fastcnn model, or an object with the
    classic protocol: see EvalResult) on (x, t), in batches. Returns None when
    ``should_stop()`` turns true between batches (Ctrl-C during evaluation)."""
    net = as_net(model, "evaluate")
    n = x.shape[0]
    if n == 0:
        raise ValueError("evaluate: no samples")
    parts: list[np.ndarray] = []
    loss_sum = acc_sum = 0.0
    for i in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            return None
        xb, tb = x[i : i + batch_size], t[i : i + batch_size]
        scores = net.scores(xb)
        if scores is not None:
            parts.append(_softmax(scores, isinstance(net, ClassicNet)))
        if isinstance(net, ClassicNet):
            loss_sum += net.loss(xb, tb) * len(tb)
            if scores is None:
                acc_sum += net.accuracy(xb, tb) * len(tb)
    proba = np.concatenate(parts) if parts else None
    if proba is not None:
        if proba.shape[0] != n:
            raise ValueError(f"evaluate: predict(x) gave {proba.shape[0]} rows for {n} samples")
        accuracy = float((proba.argmax(axis=1) == t).mean())
    else:
        accuracy = acc_sum / n
    if isinstance(net, ClassicNet):
        loss = loss_sum / n
    else:
        assert proba is not None
        loss = proba_loss(proba, t)
    return EvalResult(loss, accuracy, proba)
