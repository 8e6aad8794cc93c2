"""CIFAR-10's binary version: finding the six batch files, downloading and unpacking the
published archive, and reading the batches with strict checks.

A batch file is a sequence of records of 1 label byte + 3072 pixel bytes (the R, G and B
planes of a 32x32 image, each row-major); ``data_batch_1.bin`` .. ``data_batch_5.bin`` hold the
50,000 training images and ``test_batch.bin`` the 10,000 test images. Sizes are checked from
the files' lengths before anything is read. The Python (pickle) version is not read: loading
a pickle can run code.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from fastcnn.datasets import _fetch
from fastcnn.datasets._registry import Dataset
from fastcnn.datasets._source import DatasetSource, Split

__all__ = ["CIFARSource", "cifar_files", "extract_cifar", "find_cifar"]

PathLike = Union[str, "os.PathLike[str]"]

# The folder the published archive unpacks into; a directory may hold the files directly.
ARCHIVE_FOLDER = "cifar-10-batches-bin"


class CIFARError(ValueError):
    """A CIFAR-10 batch file or archive is malformed; the message names the file."""


def record_bytes(dataset: Dataset) -> int:
    c, h, w = dataset.image_shape
    return 1 + c * h * w


def _roles(dataset: Dataset, split: str) -> list[str]:
    return [role for role in dataset.files if role.startswith(split)]


def cifar_files(dataset: Dataset, directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each role to its batch file in ``directory`` or its ``cifar-10-batches-bin``
    folder (all from the same one); list the missing names."""
    best: tuple[dict[str, Path], list[str]] | None = None
    for d in (directory, directory / ARCHIVE_FOLDER):
        found = {r: d / n for r, n in dataset.files.items() if (d / n).is_file()}
        missing = [n for r, n in dataset.files.items() if r not in found]
        if best is None or len(missing) < len(best[1]):
            best = (found, missing)
    assert best is not None
    return best


