"""Hostile data inputs (issue 12): IDX files, predict's images and .npy arrays, the CLI's failure
paths, diverging training and FASTCNN_* variables.

Each memory case runs in a child process (tests/hostile.py) so its own peak RSS can be held to
the issue's bound, 2x the file's size + 100 MB, and its wall time to a generous 10 s.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets as D
from hostile import Run, rss_bound, run_code

SECONDS = 10.0  # generous: each of these answers in well under a second on an idle machine


def _idx(magic: int, dims: tuple[int, ...], data: bytes = b"") -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + data


def _gzip_zeros(path: Path, header: bytes, n: int) -> Path:
    """A gzip file of ``header`` then ``n`` zero bytes, written in chunks (n may be ~1e9)."""
    zeros = bytes(1 << 24)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(header)
        while n > 0:
            f.write(zeros[: min(n, len(zeros))])
            n -= len(zeros)
    return path


def _bounded(run: Run, *files: Path) -> None:
    assert run.peak_rss < rss_bound(*files), (run.peak_rss, rss_bound(*files), run.stderr)
    assert run.seconds < SECONDS, run.seconds


def _read_idx_in_child(path: Path, *args: str) -> Run:
    code = (
        "import sys\n"
        "from fastcnn.datasets import IDXError, read_idx\n"
        "try:\n"
        f"    read_idx({str(path)!r}{''.join(', ' + a for a in args)})\n"
        "except IDXError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    return run_code(code)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idx_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What was seen 1: 1,500,000 x 28 x 28 gzip-compressed zeros, a 1.1 MB file."""
    path = tmp_path_factory.mktemp("bomb") / "train-images-idx3-ubyte.gz"
    return _gzip_zeros(path, _idx(2051, (1_500_000, 28, 28)), 1_500_000 * 784)


def test_idx_bomb_is_refused_by_read_idx_before_decompressing(idx_bomb: Path) -> None:
    run = _read_idx_in_child(idx_bomb)
    assert run.returncode == 3, run.stderr
    assert str(idx_bomb) in run.stdout
    assert "1,176,000,000 data bytes, over the limit of 67,108,864" in run.stdout
    _bounded(run, idx_bomb)


def test_idx_bomb_in_an_mnist_directory_is_refused_from_its_header(
    idx_bomb: Path, tmp_path: Path
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for role, name in D.MNIST_FILES.items():
        if role != "train_images":
            (d / f"{name}.gz").write_bytes((D.EMBEDDED_DIR / f"{name}.gz").read_bytes())
    (d / idx_bomb.name).symlink_to(idx_bomb)
    code = (
        "from fastcnn.datasets import IDXError, load_mnist\n"
        "try:\n"
        f"    load_mnist(data_dir={str(d)!r})\n"
        "except IDXError as exc:\n"
        "    print(exc)\n"
    )
    run = run_code(code)
    assert run.returncode == 0, run.stderr
    assert f"{d / idx_bomb.name}: the header declares 1,500,000 images" in run.stdout
    assert "at most 60,000" in run.stdout
    _bounded(run, idx_bomb)


def test_mnist_counts_are_checked_per_split_before_reading(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for name in D.MNIST_FILES.values():
        (d / f"{name}.gz").write_bytes((D.EMBEDDED_DIR / f"{name}.gz").read_bytes())
    # 10,001 test images (allowed for train, not for test); the data is absent: only the
    # header can have been looked at.
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    (d / "t10k-images-idx3-ubyte").write_bytes(_idx(2051, (10_001, 28, 28)))
    with pytest.raises(D.IDXError, match=r"t10k-images-idx3-ubyte: the header declares 10,001"):
        D.load_mnist(data_dir=d)
    # labels whose count differs: found from the headers too, with no data present
    (d / "t10k-images-idx3-ubyte").write_bytes(_idx(2051, (1000, 28, 28)))
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(2049, (999,)))
    with pytest.raises(D.IDXError, match=r"1000 images in .* but 999 labels"):
        D.load_mnist(data_dir=d)


def test_idx_header_declaring_a_terabyte_over_100_bytes(tmp_path: Path) -> None:
    """What was seen 2: (1e6, 1000, 1000) with 100 data bytes, raw and compressed."""
    raw = tmp_path / "huge"
    raw.write_bytes(_idx(2051, (10**6, 1000, 1000), bytes(100)))
    run = _read_idx_in_child(raw)
    assert run.returncode == 3, run.stderr
    assert f"{raw}: truncated data: the header (1000000, 1000, 1000) needs 1000000000000" in (
        run.stdout
    )
    assert "got 100" in run.stdout
    _bounded(run, raw)
    gz = tmp_path / "huge.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    run = _read_idx_in_child(gz)
    assert run.returncode == 3, run.stderr
    assert f"{gz}: too large" in run.stdout
    _bounded(run, gz)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_sizes_do_not_overflow(tmp_path: Path, compressed: bool) -> None:
    """2**21 * 2**21 * 2**22 = 2**64 wrapped to 0 in int64: 'cannot reshape' without a name."""
    content = _idx(2051, (2**21, 2**21, 2**22))
    path = tmp_path / ("overflow.gz" if compressed else "overflow")
    path.write_bytes(gzip.compress(content) if compressed else content)
    pattern = (
        "too large.*18,446,744,073,709,551,616" if compressed else "needs 18446744073709551616"
    )
    with pytest.raises(D.IDXError, match=pattern) as info:
        D.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_limit_is_explicit_and_exact(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = D.write_idx(tmp_path / "x.gz", images)
    assert D.read_idx(path, max_bytes=images.size).shape == images.shape
    with pytest.raises(D.IDXError, match=rf"{path}: too large.*1,568 data bytes.*limit of 1,567"):
        D.read_idx(path, max_bytes=images.size - 1)
    big = D.write_idx(tmp_path / "big.gz", np.zeros(D.MAX_DATA_BYTES + 1, dtype=np.uint8))
    with pytest.raises(D.IDXError, match="limit of 67,108,864"):
        D.read_idx(big)
    assert D.read_idx(big, max_bytes=D.MAX_DATA_BYTES + 1).size == D.MAX_DATA_BYTES + 1
    with pytest.raises(ValueError, match="max_bytes"):
        D.read_idx(path, max_bytes=-1)
    with pytest.raises(TypeError, match="max_bytes"):
        D.read_idx(path, max_bytes=1.5)  # type: ignore[arg-type]


def test_trailing_gzip_data_is_not_decompressed_to_the_end(tmp_path: Path) -> None:
    """256 MB of zeros after a valid labels file: reported from one chunk of them."""
    path = _gzip_zeros(tmp_path / "labels.gz", _idx(2049, (10,), bytes(10)), 2**28)
    run = _read_idx_in_child(path)
    assert run.returncode == 3, run.stderr
    assert f"{path}: trailing data: at least 1048576 bytes after the 10 data bytes" in run.stdout
    _bounded(run, path)
