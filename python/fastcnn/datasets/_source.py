"""What every dataset source has in common: the dataset it is (name, title, classes, image
shape), where its files are, a one-line description, and the conversion of what a format
reads into training arrays. Finding files and reading each format are the formats' modules'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastcnn.datasets._registry import Dataset

__all__ = ["DatasetSource"]

Split = tuple[np.ndarray, np.ndarray]


class DatasetSource:
    """Where a dataset's arrays come from.

    ``dataset`` is its table row (``fastcnn.datasets.DATASETS``; for a folder, a row made from
    the folder). ``kind``: "full" for a published set, "embedded" for MNIST's shipped subset,
    "folder" for a folder of images. ``directory`` holds the files; ``reason`` says why a
    fallback was taken (empty otherwise). ``load(...)`` reads both splits, ``load_test(...)``
    the test split alone; ``str(source)`` is a one-line description for logs.
    Subclasses give ``n_train``, ``n_test`` and ``_read(split)``.
    """

    where = "load_dataset"  # how error messages name the loader

    def __init__(self, dataset: Dataset, kind: str, directory: Path, reason: str = "") -> None:
        self.dataset = dataset
        self.kind = kind
        self.directory = Path(directory)
        self.reason = reason

    # -- what the dataset is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def title(self) -> str:
        return self.dataset.title

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return self.dataset.image_shape

    @property
    def n_train(self) -> int:
        raise NotImplementedError

    @property
    def n_test(self) -> int:
        raise NotImplementedError

    def _what(self) -> str:
        """The dataset as the description names it."""
        return self.title

    def __str__(self) -> str:
        text = f"{self._what()} ({self.n_train} train / {self.n_test} test) from {self.directory}"
        return f"{text} [{self.reason}]" if self.reason else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}, "
            f"directory={str(self.directory)!r}, reason={self.reason!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetSource):
            return NotImplemented
        mine = (type(self), self.dataset, self.kind, self.directory, self.reason)
        return mine == (type(other), other.dataset, other.kind, other.directory, other.reason)

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.kind, self.directory, self.reason))

    # -- the arrays -------------------------------------------------------------------------------

    def _read(self, split: str) -> Split:
        """One split ("train" or "test") as read: images (N, C, H, W) uint8 0..255 (or
        float32 in [0, 1]) and integer labels in [0, n_classes), checked."""
        raise NotImplementedError

    def load(
        self,
        normalize: bool = True,
        flatten: bool = True,
        one_hot_label: bool = False,
        *,
        dtype: Any = np.float32,
    ) -> tuple[Split, Split]:
        """``((x_train, t_train), (x_test, t_test))``: images of ``dtype``, in [0, 1] when
        ``normalize`` (else 0..255), (N, C*H*W) when ``flatten`` else (N, C, H, W); int64
        labels (N,), or one-hot rows (N, n_classes) of ``dtype`` when ``one_hot_label``."""
        dt = self._check_dtype(normalize, dtype)
        train = _convert(*self._read("train"), normalize, flatten, one_hot_label, dt, self)
        test = _convert(*self._read("test"), normalize, flatten, one_hot_label, dt, self)
        return train, test

    def load_test(
        self,
        normalize: bool = True,
        flatten: bool = False,
        one_hot_label: bool = False,
        *,
        dtype: Any = np.float32,
    ) -> Split:
        """Only the test split, as ``load`` gives it (evaluation need not read the training
        set); images (N, C, H, W) unless ``flatten``."""
        dt = self._check_dtype(normalize, dtype)
        return _convert(*self._read("test"), normalize, flatten, one_hot_label, dt, self)

    def _check_dtype(self, normalize: bool, dtype: Any) -> np.dtype:
        dt = np.dtype(dtype)
        if normalize and dt.kind != "f":
            raise TypeError(
                f"{self.where}: normalize=True needs a floating dtype, got dtype={dt} "
                "(use normalize=False for integer pixels)"
            )
        return dt


def _convert(
    images: np.ndarray,
    labels: np.ndarray,
    normalize: bool,
    flatten: bool,
    one_hot_label: bool,
    dtype: np.dtype,
    source: DatasetSource,
) -> Split:
    """Images (N, C, H, W) uint8 (or float in [0, 1]) and labels as ``load`` returns them."""
    if images.dtype == np.uint8:
        x = images.astype(dtype)
        if normalize:
            x /= dtype.type(255)
    else:  # float pixels in [0, 1] (prepared pictures)
        x = images.astype(dtype) if normalize else np.rint(images * 255.0).astype(dtype)
    x = x.reshape(len(x), -1) if flatten else x
    if one_hot_label:
        t = np.zeros((len(labels), source.dataset.n_classes), dtype=dtype)
        t[np.arange(len(labels)), labels] = 1
    else:
        t = labels.astype(np.int64)
    return x, t
