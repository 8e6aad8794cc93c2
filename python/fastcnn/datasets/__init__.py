"""``fastcnn.datasets``: named datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10, a folder of
your own pictures) found, downloaded and verified, MNIST's embedded subset, and batches.

Public API: the table ``DATASETS`` (one ``Dataset`` row per name), ``dataset_source`` /
``load_dataset`` for any of them (a ``DatasetSource``: ``IDXSource``, ``MNISTSource``,
``CIFARSource`` or ``FolderSource``), MNIST's own ``load_mnist`` / ``mnist_source`` /
``find_mnist`` / ``download_mnist`` / ``verify_mnist``, the IDX helpers ``read_idx`` /
``write_idx``, and ``DataLoader`` with ``Augment`` / ``shift_rotate``. Pure Python + numpy
(pooch only for downloads, Pillow only for pictures); no compiled code.
"""

from __future__ import annotations

from fastcnn.datasets._cifar import CIFARError, CIFARSource
from fastcnn.datasets._fetch import DatasetNotFoundError, cache_dir
from fastcnn.datasets._folder import TEST_FRACTION, FolderError, FolderSource
from fastcnn.datasets._idx import MAX_DATA_BYTES, IDXError, read_idx, read_idx_header, write_idx
from fastcnn.datasets._idx_sets import IDXSource
from fastcnn.datasets._loader import Augment, DataLoader, shard_rows, shift_rotate
from fastcnn.datasets._mnist import (
    EMBEDDED_DIR,
    MNISTNotFoundError,
    MNISTSource,
    download_mnist,
    find_mnist,
    load_mnist,
    mnist_source,
    verify_mnist,
)
from fastcnn.datasets._named import dataset_source, load_dataset
from fastcnn.datasets._registry import (
    DATASETS,
    FOLDER,
    MIRRORS,
    MNIST_FILES,
    MNIST_MD5,
    MNIST_SHA256,
    Dataset,
    dataset_names,
)
from fastcnn.datasets._source import DatasetSource

__all__ = [
    "DATASETS",
    "EMBEDDED_DIR",
    "FOLDER",
    "MAX_DATA_BYTES",
    "MIRRORS",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_SHA256",
    "TEST_FRACTION",
    "Augment",
    "CIFARError",
    "CIFARSource",
    "DataLoader",
    "Dataset",
    "DatasetNotFoundError",
    "DatasetSource",
    "FolderError",
    "FolderSource",
    "IDXError",
    "IDXSource",
    "MNISTNotFoundError",
    "MNISTSource",
    "cache_dir",
    "dataset_names",
    "dataset_source",
    "download_mnist",
    "find_mnist",
    "load_dataset",
    "load_mnist",
    "mnist_source",
    "read_idx",
    "read_idx_header",
    "shard_rows",
    "shift_rotate",
    "verify_mnist",
    "write_idx",
]
