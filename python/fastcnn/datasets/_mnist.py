"""MNIST: finding the four IDX files, downloading them, and loading them as training arrays.

Search order: an explicit directory, ``$FASTCNN_DATA_DIR``, the per-user cache, then a download
into the cache from the public mirrors (pooch does the transfer, the MD5 check and the atomic
write; this module loops over the mirrors). When the full set is unavailable, ``load_mnist``
falls back to the small real subset shipped in the package. No other datasets live here.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from fastcnn.datasets._idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    IDXError,
    read_idx,
    read_idx_header,
)
from fastcnn.datasets._idx import _open as _open_idx

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

# Tried in order (tests replace it); each file comes from the first mirror serving the right MD5.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

# Role -> file name without ".gz". A directory may hold each file raw or gzip-compressed.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# MD5 of the .gz files as the public mirrors serve them (verifies a download).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}

# SHA-256 of the uncompressed files: valid for any copy, however it was compressed.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

EMBEDDED_DIR = Path(__file__).resolve().parent / "data"
DOWNLOAD_TIMEOUT = 30  # seconds per connection attempt / read; a dead mirror must not hang us
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
# The most images (and labels) each split can hold: canonical MNIST's sizes. Headers are
# checked against them before any data is read, so a file cannot make us allocate more.
MAX_COUNT: dict[str, int] = {"train": 60_000, "test": 10_000}


class MNISTNotFoundError(FileNotFoundError):
    """MNIST was not found where it was looked for and could not be downloaded."""


def cache_dir() -> Path:
    """The per-user cache root: ``$FASTCNN_CACHE_DIR`` or pooch's OS cache for "fastcnn".

    MNIST lives in its ``mnist`` subdirectory. Nothing is created here.
    """
    env = os.environ.get("FASTCNN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("fastcnn"))


def _mnist_cache() -> Path:
    return cache_dir() / "mnist"


def _files_in(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each role to its file in ``directory`` (``name.gz`` or ``name``); list the missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in MNIST_FILES.items():
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _missing_text(directory: Path, missing: list[str]) -> str:
    if not directory.is_dir():
        return f"{directory} is not a directory"
    return f"{directory} lacks " + ", ".join(f"{m}[.gz]" for m in missing)


def find_mnist(data_dir: PathLike | None = None, *, download: bool = True) -> Path:
    """Return a directory holding all four MNIST files (each raw or .gz).

    Looks in ``data_dir`` when given (if it is incomplete that is an error: an explicit choice
    is never silently replaced), else in ``$FASTCNN_DATA_DIR`` (a warning if set but
    incomplete), then in the cache (``cache_dir() / "mnist"``), then downloads the missing files
    into the cache when ``download`` is true. Raises MNISTNotFoundError listing every place
    looked at and, for a failed download, what each mirror did.
    """
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        _, missing = _files_in(d)
        if missing:
            raise MNISTNotFoundError(
                f"find_mnist: data_dir is incomplete: {_missing_text(d, missing)}"
            )
        return d

    looked: list[str] = []
    env = os.environ.get("FASTCNN_DATA_DIR")
    if env:
        d = Path(env).expanduser()
        _, missing = _files_in(d)
        if not missing:
            return d
        text = f"FASTCNN_DATA_DIR: {_missing_text(d, missing)}"
        warnings.warn(f"find_mnist: ignoring {text}", UserWarning, stacklevel=2)
        looked.append(text)
    else:
        looked.append("FASTCNN_DATA_DIR: not set")

    cache = _mnist_cache()
    _, missing = _files_in(cache)
    if not missing:
        return cache
    looked.append(f"cache: {_missing_text(cache, missing)}")
    if not download:
        raise MNISTNotFoundError(
            "find_mnist: MNIST not found and download=False; looked in:\n  " + "\n  ".join(looked)
        )
    try:
        return download_mnist(cache, only=missing)
    except MNISTNotFoundError as exc:
        raise MNISTNotFoundError(
            "find_mnist: MNIST not found; looked in:\n  " + "\n  ".join(looked) + f"\n{exc}"
        ) from exc


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


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
    import pooch

    target = Path(directory).expanduser() if directory is not None else _mnist_cache()
    if progressbar is None:
        progressbar = sys.stderr.isatty()
    if only is None:
        _, only = _files_in(target)
    if mirrors is None:
        mirrors = MIRRORS
    if not mirrors:
        raise MNISTNotFoundError("download_mnist: no mirrors configured (MIRRORS is empty)")
    target.mkdir(parents=True, exist_ok=True)
    for name in only:
        gz = f"{name}.gz"
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + gz
            try:
                pooch.retrieve(
                    url,
                    known_hash=f"md5:{MNIST_MD5[name]}",
                    fname=gz,
                    path=target,
                    downloader=pooch.HTTPDownloader(
                        progressbar=progressbar, timeout=DOWNLOAD_TIMEOUT
                    ),
                )
                break
            except Exception as exc:  # network, HTTP status and checksum failures alike
                failures.append(f"{url}: {_short(exc)}")
        else:
            raise MNISTNotFoundError(
                f"download_mnist: could not download {gz} into {target}; every mirror failed:\n  "
                + "\n  ".join(failures)
            )
    return target


def verify_mnist(directory: PathLike) -> None:
    """Check the four files in ``directory`` against the SHA-256 of canonical MNIST.

    The hashes are of the uncompressed contents, so any mirror's copy and any recompression
    verifies. Raises MNISTNotFoundError for missing files and IDXError naming the first file
    whose contents differ. Reads the whole set (about 55 MB uncompressed).
    """
    d = Path(directory).expanduser()
    found, missing = _files_in(d)
    if missing:
        raise MNISTNotFoundError(f"verify_mnist: {_missing_text(d, missing)}")
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


def _check_pair(
    split: str,
    images_path: Path,
    image_dims: tuple[int, ...],
    labels_path: Path,
    label_dims: tuple[int, ...],
) -> None:
    """Check the dims of one images/labels pair (from the headers, and again from the arrays)
    are MNIST-shaped, within the split's size and consistent."""
    if len(image_dims) != 3:
        raise IDXError(
            f"load_mnist: {images_path}: expected images (magic {IMAGES_MAGIC}) but the file "
            f"holds labels (magic {LABELS_MAGIC}), shape {image_dims}"
        )
    if len(label_dims) != 1:
        raise IDXError(
            f"load_mnist: {labels_path}: expected labels (magic {LABELS_MAGIC}) but the file "
            f"holds images (magic {IMAGES_MAGIC}), shape {label_dims}"
        )
    if image_dims[1:] != IMAGE_SHAPE:
        raise IDXError(
            f"load_mnist: {images_path}: wrong dims: expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} "
            f"images, got images.shape={image_dims}"
        )
    if image_dims[0] > MAX_COUNT[split]:
        raise IDXError(
            f"load_mnist: {images_path}: the header declares {image_dims[0]:,} images; MNIST's "
            f"{split} set has at most {MAX_COUNT[split]:,}"
        )
    if image_dims[0] != label_dims[0]:
        raise IDXError(
            f"load_mnist: {image_dims[0]} images in {images_path} but {label_dims[0]} "
            f"labels in {labels_path}"
        )


