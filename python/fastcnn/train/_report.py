"""The classification report: accuracy, per-class precision / recall / F1 / support and the
confusion matrix of predicted labels, as JSON types and as a text table. It computes from
labels only; running a model to get them is _evaluate.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def classification_report(
    y_true: Any, y_pred: Any, n_classes: int, classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / F1 / support and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class i predicted as j. A ratio whose
    denominator is 0 (a class never predicted, or absent from y_true) is reported as 0.0.
    ``macro`` averages the per-class values over all n_classes classes. ``classes``: the
    name of each class, kept in the report (``format_report`` prints them). Plain JSON types.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"classification_report: n_classes must be an int, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"classification_report: n_classes must be >= 1, got {n_classes}")
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            "classification_report: y_true and y_pred must be 1-D of the same length, got "
            f"shapes {y_true.shape} and {y_pred.shape}"
        )
    if y_true.size == 0:
        raise ValueError("classification_report: no samples")
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != n_classes:
            raise ValueError(
                f"classification_report: {len(classes)} class names for {n_classes} classes"
            )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.dtype.kind not in "iu":
            raise TypeError(f"classification_report: {name} must hold integers, got {y.dtype}")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"classification_report: {name} must be in [0, {n_classes}), "
                f"got values in [{y.min()}, {y.max()}]"
            )
    n = int(n_classes)
    confusion = np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros(n), where=den > 0)

    precision = ratio(tp, predicted)
    recall = ratio(tp, support)
    f1 = ratio(2 * precision * recall, precision + recall)
    report: dict[str, Any] = {
        "n": int(y_true.size),
        "accuracy": float(tp.sum() / y_true.size),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "confusion": confusion.tolist(),
    }
    if classes is not None:
        report["classes"] = classes
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a compact text table: per-class precision/recall/F1/support, then the
    confusion matrix (rows: true class, columns: predicted); each class named by its number
    and, when the report holds class names other than the numbers, its name. A report of the
    accuracy alone (a model without predict(x) has no per-sample predictions) is its first line."""
    head = (
        f"test accuracy {100 * report['accuracy']:.2f} % "
        f"({round(report['accuracy'] * report['n'])} / {report['n']})"
    )
    if "support" not in report:
        return head + "\n(no per-class report: the model has no predict(x))"
    n = len(report["support"])
    names = [str(c) for c in report.get("classes") or range(n)]
    named = names != [str(c) for c in range(n)]  # digits need no second column
    width = max(5, *(len(name) for name in names)) if named else 5
    label = [f"{c:>5}  {names[c]:<{width}}" if named else f"{c:>5}" for c in range(n)]
    pad = " " * (len(label[0]) - 5)
    lines = [
        head,
        "",
        f"class{pad}  precision  recall     f1  support",
    ]
    for c in range(n):
        lines.append(
            f"{label[c]}  {report['precision'][c]:9.4f}  {report['recall'][c]:6.4f}  "
            f"{report['f1'][c]:5.4f}  {report['support'][c]:7d}"
        )
    m = report["macro"]
    lines.append(
        f"macro{pad}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:5.4f}  {report['n']:7d}"
    )
    cell = max(4, len(str(max(max(row) for row in report["confusion"]))) + 1)
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(f"     {pad}" + "".join(f"{c:>{cell}}" for c in range(n)))
    for c, row in enumerate(report["confusion"]):
        lines.append(label[c] + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
