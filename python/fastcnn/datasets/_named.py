"""Datasets by name: ``dataset_source`` picks the source of a table row (or a folder of
images) and ``load_dataset`` loads it, as ``mnist_source`` / ``load_mnist`` do for MNIST.
Each format's finding and reading is its own module's; this only dispatches.
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from fastcnn.datasets._cifar import CIFARSource, find_cifar
from fastcnn.datasets._folder import FolderSource
from fastcnn.datasets._idx_sets import IDXSource, find_idx
from fastcnn.datasets._mnist import _resolve
from fastcnn.datasets._registry import DATASETS, FOLDER, dataset_names
from fastcnn.datasets._source import DatasetSource, Split

__all__ = ["dataset_source", "load_dataset"]

PathLike = Union[str, "os.PathLike[str]"]


def _source(
    name: str, data_dir: PathLike | None, download: bool, subset: str | None, where: str
) -> DatasetSource:
    if not isinstance(name, str) or name not in dataset_names():
        raise ValueError(f"{where}: unknown dataset {name!r} (known: {', '.join(dataset_names())})")
    if name == "mnist":
        return _resolve(data_dir, download, subset, where)
    if subset is not None:
        raise ValueError(
            f"{where}: subset={subset!r} is MNIST's only (the embedded subset); {name} has none"
        )
    if name == FOLDER:
        if data_dir is None:
            raise ValueError(f"{where}: the folder dataset needs data_dir (the image folder)")
        return FolderSource(data_dir)
    row = DATASETS[name]
    if row.format == "idx":
        return IDXSource(row, "full", find_idx(row, data_dir, download, where=where))
    return CIFARSource(row, "full", find_cifar(row, data_dir, download, where))


def dataset_source(
    name: str = "mnist",
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    subset: str | None = None,
) -> DatasetSource:
    """The source of dataset ``name`` (a ``DATASETS`` name or "folder"), without reading the
    arrays.

    A published set is looked for in ``data_dir`` when given (incomplete: an error), else in
    the cache (``cache_dir() / name``), else downloaded there from its mirrors with its
    checksums verified when ``download``. "mnist" is ``mnist_source`` (with its
    ``$FASTCNN_DATA_DIR`` and the embedded-subset fallback; ``subset`` is MNIST's only).
    "folder" reads ``data_dir``, one sub-folder of pictures per class (see FolderSource).
    Raises DatasetNotFoundError (an OSError) when the files are not found.
    """
    return _source(name, data_dir, download, subset, "dataset_source")


def load_dataset(
    name: str = "mnist",
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: PathLike | None = None,
    download: bool = True,
    subset: str | None = None,
    dtype: Any = np.float32,
) -> tuple[Split, Split]:
    """Load dataset ``name`` as ``((x_train, t_train), (x_test, t_test))``, as ``load_mnist``
    loads MNIST: images (N, C*H*W), or (N, C, H, W) unless ``flatten``, of ``dtype`` in [0, 1]
    when ``normalize``; labels int64, or one-hot rows when ``one_hot_label``. Which data: see
    ``dataset_source``."""
    source = _source(name, data_dir, download, subset, "load_dataset")
    return source.load(normalize, flatten, one_hot_label, dtype=dtype)