def _read_pair(split: str, images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair of ``split`` ("train" or "test"), checking from the headers
    that it is MNIST-shaped and consistent before reading any data."""
    image_dims = read_idx_header(images_path)[1]
    label_dims = read_idx_header(labels_path)[1]
    _check_pair(split, images_path, image_dims, labels_path, label_dims)
    images = read_idx(images_path, max_bytes=math.prod(image_dims))
    labels = read_idx(labels_path, max_bytes=math.prod(label_dims))
    # The files may have changed since their headers were read: check what was read, too.
    _check_pair(split, images_path, images.shape, labels_path, labels.shape)
    if labels.size and labels.max() >= N_CLASSES:
        raise IDXError(
            f"load_mnist: {labels_path}: labels must be in [0, {N_CLASSES}), "
            f"got a maximum of {labels.max()}"
        )
    return images, labels


def _convert(
    images: np.ndarray,
    labels: np.ndarray,
    normalize: bool,
    flatten: bool,
    one_hot_label: bool,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    if normalize:
        x = images.astype(dtype)
        x /= dtype.type(255)
    else:
        x = images.astype(dtype, copy=True)
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])
    if one_hot_label:
        t = np.zeros((len(labels), N_CLASSES), dtype=dtype)
        t[np.arange(len(labels)), labels] = 1
    else:
        t = labels.astype(np.int64)
    return x, t


@dataclass(frozen=True)
class MNISTSource:
    """Where MNIST comes from: ``kind`` is "full" or "embedded"; ``directory`` holds the files.

    ``reason`` says why the embedded subset is used when it was a fallback (empty otherwise).
    ``load(...)`` reads the arrays, as ``load_mnist`` does; ``str(source)`` is a one-line
    description for logs.
    """

    kind: str
    directory: Path
    reason: str = ""
    files: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.files:
            found, missing = _files_in(self.directory)
            if missing:
                raise MNISTNotFoundError(f"MNISTSource: {_missing_text(self.directory, missing)}")
            object.__setattr__(self, "files", found)

    @property
    def n_train(self) -> int:
        """Number of training images (read from the file header)."""
        return read_idx_header(self.files["train_images"])[1][0]

    @property
    def n_test(self) -> int:
        """Number of test images (read from the file header)."""
        return read_idx_header(self.files["test_images"])[1][0]

    def __str__(self) -> str:
        what = "full MNIST" if self.kind == "full" else "embedded MNIST subset"
        text = f"{what} ({self.n_train} train / {self.n_test} test) from {self.directory}"
        return f"{text} [{self.reason}]" if self.reason else text

    def load(
        self,
        normalize: bool = True,
        flatten: bool = True,
        one_hot_label: bool = False,
        *,
        dtype: Any = np.float32,
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Read and convert the arrays; see ``load_mnist`` for the options."""
        dt = np.dtype(dtype)
        if normalize and dt.kind != "f":
            raise TypeError(
                f"load_mnist: normalize=True needs a floating dtype, got dtype={dt} "
                "(use normalize=False for integer pixels)"
            )
        out = []
        for split in ("train", "test"):
            files = (self.files[f"{split}_images"], self.files[f"{split}_labels"])
            images, labels = _read_pair(split, *files)
            out.append(_convert(images, labels, normalize, flatten, one_hot_label, dt))
        return out[0], out[1]


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
