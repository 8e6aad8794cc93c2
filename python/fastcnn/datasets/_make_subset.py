"""Build the embedded MNIST subset in ``fastcnn/datasets/data/`` from a full MNIST directory.

The subset is committed in the source tree (see data/README.md); this maintainers' tool made it
and reproduces it byte for byte: ``python -m fastcnn.datasets._make_subset /path/to/mnist``.
Selection: a fixed-seed, class-balanced draw (500 train and 100 test images per digit), kept
in the original file order, written as gzip -9 IDX files with mtime 0 so the bytes are
reproducible. Not used at run time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from fastcnn.datasets._idx import write_idx
from fastcnn.datasets._idx_sets import idx_files, read_pair
from fastcnn.datasets._mnist import EMBEDDED_DIR, MNIST_FILES, find_mnist
from fastcnn.datasets._registry import DATASETS

__all__ = ["SEED", "PER_CLASS", "select_balanced", "make_subset"]

SEED = 20261123
PER_CLASS = {"train": 500, "test": 100}  # 5,000 train / 1,000 test


def select_balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` samples of each label 0..9, drawn without replacement."""
    picks = []
    for digit in range(10):
        (where,) = np.nonzero(labels == digit)
        if len(where) < per_class:
            raise ValueError(
                f"select_balanced: only {len(where)} samples of digit {digit}, need {per_class}"
            )
        picks.append(rng.choice(where, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def make_subset(
    source_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] = EMBEDDED_DIR
) -> dict[str, Path]:
    """Write the subset's four .gz files into ``out_dir``; returns role -> path written."""
    files, _ = idx_files(DATASETS["mnist"], find_mnist(source_dir, download=False))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    written: dict[str, Path] = {}
    for split in ("train", "test"):
        images, labels = read_pair(
            DATASETS["mnist"], "make_subset", split, files[f"{split}_images"],
            files[f"{split}_labels"],
        )  # fmt: skip
        sel = select_balanced(labels, PER_CLASS[split], rng)
        for role, array in ((f"{split}_images", images[sel]), (f"{split}_labels", labels[sel])):
            written[role] = write_idx(out / f"{MNIST_FILES[role]}.gz", array)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", help="directory holding the full MNIST (raw or .gz)")
    parser.add_argument("--out", default=str(EMBEDDED_DIR), help="output directory")
    args = parser.parse_args(argv)
    for role, path in make_subset(args.source_dir, args.out).items():
        print(f"{role:13s} {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
