"""Tests for fastcnn.datasets: IDX files, finding/downloading MNIST, the embedded subset, batches.

Downloads go to a local http.server only; every test runs with an empty temporary cache and no
FASTCNN_DATA_DIR. Full-MNIST checks run when FASTCNN_DATA_DIR points at the full set.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets as D
from fastcnn.datasets import _mnist
from mirror import Mirror, dead_url

FULL_DIR = os.environ.get("FASTCNN_DATA_DIR")  # read before the autouse fixture clears it
needs_full = pytest.mark.skipif(
    not FULL_DIR, reason="set FASTCNN_DATA_DIR to the full MNIST to run this test"
)

NAMES = list(D.MNIST_FILES.values())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache, no FASTCNN_DATA_DIR and no mirrors: nothing leaks in or out."""
    cache = tmp_path / "cache-root"
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(cache))
    monkeypatch.delenv("FASTCNN_DATA_DIR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(_mnist, "MIRRORS", [])
    return cache / "mnist"


@pytest.fixture
def cache(_isolated: Path) -> Path:
    return _isolated


# ---------------------------------------------------------------------------------------------
# Fake MNIST sets (small, random, valid)
# ---------------------------------------------------------------------------------------------


def fake_arrays(seed: int = 0, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_set(directory: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in D.MNIST_FILES.items():
        D.write_idx(directory / (name + (".gz" if gz else "")), arrays[role])
    return directory


def gz_bytes(arrays: dict[str, np.ndarray], tmp: Path) -> dict[str, bytes]:
    """name.gz -> bytes of each fake file, as a mirror would serve them."""
    d = write_set(tmp / "served", arrays)
    return {f"{n}.gz": (d / f"{n}.gz").read_bytes() for n in NAMES}


# ---------------------------------------------------------------------------------------------
# IDX reading and writing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (0,), (5, 28, 28), (3, 4, 9), (0, 28, 28)])
def test_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    a = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    path = D.write_idx(tmp_path / f"f{suffix}", a)
    b = D.read_idx(path)
    assert b.dtype == np.uint8 and b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable
    magic, dims = D.read_idx_header(path)
    assert magic == (2049 if len(shape) == 1 else 2051) and dims == shape
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_gzip_detected_by_content(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.uint8)
    path = D.write_idx(tmp_path / "labels-no-suffix", a, compress=True)
    np.testing.assert_array_equal(D.read_idx(path), a)


def test_write_idx_gz_is_reproducible(tmp_path: Path) -> None:
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    one = D.write_idx(tmp_path / "a.gz", a).read_bytes()
    two = D.write_idx(tmp_path / "b.gz", a).read_bytes()
    assert one == two
    assert one[4:8] == b"\0\0\0\0"  # gzip mtime field
    assert gzip.decompress(one)[:4] == struct.pack(">I", 2051)


def test_write_idx_rejects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="uint8"):
        D.write_idx(tmp_path / "x", np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match=r"2-D"):
        D.write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.uint8))


