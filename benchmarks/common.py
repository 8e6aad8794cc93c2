"""Helpers shared by the benchmark files: best-of-N timing and table printing.

They are fastcnn._bench's (the implementation behind `fastcnn bench`), so the benchmark
scripts and the command time things the same way.
"""

from __future__ import annotations

import sys

from fastcnn._bench import _table, best_time

__all__ = ["best_time", "print_table"]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    _table(header, rows, sys.stdout)