def _check_batches(dataset: Dataset, split: str, paths: list[Path]) -> list[int]:
    """The record count of each file of ``split``, from the file sizes: whole records, at
    least one, at most the published split size in all."""
    size = record_bytes(dataset)
    counts = []
    for path in paths:
        n_bytes = path.stat().st_size
        if n_bytes == 0 or n_bytes % size:
            raise CIFARError(
                f"{path}: truncated or not a CIFAR-10 batch: {n_bytes:,} bytes is not a "
                f"whole number of {size}-byte records (1 label byte + "
                f"{'x'.join(map(str, dataset.image_shape))} pixels)"
            )
        counts.append(n_bytes // size)
    most = dataset.n_train if split == "train" else dataset.n_test
    if sum(counts) > most:
        raise CIFARError(
            f"{paths[0].parent}: the {split} batches hold {sum(counts):,} images; "
            f"{dataset.title}'s {split} set has at most {most:,}"
        )
    return counts


def read_batches(dataset: Dataset, split: str, paths: list[Path]) -> Split:
    """Images (N, C, H, W) uint8 and labels (N,) of the batch files ``paths``."""
    counts = _check_batches(dataset, split, paths)
    size = record_bytes(dataset)
    parts = []
    for path, n in zip(paths, counts):
        raw = np.fromfile(path, dtype=np.uint8, count=n * size)
        if raw.size != n * size:  # the file shrank since it was sized
            raise CIFARError(f"{path}: truncated: expected {n * size:,} bytes, read {raw.size:,}")
        parts.append(raw.reshape(n, size))
    records = np.concatenate(parts)
    labels = records[:, 0]
    k = dataset.n_classes
    if labels.max() >= k:
        bad = int(np.argmax(labels >= k))
        raise CIFARError(
            f"{paths[0].parent}: {split} record {bad} has label {labels[bad]}; labels must be "
            f"in [0, {k})"
        )
    images = records[:, 1:].reshape(len(records), *dataset.image_shape)
    return images, labels.copy()


def extract_cifar(dataset: Dataset, archive: Path, target: Path) -> None:
    """Unpack the batch files of the published archive into ``target``.

    Only the six expected members are written, each under its own name in ``target`` (no path
    from the archive is ever used, so nothing lands outside it), to a temporary file renamed
    into place; a member that is a link or not a regular file, appears twice, or whose size is
    not whole records, or more than its split holds (the published split sizes: a small
    compressed archive declaring gigabytes is refused before anything is written), is an
    error. Other members (the readme, batches.meta.txt) are skipped.
    """
    wanted = {n: r for r, n in dataset.files.items()}
    size = record_bytes(dataset)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {}
            for member in tar:
                parts = member.name.split("/")
                if parts[-1] not in wanted or parts[:-1] not in ([], [ARCHIVE_FOLDER]):
                    continue
                if not member.isfile():
                    raise CIFARError(
                        f"{archive}: member {member.name} is not a regular file (a link or "
                        "device); refusing to unpack it"
                    )
                if parts[-1] in members:
                    raise CIFARError(
                        f"{archive}: member {member.name} appears twice; refusing an ambiguous "
                        "archive"
                    )
                if member.size == 0 or member.size % size:
                    raise CIFARError(
                        f"{archive}: member {member.name} has {member.size:,} bytes, not a "
                        f"whole number of {size}-byte records"
                    )
                members[parts[-1]] = member
            absent = [n for n in wanted if n not in members]
            if absent:
                raise CIFARError(f"{archive}: not the CIFAR-10 binary archive: lacks {absent}")
            for split, most in (("train", dataset.n_train), ("test", dataset.n_test)):
                names = [dataset.files[r] for r in _roles(dataset, split)]
                declared = sum(members[n].size for n in names) // size
                if declared > most:
                    raise CIFARError(
                        f"{archive}: the {split} members declare {declared:,} records; "
                        f"{dataset.title}'s {split} set has at most {most:,}"
                    )
            for name, member in members.items():
                _write_member(tar, member, target / name, archive)
    except (tarfile.TarError, EOFError, OSError) as exc:  # CIFARError passes through
        raise CIFARError(f"{archive}: cannot unpack: {_fetch.short(exc)}") from exc


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, archive: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            copied = 0
            while chunk := source.read(1 << 20):
                out.write(chunk)
                copied += len(chunk)
        if copied != member.size:
            raise CIFARError(f"{archive}: member {member.name} is truncated")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def download_cifar(
    dataset: Dataset, target: Path, *, progressbar: bool | None = None, where: str
) -> Path:
    """Download the archive into ``target`` (its MD5 checked), unpack the batch files there
    and remove the archive."""
    _fetch.retrieve(
        {dataset.archive: dataset.md5[dataset.archive]}, dataset.mirrors, target, where,
        progressbar,
    )  # fmt: skip
    archive = target / dataset.archive
    extract_cifar(dataset, archive, target)
    archive.unlink()
    return target


def find_cifar(dataset: Dataset, data_dir: PathLike | None, download: bool, where: str) -> Path:
    """The directory holding the batch files (see _fetch.find for the search order)."""
    return _fetch.find(
        dataset.title,
        where,
        data_dir,
        download,
        missing=lambda d: cifar_files(dataset, d)[1],
        fetch=lambda cache, _: download_cifar(dataset, cache, where=where),
        cache=_fetch.cache_dir() / dataset.name,
    )


class CIFARSource(DatasetSource):
    """CIFAR-10's batch files in ``directory`` (or its ``cifar-10-batches-bin`` folder)."""

    def __init__(self, dataset: Dataset, kind: str, directory: Path, reason: str = "") -> None:
        super().__init__(dataset, kind, directory, reason)
        files, missing = cifar_files(dataset, self.directory)
        if missing:
            raise _fetch.DatasetNotFoundError(
                f"{dataset.title}: {_fetch.missing_text(self.directory, missing)}"
            )
        self.files = files

    def _paths(self, split: str) -> list[Path]:
        return [self.files[r] for r in _roles(self.dataset, split)]

    @property
    def n_train(self) -> int:
        return sum(_check_batches(self.dataset, "train", self._paths("train")))

    @property
    def n_test(self) -> int:
        return sum(_check_batches(self.dataset, "test", self._paths("test")))

    def _read(self, split: str) -> Split:
        return read_batches(self.dataset, split, self._paths(split))