def _raw_idx(magic: int, dims: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + data


CORRUPT = {
    "bad_magic": (_raw_idx(2050, (4,), bytes(4)), r"bad magic.*2049.*2051.*got 2050"),
    "empty": (b"", r"truncated header: expected at least 4 bytes, got 0"),
    "short_magic": (b"\0\0\x08", r"truncated header: expected at least 4 bytes, got 3"),
    "truncated_dims": (struct.pack(">II", 2051, 5), r"truncated header.*16 header bytes, got 8"),
    "truncated_data": (_raw_idx(2049, (10,), bytes(7)), r"truncated data.*10 data bytes, got 7"),
    "truncated_images": (
        _raw_idx(2051, (2, 28, 28), bytes(2 * 784 - 1)),
        r"truncated data.*1568 data bytes, got 1567",
    ),
    "trailing": (_raw_idx(2049, (3,), bytes(3) + b"junk!"), r"trailing data: 5 bytes after"),
    "foreign_text": (b"hello, this is not MNIST\n", r"bad magic"),
    "foreign_png": (b"\x89PNG\r\n\x1a\n" + bytes(40), r"bad magic.*got 2303741511"),
    "zero_dims": (_raw_idx(2051, (1, 0, 28), b""), r"wrong dims.*\(1, 0, 28\)"),
}


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_idx_corruptions_name_the_file(tmp_path: Path, case: str, compressed: bool) -> None:
    content, pattern = CORRUPT[case]
    name = f"broken-{case}" + (".gz" if compressed else "")
    path = tmp_path / name
    path.write_bytes(gzip.compress(content, mtime=0) if compressed else content)
    with pytest.raises(D.IDXError, match=pattern) as info:
        D.read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_idx_corrupt_gzip_stream(tmp_path: Path) -> None:
    good = gzip.compress(_raw_idx(2049, (1000,), bytes(range(256)) * 3 + bytes(232)), mtime=0)
    for name, content in {"cut.gz": good[: len(good) // 2], "crc.gz": good[:-8] + bytes(8)}.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(D.IDXError, match="corrupt gzip") as info:
            D.read_idx(path)
        assert str(path) in str(info.value)


def test_idx_raw_file_named_gz(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(_raw_idx(2049, (2,), b"\1\2"))
    with pytest.raises(D.IDXError, match=r"labels\.gz.*not gzip"):
        D.read_idx(path)


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        D.read_idx(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# MNIST-level consistency checks
# ---------------------------------------------------------------------------------------------


def test_load_checks_counts_dims_kinds_and_labels(tmp_path: Path) -> None:
    arrays = fake_arrays()
    d = write_set(tmp_path / "m", arrays)
    # labels/images count mismatch
    D.write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8))
    with pytest.raises(D.IDXError, match=r"30 images in .*train-images.* but 29 labels in .*"):
        D.load_mnist(data_dir=d)
    write_set(d, arrays)
    # images that are not 28x28
    D.write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((12, 32, 32), dtype=np.uint8))
    with pytest.raises(D.IDXError, match=r"t10k-images.*wrong dims: expected 28x28"):
        D.load_mnist(data_dir=d)
    write_set(d, arrays)
    # labels file where images belong
    D.write_idx(d / "train-images-idx3-ubyte.gz", arrays["train_labels"])
    with pytest.raises(D.IDXError, match=r"train-images.*expected images \(magic 2051\)"):
        D.load_mnist(data_dir=d)
    write_set(d, arrays)
    D.write_idx(d / "t10k-labels-idx1-ubyte.gz", arrays["test_images"])
    with pytest.raises(D.IDXError, match=r"t10k-labels.*expected labels \(magic 2049\)"):
        D.load_mnist(data_dir=d)
    write_set(d, arrays)
    D.write_idx(d / "t10k-labels-idx1-ubyte.gz", np.full(12, 10, dtype=np.uint8))
    with pytest.raises(D.IDXError, match=r"t10k-labels.*labels must be in \[0, 10\)"):
        D.load_mnist(data_dir=d)


def test_truncated_file_in_data_dir_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    d = write_set(tmp_path / "m", fake_arrays())
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(D.IDXError, match=r"train-images-idx3-ubyte\.gz: truncated data"):
        D.load_mnist(data_dir=d)


# ---------------------------------------------------------------------------------------------
# Finding MNIST: explicit > FASTCNN_DATA_DIR > cache > download
# ---------------------------------------------------------------------------------------------


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    explicit = write_set(tmp_path / "explicit", fake_arrays(1))
    env = write_set(tmp_path / "env", fake_arrays(2))
    write_set(cache, fake_arrays(3))
    monkeypatch.setenv("FASTCNN_DATA_DIR", str(env))
    assert D.find_mnist(explicit) == explicit
    assert D.find_mnist() == env
    monkeypatch.delenv("FASTCNN_DATA_DIR")
    assert D.find_mnist() == cache
    assert D.find_mnist(download=False) == cache
    # and the arrays really come from the chosen place
    (x, _), _ = D.load_mnist(normalize=False, dtype=np.uint8, data_dir=explicit)
    np.testing.assert_array_equal(x, fake_arrays(1)["train_images"].reshape(30, -1))
    (x, _), _ = D.load_mnist(normalize=False, dtype=np.uint8)
    np.testing.assert_array_equal(x, fake_arrays(3)["train_images"].reshape(30, -1))


def test_explicit_incomplete_dir_does_not_fall_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = write_set(tmp_path / "env", fake_arrays())
    monkeypatch.setenv("FASTCNN_DATA_DIR", str(env))
    partial = write_set(tmp_path / "partial", fake_arrays())
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(D.MNISTNotFoundError, match=r"partial lacks t10k-labels-idx1-ubyte"):
        D.find_mnist(partial)
    with pytest.raises(D.MNISTNotFoundError, match=r"not a directory"):
        D.find_mnist(tmp_path / "does-not-exist")
    with pytest.raises(D.MNISTNotFoundError):  # no embedded fallback for an explicit dir
        D.load_mnist(data_dir=partial)


def test_incomplete_env_dir_warns_and_falls_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    write_set(cache, fake_arrays())
    monkeypatch.setenv("FASTCNN_DATA_DIR", str(tmp_path / "empty"))
    with pytest.warns(UserWarning, match=r"ignoring FASTCNN_DATA_DIR: .*empty is not a directory"):
        assert D.find_mnist() == cache


def test_uncompressed_file_names_accepted(tmp_path: Path) -> None:
    arrays = fake_arrays()
    d = write_set(tmp_path / "raw", arrays, gz=False)
    assert D.find_mnist(d) == d
    (x, t), (xt, tt) = D.load_mnist(False, False, data_dir=d, dtype=np.uint8)
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(tt, arrays["test_labels"])


def test_nothing_found_without_download(cache: Path) -> None:
    with pytest.raises(D.MNISTNotFoundError) as info:
        D.find_mnist(download=False)
    text = str(info.value)
    assert "download=False" in text and "FASTCNN_DATA_DIR: not set" in text
    assert str(cache) in text
    assert not cache.exists()


# ---------------------------------------------------------------------------------------------
# Downloads, against a local HTTP server
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mirror, dict]]:
    """A local mirror of a fake MNIST; MNIST_MD5 patched to the fake files' MD5."""
    arrays = fake_arrays(7)
    files = gz_bytes(arrays, tmp_path)
    for name in NAMES:
        monkeypatch.setitem(D.MNIST_MD5, name, hashlib.md5(files[f"{name}.gz"]).hexdigest())
    server = Mirror(files)
    try:
        yield server, arrays
    finally:
        server.close()


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def test_download_from_good_mirror(
    served: tuple[Mirror, dict], monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    server, arrays = served
    monkeypatch.setattr(_mnist, "MIRRORS", [server.url + "/good/"])
    assert D.find_mnist() == cache
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)
    for name in NAMES:
        assert hashlib.md5((cache / f"{name}.gz").read_bytes()).hexdigest() == D.MNIST_MD5[name]
    (x, t), (xt, tt) = D.load_mnist(normalize=False, flatten=False, dtype=np.uint8)
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(tt, arrays["test_labels"])
    # found in the cache now: no further requests
    n = len(server.requests)
    D.find_mnist()
    assert len(server.requests) == n


