"""``fastcnn.datasets``: MNIST (IDX reading, finding/downloading, an embedded subset) and batches.

Public API: ``load_mnist`` / ``mnist_source`` / ``find_mnist`` / ``download_mnist`` /
``verify_mnist``, the IDX helpers ``read_idx`` / ``write_idx``, and ``DataLoader`` with
``Augment`` / ``shift_rotate``. Pure Python + numpy (pooch only for downloads); no compiled code.
"""

from __future__ import annotations

from fastcnn.datasets._idx import MAX_DATA_BYTES, IDXError, read_idx, read_idx_header, write_idx
from fastcnn.datasets._loader import Augment, DataLoader, shift_rotate
from fastcnn.datasets._mnist import (
    EMBEDDED_DIR,
    MIRRORS,
    MNIST_FILES,
    MNIST_MD5,
    MNIST_SHA256,
    MNISTNotFoundError,
    MNISTSource,
    cache_dir,
    download_mnist,
    find_mnist,
    load_mnist,
    mnist_source,
    verify_mnist,
)

__all__ = [
    "EMBEDDED_DIR",
    "MAX_DATA_BYTES",
    "MIRRORS",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_SHA256",
    "Augment",
    "DataLoader",
    "IDXError",
    "MNISTNotFoundError",
    "MNISTSource",
    "cache_dir",
    "download_mnist",
    "find_mnist",
    "load_mnist",
    "mnist_source",
    "read_idx",
    "read_idx_header",
    "shift_rotate",
    "verify_mnist",
    "write_idx",
]
