"""MNIST: finding the four IDX files, downloading them, and loading them as training arrays.

Search order: an explicit directory, ``$FASTCNN_DATA_DIR``, the per-user cache, then a download
into the cache from the public mirrors (the path every IDX dataset shares, _idx_sets.py and
_fetch.py; pooch does the transfer, the MD5 check and the atomic write). When the full set is
unavailable, ``load_mnist`` falls back to the small real subset shipped in the package. MNIST's
facts (files, checksums, mirrors) are rows of _registry.py; other datasets live beside this.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from fastcnn.datasets import _fetch
from fastcnn.datasets._fetch import DatasetNotFoundError, cache_dir
from fastcnn.datasets._idx import IDXError
from fastcnn.datasets._idx import _open as _open_idx
from fastcnn.datasets._idx_sets import IDXSource, download_idx, find_idx, gz_label, idx_files
from fastcnn.datasets._registry import (
    DATASETS,
    MIRRORS,
    MNIST_FILES,
    MNIST_MD5,
    MNIST_SHA256,
)

__all__ = [
    "MIRRORS",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_SHA256",
    "EMBEDDED_DIR",
    "MNISTNotFoundError",
    "MNISTSource",
    "cache_dir",
    "download_mnist",
    "find_mnist",
    "load_mnist",
    "mnist_source",
    "verify_mnist",
]

PathLike = Union[str, "os.PathLike[str]"]

EMBEDDED_DIR = Path(__file__).resolve().parent / "data"

# MNIST's name for DatasetNotFoundError (the same class: code catching either catches both).
MNISTNotFoundError = DatasetNotFoundError


def _mnist() -> Any:
    return DATASETS["mnist"]


def find_mnist(data_dir: PathLike | None = None, *, download: bool = True) -> Path:
    """Return a directory holding all four MNIST files (each raw or .gz).

    Looks in ``data_dir`` when given (if it is incomplete that is an error: an explicit choice
    is never silently replaced), else in ``$FASTCNN_DATA_DIR`` (a warning if set but
    incomplete), then in the cache (``cache_dir() / "mnist"``), then downloads the missing files
    into the cache when ``download`` is true. Raises MNISTNotFoundError listing every place
    looked at and, for a failed download, what each mirror did.
    """
    return find_idx(_mnist(), data_dir, download, where="find_mnist", env="FASTCNN_DATA_DIR",
                    mirrors=MIRRORS, download_where="download_mnist")  # fmt: skip


def download_mnist(
    directory: PathLike | None = None,
    *,
    only: list[str] | None = None,
    mirrors: list[str] | None = None,
    progressbar: bool | None = None,
) -> Path:
    """Download the MNIST .gz files missing from ``directory`` (default: the cache).

    Each file is tried on every base URL of ``mirrors`` in turn (default: the module's
    ``MIRRORS`` list, the same object as ``fastcnn.datasets.MIRRORS``; edit it in place).
    pooch streams it to a temporary file in ``directory``, checks its MD5 against ``MNIST_MD5``
    and only then renames it into place, so a failed or corrupted download leaves nothing
    under the real name and the next mirror is tried. ``only`` restricts the download to
    those names (without .gz). Raises MNISTNotFoundError with every mirror's failure when a
    file cannot be fetched. The progress bar (tqdm) defaults to on when stderr is a terminal.
    """
    target = Path(directory).expanduser() if directory is not None else cache_dir() / "mnist"
    return download_idx(_mnist(), target, only, mirrors=MIRRORS if mirrors is None else mirrors,
                        progressbar=progressbar, where="download_mnist")  # fmt: skip


def verify_mnist(directory: PathLike) -> None:
    """Check the four files in ``directory`` against the SHA-256 of canonical MNIST.

    The hashes are of the uncompressed contents, so any mirror's copy and any recompression
    verifies. Raises MNISTNotFoundError for missing files and IDXError naming the first file
    whose contents differ. Reads the whole set (about 55 MB uncompressed).
    """
    d = Path(directory).expanduser()
    found, missing = idx_files(_mnist(), d)
    if missing:
        raise MNISTNotFoundError(f"verify_mnist: {_fetch.missing_text(d, missing, gz_label)}")
    for role, path in found.items():
        name = MNIST_FILES[role]
        h = hashlib.sha256()
        with _open_idx(path) as (f, _):
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != MNIST_SHA256[name]:
            raise IDXError(
                f"verify_mnist: {path}: SHA-256 of the contents is {h.hexdigest()}, "
                f"expected {MNIST_SHA256[name]} for {name}"
            )


class MNISTSource(IDXSource):
    """Where MNIST comes from: ``kind`` is "full" or "embedded"; ``directory`` holds the files.

    ``reason`` says why the embedded subset is used when it was a fallback (empty otherwise).
    ``load(...)`` reads the arrays, as ``load_mnist`` does; ``str(source)`` is a one-line
    description for logs. One of the dataset sources (see ``dataset_source``).
    """

    where = "load_mnist"

    def __init__(
        self,
        kind: str,
        directory: Path,
        reason: str = "",
        files: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(_mnist(), kind, directory, reason, files)

    def _what(self) -> str:
        return "full MNIST" if self.kind == "full" else "embedded MNIST subset"


def mnist_source(
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    subset: str | None = None,
) -> MNISTSource:
    """Decide which MNIST to use, as ``load_mnist`` does, without reading the arrays.

    ``subset``: None uses the full set when ``find_mnist`` finds or downloads it and otherwise
    falls back to the embedded subset with a UserWarning saying why; "full" never falls back
    (MNISTNotFoundError instead); "embedded" always uses the shipped subset (5,000 train /
    1,000 test, class-balanced). An explicit ``data_dir`` never falls back either.
    """
    return _resolve(data_dir, download, subset, "mnist_source")


def _require_embedded(where: str, full_reason: str = "") -> None:
    """The embedded subset ships in the package (committed in the source tree); only a damaged
    installation lacks it."""
    missing = [n for n in MNIST_FILES.values() if not (EMBEDDED_DIR / f"{n}.gz").is_file()]
    if missing:
        raise MNISTNotFoundError(
            f"{where}: this fastcnn installation is missing its embedded MNIST subset "
            f"({EMBEDDED_DIR} lacks {', '.join(missing)}); reinstall fastcnn"
            + (f". {full_reason}" if full_reason else "")
        )


def _resolve(
    data_dir: PathLike | None, download: bool, subset: str | None, where: str
) -> MNISTSource:
    # Called directly by both public entry points so the warning's stacklevel hits the user.
    if subset not in (None, "full", "embedded"):
        raise ValueError(f"{where}: subset must be None, 'full' or 'embedded', got {subset!r}")
    if subset == "embedded":
        _require_embedded(where)
        return MNISTSource("embedded", EMBEDDED_DIR)
    if data_dir is not None or subset == "full":
        return MNISTSource("full", find_mnist(data_dir, download=download))
    try:
        return MNISTSource("full", find_mnist(download=download))
    except MNISTNotFoundError as exc:
        reason = " ".join(str(exc).split())
        _require_embedded(where, reason)
        warnings.warn(
            f"{where}: the full MNIST is unavailable, using the embedded subset "
            f"(5,000 train / 1,000 test images) instead. {reason}",
            UserWarning,
            stacklevel=3,
        )
        return MNISTSource("embedded", EMBEDDED_DIR, reason="fallback: full MNIST unavailable")


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: PathLike | None = None,
    download: bool = True,
    subset: str | None = None,
    dtype: Any = np.float32,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``((x_train, t_train), (x_test, t_test))``.

    The first three arguments match the classic "Deep Learning from Scratch" ``load_mnist``.
    Images are ``dtype`` (float32 by default), divided by 255 into [0, 1] when ``normalize``
    (else 0..255; pass ``dtype=np.uint8, normalize=False`` for the raw bytes), shaped (N, 784)
    when ``flatten`` else (N, 1, 28, 28). Labels are int64 (N,), or (N, 10) one-hot rows of
    ``dtype`` when ``one_hot_label``.

    Which data: see ``mnist_source`` (same ``data_dir``, ``download`` and ``subset``); call it
    yourself and use ``source.load(...)`` when you need to know or log which set was used.
    """
    source = _resolve(data_dir, download, subset, "load_mnist")
    return source.load(normalize, flatten, one_hot_label, dtype=dtype)
