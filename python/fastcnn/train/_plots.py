"""Plots of a run (matplotlib, optional): the loss and accuracy curves and a grid of the most
confident mistakes. The object API with an Agg canvas: no pyplot, no global backend. Nothing
here decides when to plot (the trainer does, when have_matplotlib() is true).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def have_matplotlib() -> bool:
    """True when matplotlib can be imported (plots are then written)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(
    history: Sequence[Mapping[str, Any]],
    iteration_losses: Sequence[float],
    log_every: int,
    batches_per_epoch: int,
    path: PathLike,
    *,
    title: str = "",
    dropout: bool = False,
    eval_label: str = "test",
) -> Any:
    """Loss (train, evaluation; iteration losses faint) and error rate (train, evaluation)
    per epoch, written to ``path``; returns the figure.

    The error rate is on a log axis, so 0.7 % and 0.6 % (99.3 % and 99.4 % accuracy) are told
    apart. ``dropout``: the model has dropout, so the training curves are measured with it on
    (said in their label). ``eval_label`` names the set evaluated each epoch ("test",
    "test sample of 1,000", ...). Epoch ticks are whole numbers."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    fig = _figure(10, 4.4)
    ax_loss, ax_err = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    train_label = "train (dropout on)" if dropout else "train"
    if len(iteration_losses):
        t = (np.arange(len(iteration_losses)) * log_every + 1) / batches_per_epoch
        ax_loss.plot(t, iteration_losses, color="tab:blue", alpha=0.3, lw=0.5, label="iteration")
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", color="tab:blue",
                 label=train_label)  # fmt: skip
    ax_loss.plot(epochs, [r["test_loss"] for r in history], "s-", color="tab:orange",
                 label=eval_label)  # fmt: skip
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy loss")
    # An error of 0 cannot sit on a log axis: it is drawn at half of one error in the set.
    floor = 0.5 / max(1, min(int(r.get("test_n", 10_000)) for r in history)) * 100
    for key, marker, label in (("train_acc", "o-", train_label), ("test_acc", "s-", eval_label)):
        err = [max(100 * (1 - r[key]), floor) for r in history]
        ax_err.plot(epochs, err, marker, label=label)
    ax_err.set_yscale("log")
    ax_err.set_ylabel("error rate (%, log scale; accuracy = 100 - error)")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.7, not 7 x 10^-1
    for ax in (ax_loss, ax_err):
        lo, hi = ax.get_ylim()
        ax.yaxis.set_major_formatter(plain)  # within a decade the minor ticks carry numbers
        ax.yaxis.set_minor_formatter(plain if hi < 10 * lo else NullFormatter())
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    return fig


def plot_misclassified(
    x: np.ndarray,
    t: np.ndarray,
    proba: np.ndarray,
    path: PathLike,
    max_images: int = 36,
    classes: Sequence[str] | None = None,
) -> int:
    """A grid of up to ``max_images`` misclassified images labelled "true→pred (p)" (by
    ``classes`` names when given), the most confident mistakes first; 3-channel images in
    colour. Returns how many were drawn."""
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != t)
    conf = proba[wrong, pred[wrong]]
    wrong = wrong[np.argsort(-conf, kind="stable")][:max_images]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure(cols * 1.5, rows * 1.65 + 0.4)
    fig.suptitle(f"misclassified test images: {int((pred != t).sum())} of {len(t)}")
    for k in range(rows * cols):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.set_axis_off()
        if k < len(wrong):
            i = wrong[k]
            if x.ndim == 4 and x.shape[1] == 3:  # RGB planes (CIFAR-10)
                ax.imshow(np.clip(np.moveaxis(x[i], 0, -1), 0, 1))
            else:
                ax.imshow(x[i].reshape(x.shape[-2], x.shape[-1]), cmap="gray_r", vmin=0, vmax=1)
            true, guess = (t[i], pred[i]) if classes is None else (classes[t[i]], classes[pred[i]])
            ax.set_title(f"{true}→{guess} ({proba[i, pred[i]]:.2f})",
                         fontsize=9 if classes is None else 7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    return len(wrong)
