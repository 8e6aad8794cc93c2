"""The datasets published as four IDX files (MNIST, Fashion-MNIST, KMNIST): finding them in a
directory (each raw or .gz), downloading the missing ones, and reading a split with the
checks of its table row (image size, the most images a split may hold, the class count).

MNIST's own extras (the environment variable, the embedded subset, SHA-256 verification)
are _mnist.py's; the IDX format itself is _idx.py's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Union

import numpy as np

from fastcnn.datasets import _fetch
from fastcnn.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx, read_idx_header
from fastcnn.datasets._registry import Dataset
from fastcnn.datasets._source import DatasetSource, Split

__all__ = ["IDXSource", "download_idx", "find_idx", "idx_files"]

PathLike = Union[str, "os.PathLike[str]"]


def idx_files(dataset: Dataset, directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each role to its file in ``directory`` (``name.gz`` or ``name``); list the missing
    names (without .gz)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in dataset.files.items():
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def gz_label(name: str) -> str:
    return f"{name}[.gz]"


def download_idx(
    dataset: Dataset,
    target: Path,
    only: list[str] | None = None,
    *,
    mirrors: list[str] | tuple[str, ...] | None = None,
    progressbar: bool | None = None,
    where: str = "download",
) -> Path:
    """Download the .gz files of ``dataset`` missing from ``target`` (``only``: those names,
    without .gz), each checked against the row's MD5, from ``mirrors`` (default: the row's)."""
    if only is None:
        _, only = idx_files(dataset, target)
    files = {f"{name}.gz": dataset.md5[name] for name in only}
    return _fetch.retrieve(
        files, dataset.mirrors if mirrors is None else mirrors, target, where, progressbar
    )


def find_idx(
    dataset: Dataset,
    data_dir: PathLike | None,
    download: bool,
    *,
    where: str,
    env: str | None = None,
    mirrors: list[str] | tuple[str, ...] | None = None,
    download_where: str | None = None,
) -> Path:
    """A directory holding all four files of ``dataset``, in fastcnn's search order (see
    _fetch.find): ``data_dir``, ``$env`` (MNIST's FASTCNN_DATA_DIR), the cache, a download.
    Messages start with ``where`` (a download's with ``download_where``, default the same)."""
    return _fetch.find(
        dataset.title,
        where,
        data_dir,
        download,
        missing=lambda d: idx_files(dataset, d)[1],
        fetch=lambda cache, missing: download_idx(
            dataset, cache, missing, mirrors=mirrors, where=download_where or where
        ),
        cache=_fetch.cache_dir() / dataset.name,
        env=env,
        label=gz_label,
    )


def _check_pair(
    dataset: Dataset,
    where: str,
    split: str,
    images_path: Path,
    image_dims: tuple[int, ...],
    labels_path: Path,
    label_dims: tuple[int, ...],
) -> None:
    """Check the dims of one images/labels pair (from the headers, and again from the arrays)
    are the dataset's, within the split's size and consistent."""
    if len(image_dims) != 3:
        raise IDXError(
            f"{where}: {images_path}: expected images (magic {IMAGES_MAGIC}) but the file "
            f"holds labels (magic {LABELS_MAGIC}), shape {image_dims}"
        )
    if len(label_dims) != 1:
        raise IDXError(
            f"{where}: {labels_path}: expected labels (magic {LABELS_MAGIC}) but the file "
            f"holds images (magic {IMAGES_MAGIC}), shape {label_dims}"
        )
    size = dataset.image_shape[1:]
    if image_dims[1:] != size:
        raise IDXError(
            f"{where}: {images_path}: wrong dims: expected {size[0]}x{size[1]} "
            f"images, got images.shape={image_dims}"
        )
    most = dataset.n_train if split == "train" else dataset.n_test
    if image_dims[0] > most:
        raise IDXError(
            f"{where}: {images_path}: the header declares {image_dims[0]:,} images; "
            f"{dataset.title}'s {split} set has at most {most:,}"
        )
    if image_dims[0] != label_dims[0]:
        raise IDXError(
            f"{where}: {image_dims[0]} images in {images_path} but {label_dims[0]} "
            f"labels in {labels_path}"
        )


def read_pair(
    dataset: Dataset, where: str, split: str, images_path: Path, labels_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair of ``split`` ("train" or "test") as uint8 (N, H, W) and
    (N,), checking from the headers that it is the dataset's and consistent before reading
    any data."""
    image_dims = read_idx_header(images_path)[1]
    label_dims = read_idx_header(labels_path)[1]
    _check_pair(dataset, where, split, images_path, image_dims, labels_path, label_dims)
    images = read_idx(images_path, max_bytes=math.prod(image_dims))
    labels = read_idx(labels_path, max_bytes=math.prod(label_dims))
    # The files may have changed since their headers were read: check what was read, too.
    _check_pair(dataset, where, split, images_path, images.shape, labels_path, labels.shape)
    n = dataset.n_classes
    if labels.size and labels.max() >= n:
        raise IDXError(
            f"{where}: {labels_path}: labels must be in [0, {n}), got a maximum of {labels.max()}"
        )
    return images, labels


class IDXSource(DatasetSource):
    """A dataset of four IDX files in ``directory`` (``files``: role -> path, found there
    when not given)."""

    def __init__(
        self,
        dataset: Dataset,
        kind: str,
        directory: Path,
        reason: str = "",
        files: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(dataset, kind, directory, reason)
        if not files:
            files, missing = idx_files(dataset, self.directory)
            if missing:
                raise _fetch.DatasetNotFoundError(
                    f"{type(self).__name__}: "
                    + _fetch.missing_text(self.directory, missing, gz_label)
                )
        self.files = files

    @property
    def n_train(self) -> int:
        """Number of training images (read from the file header)."""
        return read_idx_header(self.files["train_images"])[1][0]

    @property
    def n_test(self) -> int:
        """Number of test images (read from the file header)."""
        return read_idx_header(self.files["test_images"])[1][0]

    def _read(self, split: str) -> Split:
        files = (self.files[f"{split}_images"], self.files[f"{split}_labels"])
        images, labels = read_pair(self.dataset, self.where, split, *files)
        return images[:, None], labels
