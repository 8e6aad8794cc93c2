"""Evaluation: a model's loss, accuracy and class probabilities on a set, in inference mode and
in batches, stoppable between batches. What the numbers are reported as is _report.py's;
where the test set comes from, _data.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastcnn import models as _models


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
