"""Red-team regressions for issue 14's code (named datasets, predict on photos, the trainer's
selection features): each test is a hostile or unlucky input that once got through, and fails
without its fix. Every input is small and generated here; downloads come from a local
http.server only."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from fastcnn import datasets as D
from fastcnn.datasets._cifar import extract_cifar

CIFAR_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
RECORD = 3073  # 1 label byte + 3x32x32 pixels


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty cache of its own and no FASTCNN_DATA_DIR."""
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(tmp_path / "cache-root"))
    monkeypatch.delenv("FASTCNN_DATA_DIR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# ---------------------------------------------------------------------------------------------
# Dataset files
# ---------------------------------------------------------------------------------------------


class _Zeros(io.RawIOBase):
    """``n`` zero bytes, produced as read (a member of any size without holding it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        k = min(len(b), self.n)
        b[:k] = bytes(k)
        self.n -= k
        return k


def _tarball(path: Path, sizes: dict[str, int], extra: tuple[tuple[str, int], ...] = ()) -> Path:
    """A gzipped tar of zero-filled members (name -> byte count), in order, then ``extra``."""
    with tarfile.open(path, mode="w:gz", compresslevel=1) as tar:
        for name, n in (*sizes.items(), *extra):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = n
            tar.addfile(info, io.BufferedReader(_Zeros(n)))
    return path


def _cifar_sizes(per_batch: int = 2) -> dict[str, int]:
    return {name: per_batch * RECORD for name in CIFAR_NAMES}


def test_cifar_archive_member_larger_than_its_split_is_refused_before_writing(tmp_path):
    """A decompression bomb: a ~300 KB archive whose batch declares 100,000 records (307 MB of
    zeros) once unpacked all of it before the batches were checked."""
    sizes = _cifar_sizes() | {"data_batch_1.bin": 100_000 * RECORD}
    archive = _tarball(tmp_path / "bomb.tar.gz", sizes)
    assert archive.stat().st_size < 2_000_000
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(D.CIFARError, match=r"declare 100,00\d records.*at most 50,000"):
        extract_cifar(D.DATASETS["cifar10"], archive, target)
    assert list(target.iterdir()) == []


def test_cifar_archive_with_a_duplicate_member_is_refused(tmp_path):
    """Two members of one name: which one tar semantics picks (the last) is not what was
    checked first; an ambiguous archive is refused."""
    archive = _tarball(
        tmp_path / "dup.tar.gz", _cifar_sizes(), extra=(("test_batch.bin", 3 * RECORD),)
    )
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(D.CIFARError, match="appears twice"):
        extract_cifar(D.DATASETS["cifar10"], archive, target)
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("kind", ["hardlink", "device", "absolute"])
def test_cifar_archive_links_devices_and_absolute_paths_are_never_unpacked(tmp_path, kind):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, mode="w:gz") as tar:
        for name in CIFAR_NAMES:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            if name == "test_batch.bin" and kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "cifar-10-batches-bin/data_batch_1.bin"
                tar.addfile(info)
            elif name == "test_batch.bin" and kind == "device":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 5
                tar.addfile(info)
            else:
                if kind == "absolute":
                    info.name = f"/{name}"
                info.size = RECORD
                tar.addfile(info, io.BytesIO(bytes(RECORD)))
    target = tmp_path / "out"
    target.mkdir()
    match = "lacks" if kind == "absolute" else "not a regular file"
    with pytest.raises(D.CIFARError, match=match):
        extract_cifar(D.DATASETS["cifar10"], archive, target)
    assert list(target.iterdir()) == []
