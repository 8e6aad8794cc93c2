"""How a run shows its progress: a bar while an epoch runs where one can be drawn — tqdm.auto's
widget in a notebook, its text bar on a terminal — and otherwise nothing but the trainer's one
line per epoch (a log file or a pipe gets whole lines, never carriage-return frames). Only the
display; what the lines say is _log.py's.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is no terminal but a widget can be drawn)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half-imported: no widget
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def bar_wanted(progress: bool) -> bool:
    """Whether a bar is drawn: asked for, and a notebook or a terminal to draw it on."""
    if not progress:
        return False
    if in_notebook():
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty())


def _tqdm() -> Any:
    """tqdm.auto's class: the notebook widget in a kernel, the text bar elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto's note when ipywidgets is missing
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    return tqdm


class Progress:
    """The display of one run: ``epoch_bar`` opens a bar for an epoch (or returns None when no
    bar is drawn), ``write`` prints a whole line (above the bar when there is one)."""

    def __init__(self, progress: bool) -> None:
        self.bar = bar_wanted(progress)

    def epoch_bar(self, total: int, initial: int, desc: str) -> Any:
        if not self.bar:
            return None
        return _tqdm()(total=total, initial=initial, desc=desc, unit="batch", file=sys.stderr,
                    leave=False, dynamic_ncols=True)  # fmt: skip

    def write(self, text: str) -> None:
        if self.bar:
            _tqdm().write(text, file=sys.stdout)
        else:
            print(text, flush=True)