def test_download_fetches_only_missing_files(
    served: tuple[Mirror, dict], monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    server, _ = served
    monkeypatch.setattr(_mnist, "MIRRORS", [server.url + "/good/"])
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte.gz").write_bytes(server.files["train-images-idx3-ubyte.gz"])
    D.find_mnist()
    assert sorted(server.requests) == sorted(
        f"/good/{n}.gz" for n in NAMES if n != "train-images-idx3-ubyte"
    )


def test_corrupt_mirror_is_skipped_and_leaves_nothing(
    served: tuple[Mirror, dict], monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    server, arrays = served
    monkeypatch.setattr(_mnist, "MIRRORS", [server.url + "/corrupt/", server.url + "/good/"])
    assert D.find_mnist() == cache
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)  # no temporary files
    for name in NAMES:
        assert (cache / f"{name}.gz").read_bytes() == server.files[f"{name}.gz"]
        assert f"/corrupt/{name}.gz" in server.requests and f"/good/{name}.gz" in server.requests
    (x, _), _ = D.load_mnist(normalize=False, dtype=np.uint8)
    np.testing.assert_array_equal(x.reshape(-1, 28, 28), arrays["train_images"])


def test_dead_and_404_mirrors_are_skipped(
    served: tuple[Mirror, dict], monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    server, _ = served
    mirrors = [dead_url(), server.url + "/missing/", server.url + "/good"]  # no trailing slash
    monkeypatch.setattr(_mnist, "MIRRORS", mirrors)
    assert D.find_mnist() == cache
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)


def test_all_mirrors_bad_is_a_clear_error(
    served: tuple[Mirror, dict], monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    server, _ = served
    dead = dead_url()
    mirrors = [dead, server.url + "/missing/", server.url + "/corrupt/"]
    monkeypatch.setattr(_mnist, "MIRRORS", mirrors)
    with pytest.raises(D.MNISTNotFoundError) as info:
        D.find_mnist()
    text = str(info.value)
    assert "looked in" in text and "FASTCNN_DATA_DIR: not set" in text
    assert "could not download train-images-idx3-ubyte.gz" in text
    assert f"{dead}train-images-idx3-ubyte.gz: ConnectionError" in text
    assert "/missing/train-images-idx3-ubyte.gz: HTTPError: 404" in text
    assert "/corrupt/train-images-idx3-ubyte.gz: ValueError: MD5 hash" in text
    assert cache_listing(cache) == []  # nothing half-written, no temporary files
    # load_mnist falls back to the embedded subset, saying why
    with pytest.warns(UserWarning, match=r"using the embedded subset.*every mirror failed"):
        (x, _), (xt, _) = D.load_mnist()
    assert x.shape == (5000, 784) and xt.shape == (1000, 784)
    assert cache_listing(cache) == []


def test_download_mnist_into_explicit_directory(
    served: tuple[Mirror, dict], tmp_path: Path
) -> None:
    server, _ = served
    target = tmp_path / "elsewhere"
    out = D.download_mnist(target, mirrors=[server.url + "/good/"], progressbar=False)
    assert out == target and cache_listing(target) == sorted(f"{n}.gz" for n in NAMES)
    with pytest.raises(D.MNISTNotFoundError, match="no mirrors"):
        D.download_mnist(tmp_path / "other")


# ---------------------------------------------------------------------------------------------
# The embedded subset, sources and options
# ---------------------------------------------------------------------------------------------


def test_embedded_subset_shapes_balance_dtype() -> None:
    src = D.mnist_source(subset="embedded")
    assert src.kind == "embedded" and src.reason == ""
    assert (src.n_train, src.n_test) == (5000, 1000)
    assert "embedded MNIST subset (5000 train / 1000 test)" in str(src)
    (x, t), (xt, tt) = D.load_mnist(subset="embedded")
    assert x.shape == (5000, 784) and xt.shape == (1000, 784)
    assert x.dtype == np.float32 and t.dtype == np.int64
    assert 0.0 == x.min() and x.max() == 1.0
    assert np.bincount(t, minlength=10).tolist() == [500] * 10
    assert np.bincount(tt, minlength=10).tolist() == [100] * 10
    # real digits, not noise: mean ink and a mostly-empty border like MNIST
    assert 0.1 < x.mean() < 0.15
    assert x.reshape(-1, 28, 28)[:, :2, :].mean() < 0.01 < x.reshape(-1, 28, 28)[:, 12:16].mean()


def test_load_options() -> None:
    (x, t), (xt, tt) = D.load_mnist(False, False, True, subset="embedded", dtype=np.float64)
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.float64
    assert x.max() == 255.0 and np.array_equal(x, np.round(x))
    assert t.shape == (5000, 10) and t.dtype == np.float64
    assert np.array_equal(t.sum(axis=1), np.ones(5000)) and set(np.unique(t)) == {0.0, 1.0}
    (xr, lr), _ = D.load_mnist(normalize=False, subset="embedded", dtype=np.uint8)
    assert xr.dtype == np.uint8 and xr.shape == (5000, 784)
    np.testing.assert_array_equal(t.argmax(axis=1), lr)
    np.testing.assert_array_equal(x.reshape(5000, -1), xr)
    (xn, _), _ = D.load_mnist(subset="embedded")
    np.testing.assert_allclose(xn, xr / np.float32(255), rtol=0, atol=0)
    with pytest.raises(TypeError, match="floating dtype"):
        D.load_mnist(subset="embedded", dtype=np.uint8)
    with pytest.raises(ValueError, match="subset must be"):
        D.load_mnist(subset="small")


def test_fallback_to_embedded_warns() -> None:
    with pytest.warns(UserWarning, match=r"full MNIST is unavailable.*download=False"):
        src = D.mnist_source(download=False)
    assert src.kind == "embedded" and "fallback" in src.reason and "fallback" in str(src)
    with pytest.warns(UserWarning, match="embedded subset"):
        (x, t), _ = D.load_mnist(download=False)
    (xe, te), _ = D.load_mnist(subset="embedded")
    np.testing.assert_array_equal(x, xe)
    np.testing.assert_array_equal(t, te)
    with pytest.raises(D.MNISTNotFoundError):
        D.load_mnist(download=False, subset="full")


def test_full_source_description(tmp_path: Path) -> None:
    d = write_set(tmp_path / "m", fake_arrays())
    src = D.mnist_source(d)
    assert src.kind == "full" and src.directory == d
    assert str(src) == f"full MNIST (30 train / 12 test) from {d}"


# ---------------------------------------------------------------------------------------------
# The real full set (FASTCNN_DATA_DIR)
# ---------------------------------------------------------------------------------------------

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_full
def test_full_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTCNN_DATA_DIR", FULL_DIR)
    src = D.mnist_source()
    assert src.kind == "full" and (src.n_train, src.n_test) == (60000, 10000)
    D.verify_mnist(FULL_DIR)
    (x, t), (xt, tt) = src.load(normalize=False, dtype=np.uint8)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert np.bincount(t).tolist() == TRAIN_COUNTS
    assert np.bincount(tt).tolist() == TEST_COUNTS


@needs_full
def test_embedded_subset_is_reproducible_from_full(tmp_path: Path) -> None:
    from fastcnn.datasets._make_subset import make_subset

    written = make_subset(FULL_DIR, tmp_path / "subset")
    for path in written.values():
        assert path.read_bytes() == (D.EMBEDDED_DIR / path.name).read_bytes(), path.name


def test_verify_mnist_rejects_other_data(tmp_path: Path) -> None:
    d = write_set(tmp_path / "m", fake_arrays())
    with pytest.raises(D.IDXError, match=r"SHA-256 .* expected"):
        D.verify_mnist(d)
    with pytest.raises(D.MNISTNotFoundError):
        D.verify_mnist(tmp_path / "none")


# ---------------------------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------------------------


def make_xy(n: int = 103) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    return x, np.arange(n)


def test_loader_covers_every_sample_once() -> None:
    x, t = make_xy(103)
    loader = D.DataLoader(x, t, batch_size=10)
    assert len(loader) == 11
    batches = list(loader)
    assert len(batches) == 11
    assert [len(tb) for _, tb in batches] == [10] * 10 + [3]
    seen = np.concatenate([tb for _, tb in batches])
    assert sorted(seen.tolist()) == list(range(103))
    assert not np.array_equal(seen, np.arange(103))  # shuffled
    for xb, tb in batches:
        assert xb.shape == (len(tb), 4) and xb.dtype == np.float32
        np.testing.assert_array_equal(xb, x[tb])


def test_loader_drop_last_and_no_shuffle() -> None:
    x, t = make_xy(103)
    loader = D.DataLoader(x, t, batch_size=10, shuffle=False, drop_last=True)
    assert len(loader) == 10
    seen = np.concatenate([tb for _, tb in loader])
    np.testing.assert_array_equal(seen, np.arange(100))
    assert len(D.DataLoader(x, t, batch_size=200, drop_last=True)) == 0
    assert len(D.DataLoader(x, t, batch_size=200)) == 1


def test_loader_seeded_and_resumable() -> None:
    x, t = make_xy(50)

    def epoch_order(loader: D.DataLoader) -> list[int]:
        return np.concatenate([tb for _, tb in loader]).tolist()

    a = D.DataLoader(x, t, batch_size=7, seed=3)
    b = D.DataLoader(x, t, batch_size=7, seed=3)
    orders = [epoch_order(a) for _ in range(4)]
    assert a.epoch == 4
    assert orders == [epoch_order(b) for _ in range(4)]
    assert len({tuple(o) for o in orders}) == 4  # each epoch has its own order
    resumed = D.DataLoader(x, t, batch_size=7, seed=3)
    resumed.set_epoch(2)
    assert epoch_order(resumed) == orders[2] and resumed.epoch == 3
    np.testing.assert_array_equal(a.order(1), orders[1])
    other = D.DataLoader(x, t, batch_size=7, seed=4)
    assert epoch_order(other) != orders[0]


def test_loader_rejects_bad_arguments() -> None:
    x, t = make_xy(10)
    with pytest.raises(ValueError, match=r"same number of samples.*\(10, 4\).*\(9,\)"):
        D.DataLoader(x, t[:9])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        D.DataLoader(x, t, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        D.DataLoader(x, t, batch_size=2.0)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        D.DataLoader(x, t).set_epoch(-1)
    with pytest.raises(TypeError, match="augment must be None"):
        D.DataLoader(x, t, augment="yes")


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    (x, _), _ = D.load_mnist(flatten=False, subset="embedded")
    return x[:64]


@pytest.mark.parametrize("layout", ["nchw", "flat", "nhw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_augment_keeps_shape_dtype_range(digits: np.ndarray, layout: str, dtype: type) -> None:
    x = digits.astype(dtype)
    x = {"nchw": x, "flat": x.reshape(64, 784), "nhw": x[:, 0]}[layout]
    y = D.Augment(max_shift=3, max_rotation=15.0, seed=5)(x, epoch=1, batch=2)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert not np.array_equal(x, y)
    # ink is roughly preserved: digits stay inside the frame under small transforms
    ratio = y.reshape(64, -1).sum(axis=1) / x.reshape(64, -1).sum(axis=1)
    assert np.all((ratio > 0.85) & (ratio < 1.1))
    assert not np.shares_memory(x, y)


def test_augment_uint8(digits: np.ndarray) -> None:
    x = np.round(digits * 255).astype(np.uint8)
    y = D.Augment(seed=1)(x)
    assert y.dtype == np.uint8 and y.shape == x.shape


def test_augment_is_deterministic(digits: np.ndarray) -> None:
    aug = D.Augment(seed=9)
    y1 = aug(digits, epoch=3, batch=4)
    np.testing.assert_array_equal(y1, D.Augment(seed=9)(digits, epoch=3, batch=4))
    assert not np.array_equal(y1, aug(digits, epoch=3, batch=5))
    assert not np.array_equal(y1, aug(digits, epoch=4, batch=4))
    assert not np.array_equal(y1, D.Augment(seed=10)(digits, epoch=3, batch=4))
    shifts, angles = aug.params(1000)
    assert shifts.min() == -2 and shifts.max() == 2 and shifts.dtype.kind == "i"
    assert -10 <= angles.min() < -9 and 9 < angles.max() <= 10


def test_zero_augment_is_identity(digits: np.ndarray) -> None:
    y = D.Augment(max_shift=0, max_rotation=0.0)(digits)
    np.testing.assert_array_equal(y, digits)
    flat = digits.reshape(64, -1)
    np.testing.assert_array_equal(D.shift_rotate(flat, np.zeros((64, 2), int), np.zeros(64)), flat)


def _shifted(img: np.ndarray, down: int, right: int) -> np.ndarray:
    out = np.zeros_like(img)
    h, w = img.shape
    out[max(down, 0) : h + min(down, 0), max(right, 0) : w + min(right, 0)] = img[
        max(-down, 0) : h - max(down, 0), max(-right, 0) : w - max(right, 0)
    ]
    return out


def test_integer_shift_moves_pixels_exactly(digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    shifts = rng.integers(-4, 5, size=(64, 2))
    y = D.shift_rotate(digits, shifts, np.zeros(64))
    for b in range(64):
        np.testing.assert_array_equal(y[b, 0], _shifted(digits[b, 0], *shifts[b]))
    # a single lit pixel lands exactly where expected
    one = np.zeros((1, 1, 28, 28), np.float32)
    one[0, 0, 10, 12] = 1.0
    z = D.shift_rotate(one, np.array([[3, -5]]), np.zeros(1))
    assert np.argwhere(z[0, 0]).tolist() == [[13, 7]] and z.sum() == 1.0


def test_rotation_direction_and_centre(digits: np.ndarray) -> None:
    y = D.shift_rotate(digits, np.zeros((64, 2), int), np.full(64, 90.0))
    np.testing.assert_allclose(y[:, 0], np.rot90(digits[:, 0], 1, axes=(1, 2)), atol=1e-5)
    z = D.shift_rotate(digits, np.zeros((64, 2), int), np.full(64, -90.0))
    np.testing.assert_allclose(z[:, 0], np.rot90(digits[:, 0], -1, axes=(1, 2)), atol=1e-5)
    # a small rotation interpolates: values change but stay in range
    w = D.shift_rotate(digits, np.zeros((64, 2), int), np.full(64, 7.0))
    assert 0 <= w.min() and w.max() <= 1 and not np.array_equal(w, digits)


def test_shift_rotate_rejects_bad_input(digits: np.ndarray) -> None:
    with pytest.raises(ValueError, match="square"):
        D.shift_rotate(np.zeros((2, 10), np.float32), np.zeros((2, 2), int), np.zeros(2))
    with pytest.raises(ValueError, match=r"shifts must be integers of shape \(64, 2\)"):
        D.shift_rotate(digits, np.zeros((64, 2)), np.zeros(64))
    with pytest.raises(ValueError, match=r"angles must have shape \(64,\)"):
        D.shift_rotate(digits, np.zeros((64, 2), int), np.zeros(3))
    with pytest.raises(ValueError, match="max_rotation"):
        D.Augment(max_rotation=200.0)


def test_loader_with_augment(digits: np.ndarray) -> None:
    t = np.arange(64)
    aug = D.Augment(seed=2)
    loader = D.DataLoader(digits, t, batch_size=16, seed=1, augment=aug)
    first = list(loader)
    loader.set_epoch(0)
    again = list(loader)
    for (xa, ta), (xb, tb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    for i, (xb, tb) in enumerate(first):
        assert xb.shape == (16, 1, 28, 28)
        np.testing.assert_array_equal(xb, aug(digits[tb], epoch=0, batch=i))
    later = next(iter(loader))  # epoch 1: different augmentation of its batch
    assert not np.array_equal(later[0], aug(digits[later[1]], epoch=0, batch=0))


def test_the_embedded_subset_ships_with_the_package() -> None:
    # Committed in the source tree, so every build has it, with or without a full MNIST nearby.
    for name in NAMES:
        assert (D.EMBEDDED_DIR / f"{name}.gz").is_file(), name
    src = D.mnist_source(subset="embedded")
    assert (src.kind, src.n_train, src.n_test) == ("embedded", 5000, 1000)


def test_a_damaged_installation_without_the_subset_says_so(tmp_path: Path, monkeypatch) -> None:
    from fastcnn.datasets import _mnist

    monkeypatch.setattr(_mnist, "EMBEDDED_DIR", tmp_path / "none")
    with pytest.raises(D.MNISTNotFoundError, match="missing its embedded MNIST subset"):
        D.mnist_source(subset="embedded")
    with pytest.raises(D.MNISTNotFoundError, match="embedded MNIST subset.*reinstall"):
        D.load_mnist(data_dir=None, download=False, subset="embedded")
