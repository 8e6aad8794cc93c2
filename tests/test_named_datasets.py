"""Named datasets beyond MNIST: the table, Fashion-MNIST / KMNIST (IDX), CIFAR-10's binary
batches and archive, a folder of pictures, class names in model files, reports, evaluate and
predict, and `fastcnn train --dataset` end to end.

Every set is tiny and generated here; downloads come from a local http.server only (the table
rows are pointed at it with their checksums replaced by the generated files' own), and every
test runs with an empty cache and no mirrors left pointing at the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fastcnn import cli, models
from fastcnn import datasets as D
from fastcnn.datasets import _mnist
from fastcnn.train import classification_report, format_report
from mirror import Mirror, dead_url

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
CIFAR_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache, no FASTCNN_DATA_DIR, and no mirror anywhere but the tests' own."""
    cache = tmp_path / "cache-root"
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(cache))
    monkeypatch.delenv("FASTCNN_DATA_DIR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(_mnist, "MIRRORS", [])
    for name, row in list(D.DATASETS.items()):
        monkeypatch.setitem(D.DATASETS, name, dataclasses.replace(row, mirrors=()))
    return cache


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------
# Generated sets
# ---------------------------------------------------------------------------------------------


def idx_arrays(seed: int = 0, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx_set(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in D.MNIST_FILES.items():
        D.write_idx(directory / f"{name}.gz", arrays[role])
    return directory


def cifar_records(seed: int, n: int) -> bytes:
    """n records: label k % 10, then R, G, B planes (random, R's first pixel = label)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes()


def write_cifar(directory: Path, per_batch: int = 6, n_test: int = 10) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CIFAR_NAMES):
        (directory / name).write_bytes(
            cifar_records(i, n_test if name == "test_batch.bin" else per_batch)
        )
    return directory


def cifar_tarball(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def cifar_members(per_batch: int = 6, n_test: int = 10) -> dict[str, bytes]:
    out = {"cifar-10-batches-bin/readme.html": b"<html></html>"}
    for i, name in enumerate(CIFAR_NAMES):
        n = n_test if name == "test_batch.bin" else per_batch
        out[f"cifar-10-batches-bin/{name}"] = cifar_records(i, n)
    return out


def draw(kind: int, size: tuple[int, int] = (40, 36), light: bool = False) -> np.ndarray:
    """A simple picture of one of three shapes (a bar, a block, a cross), slightly varied."""
    img = np.zeros(size, dtype=np.uint8)
    h, w = size
    if kind == 0:
        img[4 : h - 4, w // 2 - 2 : w // 2 + 2] = 255
    elif kind == 1:
        img[8 : h - 8, 6 : w - 6] = 255
    else:
        img[h // 2 - 2 : h // 2 + 2, 4 : w - 4] = 255
        img[4 : h - 4, w // 2 - 2 : w // 2 + 2] = 255
    return 255 - img if light else img


def write_pictures(root: Path, classes: dict[str, int], n: int = 5) -> Path:
    from PIL import Image

    for name, kind in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(draw(kind, (40 + i, 36), light=i % 2 == 1)).save(
                root / name / f"{i}.png"
            )
    return root


# ---------------------------------------------------------------------------------------------
# A local mirror
# ---------------------------------------------------------------------------------------------


def point_at(
    monkeypatch: pytest.MonkeyPatch, name: str, md5: dict[str, str], mirrors: list[str]
) -> None:
    """The test hook: the table row of ``name`` with the generated files' MD5 and the local
    mirrors (verification itself is untouched)."""
    row = D.DATASETS[name]
    monkeypatch.setitem(D.DATASETS, name, dataclasses.replace(row, md5=md5, mirrors=tuple(mirrors)))


@pytest.fixture
def idx_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mirror, dict]]:
    """A local mirror of a generated KMNIST; the row's MD5 are the generated files'."""
    arrays = idx_arrays(5)
    d = write_idx_set(tmp_path / "served", arrays)
    files = {f"{n}.gz": (d / f"{n}.gz").read_bytes() for n in D.MNIST_FILES.values()}
    md5 = {n: hashlib.md5(files[f"{n}.gz"]).hexdigest() for n in D.MNIST_FILES.values()}
    server = Mirror(files)
    point_at(monkeypatch, "kmnist", md5, [server.url + "/good/"])
    try:
        yield server, arrays
    finally:
        server.close()


@pytest.fixture
def cifar_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    body = cifar_tarball(cifar_members())
    server = Mirror({"cifar-10-binary.tar.gz": body})
    md5 = {"cifar-10-binary.tar.gz": hashlib.md5(body).hexdigest()}
    point_at(monkeypatch, "cifar10", md5, [server.url + "/good/"])
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def test_the_table() -> None:
    assert D.dataset_names() == ("mnist", "fashion-mnist", "kmnist", "cifar10", "folder")
    for row in D.DATASETS.values():
        assert row.n_classes == 10 and len(set(row.classes)) == 10
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in row.md5.values())
    assert D.DATASETS["fashion-mnist"].classes[0] == "T-shirt/top"
    assert D.DATASETS["fashion-mnist"].classes[9] == "Ankle boot"
    assert D.DATASETS["kmnist"].classes == (
        "o",
        "ki",
        "su",
        "tsu",
        "na",
        "ha",
        "ma",
        "ya",
        "re",
        "wo",
    )
    assert D.DATASETS["cifar10"].image_shape == (3, 32, 32)
    assert D.DATASETS["cifar10"].classes[:2] == ("airplane", "automobile")
    # MNIST's row is made of MNIST's own names, not copies of them
    assert D.DATASETS["mnist"].md5 is D.MNIST_MD5 and D.DATASETS["mnist"].files is D.MNIST_FILES


def test_real_checksums_are_the_published_ones() -> None:
    # The tests point rows at generated files through dataclasses.replace; the table itself
    # keeps the published values (spot checks, one per dataset).
    from fastcnn.datasets import _registry

    assert _registry.DATASETS["cifar10"].md5 == {
        "cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"
    }
    assert _registry.DATASETS["fashion-mnist"].md5["train-images-idx3-ubyte"] == (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    )
    assert _registry.DATASETS["kmnist"].md5["t10k-labels-idx1-ubyte"] == (
        "7320c461ea6c1c855c0b718fb2a4b134"
    )


def test_bad_names_and_options() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*fashion-mnist"):
        D.dataset_source("svhn")
    with pytest.raises(ValueError, match="MNIST's only"):
        D.dataset_source("fashion-mnist", subset="embedded")
    with pytest.raises(ValueError, match="needs data_dir"):
        D.dataset_source("folder")


# ---------------------------------------------------------------------------------------------
# IDX sets: local files and downloads
# ---------------------------------------------------------------------------------------------


def test_fashion_mnist_from_a_directory(tmp_path: Path) -> None:
    arrays = idx_arrays(1)
    d = write_idx_set(tmp_path / "fm", arrays)
    src = D.dataset_source("fashion-mnist", d)
    assert isinstance(src, D.IDXSource) and not isinstance(src, D.MNISTSource)
    assert (src.name, src.kind, src.directory, src.image_shape) == (
        "fashion-mnist",
        "full",
        d,
        (1, 28, 28),
    )
    assert src.classes == D.DATASETS["fashion-mnist"].classes
    assert str(src) == f"Fashion-MNIST (30 train / 12 test) from {d}"
    (x, t), (xt, tt) = src.load(normalize=False, flatten=False, dtype=np.uint8)
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(tt, arrays["test_labels"])
    x1, t1 = src.load_test()
    assert x1.shape == (12, 1, 28, 28) and x1.dtype == np.float32 and x1.max() <= 1
    (x2, t2), _ = D.load_dataset("fashion-mnist", True, True, True, data_dir=d)
    assert x2.shape == (30, 784) and t2.shape == (30, 10)
    with pytest.raises(D.DatasetNotFoundError, match="data_dir is incomplete"):
        D.dataset_source("kmnist", tmp_path / "nothing")


def test_idx_sets_keep_their_checks(tmp_path: Path) -> None:
    arrays = idx_arrays(2)
    arrays["train_images"] = np.zeros((30, 32, 32), dtype=np.uint8)
    src = D.dataset_source("fashion-mnist", write_idx_set(tmp_path / "a", arrays))
    with pytest.raises(D.IDXError, match="expected 28x28 images"):
        src.load()
    arrays = idx_arrays(2)
    arrays["test_labels"][3] = 10
    src = D.dataset_source("kmnist", write_idx_set(tmp_path / "b", arrays))
    with pytest.raises(D.IDXError, match=r"labels must be in \[0, 10\)"):
        src.load_test()


def test_download_verifies_and_the_cache_is_reused(idx_server, _isolated: Path) -> None:
    server, arrays = idx_server
    src = D.dataset_source("kmnist")
    assert src.directory == _isolated / "kmnist"
    assert sorted(p.name for p in src.directory.iterdir()) == sorted(
        f"{n}.gz" for n in D.MNIST_FILES.values()
    )
    (x, _), (_, tt) = src.load(normalize=False, flatten=False, dtype=np.uint8)
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(tt, arrays["test_labels"])
    server.close()  # found in the cache now: no server needed
    n = len(server.requests)
    assert D.dataset_source("kmnist", download=False).directory == src.directory
    assert len(server.requests) == n


def test_a_corrupt_or_dead_mirror_falls_back_to_the_next(
    idx_server, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    server, _ = idx_server
    row = D.DATASETS["kmnist"]
    mirrors = [dead_url(), server.url + "/missing/", server.url + "/corrupt/", server.url + "/good"]
    point_at(monkeypatch, "kmnist", dict(row.md5), mirrors)
    src = D.dataset_source("kmnist")
    for name in D.MNIST_FILES.values():
        assert (src.directory / f"{name}.gz").read_bytes() == server.files[f"{name}.gz"]
        assert f"/corrupt/{name}.gz" in server.requests
    assert sorted(p.name for p in src.directory.iterdir()) == sorted(
        f"{n}.gz" for n in D.MNIST_FILES.values()
    )  # no temporary files left


def test_all_mirrors_failing_is_a_clear_error(
    idx_server, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    server, _ = idx_server
    dead = dead_url()
    row = D.DATASETS["kmnist"]
    point_at(
        monkeypatch,
        "kmnist",
        dict(row.md5),
        [dead, server.url + "/missing/", server.url + "/corrupt/"],
    )
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.dataset_source("kmnist")
    text = str(info.value)
    assert "KMNIST not found; looked in" in text and "FASTCNN_DATA_DIR" not in text
    assert "could not download train-images-idx3-ubyte.gz" in text
    assert f"{dead}train-images-idx3-ubyte.gz: ConnectionError" in text
    assert "/missing/train-images-idx3-ubyte.gz: HTTPError: 404" in text
    assert "/corrupt/train-images-idx3-ubyte.gz: ValueError: MD5 hash" in text
    assert list((_isolated / "kmnist").iterdir()) == []  # nothing half-written
    with pytest.raises(D.DatasetNotFoundError, match="download=False"):
        D.dataset_source("kmnist", download=False)
    point_at(monkeypatch, "kmnist", dict(row.md5), [])
    with pytest.raises(D.DatasetNotFoundError, match="no mirrors configured"):
        D.dataset_source("kmnist")


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


def test_cifar_batches_from_a_directory(tmp_path: Path) -> None:
    d = write_cifar(tmp_path / "c")
    src = D.dataset_source("cifar10", d)
    assert isinstance(src, D.CIFARSource) and src.image_shape == (3, 32, 32)
    assert (src.n_train, src.n_test) == (30, 10)
    assert str(src) == f"CIFAR-10 (30 train / 10 test) from {d}"
    (x, t), (xt, tt) = src.load(normalize=False, flatten=False, dtype=np.uint8)
    assert x.shape == (30, 3, 32, 32) and xt.shape == (10, 3, 32, 32)
    raw = np.frombuffer((d / "data_batch_2.bin").read_bytes(), np.uint8).reshape(6, 3073)
    np.testing.assert_array_equal(t[6:12], raw[:, 0])
    np.testing.assert_array_equal(x[6, 0], raw[0, 1:1025].reshape(32, 32))  # the R plane
    np.testing.assert_array_equal(x[6, 2], raw[0, 2049:].reshape(32, 32))  # the B plane
    # the archive's own folder is found too
    nested = tmp_path / "n"
    write_cifar(nested / "cifar-10-batches-bin")
    assert D.dataset_source("cifar10", nested).load_test()[0].shape == (10, 3, 32, 32)


def test_cifar_bad_batches(tmp_path: Path) -> None:
    d = write_cifar(tmp_path / "c")
    with open(d / "data_batch_3.bin", "ab") as f:
        f.write(b"\0" * 100)  # not a whole record
    with pytest.raises(D.CIFARError, match=r"data_batch_3.bin: truncated or not a CIFAR-10 batch"):
        D.dataset_source("cifar10", d).load()
    d = write_cifar(tmp_path / "d")
    body = bytearray((d / "test_batch.bin").read_bytes())
    body[3073] = 12
    (d / "test_batch.bin").write_bytes(bytes(body))
    with pytest.raises(D.CIFARError, match=r"test record 1 has label 12"):
        D.dataset_source("cifar10", d).load_test()
    (d / "data_batch_5.bin").unlink()
    with pytest.raises(D.DatasetNotFoundError, match="lacks data_batch_5.bin"):
        D.dataset_source("cifar10", d)


def test_cifar_download_unpacks_and_is_reused(cifar_server, _isolated: Path) -> None:
    src = D.dataset_source("cifar10")
    cache = _isolated / "cifar10"
    assert src.directory == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(CIFAR_NAMES)  # archive removed
    assert (src.n_train, src.n_test) == (30, 10)
    n = len(cifar_server.requests)
    assert D.dataset_source("cifar10", download=False) == src
    assert len(cifar_server.requests) == n


@pytest.mark.parametrize("case", ["link", "outside", "truncated", "partial"])
def test_cifar_archive_is_unpacked_safely(case: str, tmp_path: Path) -> None:
    from fastcnn.datasets._cifar import extract_cifar

    members = cifar_members()
    links: tuple[str, ...] = ()
    if case == "link":
        del members["cifar-10-batches-bin/data_batch_1.bin"]
        links = ("cifar-10-batches-bin/data_batch_1.bin",)
        match = "not a regular file"
    elif case == "outside":  # a path out of the target is never used: the member is not found
        members["../data_batch_1.bin"] = members.pop("cifar-10-batches-bin/data_batch_1.bin")
        match = "lacks"
    elif case == "truncated":
        members["cifar-10-batches-bin/test_batch.bin"] = b"\1" * 5000
        match = "not a whole number"
    else:
        match = "cannot unpack"
    archive = tmp_path / "a.tar.gz"
    body = cifar_tarball(members, links)
    archive.write_bytes(body[: len(body) // 2] if case == "partial" else body)
    target = tmp_path / "target" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(D.CIFARError, match=match):
        extract_cifar(D.DATASETS["cifar10"], archive, target)
    assert not (tmp_path / "target" / "data_batch_1.bin").exists()
    assert not [p for p in target.iterdir() if p.name.endswith(".part")]


# ---------------------------------------------------------------------------------------------
# A folder of pictures
# ---------------------------------------------------------------------------------------------


def test_folder_dataset(tmp_path: Path) -> None:
    from fastcnn._digits import load_digits

    root = write_pictures(tmp_path / "pics", {"10": 0, "2": 1, "7": 2})
    src = D.dataset_source("folder", root)
    assert isinstance(src, D.FolderSource) and src.kind == "folder"
    assert src.classes == ("2", "7", "10")  # numeric names sorted numerically
    assert (src.n_train, src.n_test) == (12, 3)  # 20 % of each class's 5
    assert str(src).startswith("image folder of 3 classes (12 train / 3 test; test: 20% of each")
    (x, t), (xt, tt) = src.load(flatten=False)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
    assert np.bincount(t).tolist() == [4, 4, 4] and sorted(tt.tolist()) == [0, 1, 2]
    # the same split every time, and each picture prepared exactly as predict prepares it
    assert [p.name for p in src.images["test"]["10"]] == [
        p.name for p in D.FolderSource(root).images["test"]["10"]
    ]
    first = src.images["train"]["2"][0]
    np.testing.assert_array_equal(x[0], load_digits(first)[1][0])


def test_folder_with_train_and_test_folders(tmp_path: Path) -> None:
    write_pictures(tmp_path / "d" / "train", {"bar": 0, "block": 1}, n=3)
    write_pictures(tmp_path / "d" / "test", {"bar": 0, "block": 1}, n=2)
    src = D.dataset_source("folder", tmp_path / "d")
    assert src.classes == ("bar", "block") and (src.n_train, src.n_test) == (6, 4)
    assert "of each class" not in str(src)
    write_pictures(tmp_path / "d" / "test", {"cross": 2}, n=1)
    with pytest.raises(D.FolderError, match=r"classes \['cross'\] have no folder"):
        D.dataset_source("folder", tmp_path / "d")


def test_folder_errors(tmp_path: Path) -> None:
    root = write_pictures(tmp_path / "p", {"a": 0, "b": 1}, n=2)
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("not a picture")
    with pytest.raises(D.FolderError, match=r"p/c: class folder holds no images"):
        D.dataset_source("folder", root)
    (root / "c" / "bad.png").write_bytes(b"not a png at all")
    (root / "c" / "bad2.png").write_bytes(b"nor this")
    src = D.dataset_source("folder", root)
    with pytest.raises(D.FolderError, match=r"c/bad2?\.png"):
        src.load()
    one = write_pictures(tmp_path / "one", {"a": 0})
    with pytest.raises(D.FolderError, match="at least 2 class sub-folders.*found 1 \\(a\\)"):
        D.dataset_source("folder", one)
    with pytest.raises(D.FolderError, match="no such directory"):
        D.dataset_source("folder", tmp_path / "none")


# ---------------------------------------------------------------------------------------------
# Class names: model files and reports
# ---------------------------------------------------------------------------------------------


def test_model_files_carry_class_names(tmp_path: Path) -> None:
    m = models.SimpleConvNet(output_size=3, backend="reference")
    assert m.classes is None
    m.save(tmp_path / "plain.npz")
    assert models.load(tmp_path / "plain.npz", backend="reference").classes is None  # as before
    m.classes = ("cat", "dog", "eel")
    m.save(tmp_path / "named.npz")
    assert models.load(tmp_path / "named.npz", backend="reference").classes == ("cat", "dog", "eel")
    m.classes = ("cat", "dog")
    m.save(tmp_path / "wrong.npz")
    with pytest.raises(models.ModelFileError, match="names 2 classes but the model has 3 outputs"):
        models.load(tmp_path / "wrong.npz")


def test_report_names_classes() -> None:
    y, p = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])
    report = classification_report(y, p, 3, ["Trouser", "Bag", "Ankle boot"])
    assert report["classes"] == ["Trouser", "Bag", "Ankle boot"]
    text = format_report(report)
    assert "    2  Ankle boot" in text and "    0  Trouser  " in text
    digits = format_report(classification_report(y, p, 3, ["0", "1", "2"]))
    assert digits == format_report(classification_report(y, p, 3))  # digits need no names
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_report(y, p, 3, ["a", "b"])


# ---------------------------------------------------------------------------------------------
# fastcnn train / evaluate / predict --dataset
# ---------------------------------------------------------------------------------------------

TRAIN = ("--epochs", "1", "--limit-batches", "2", "--batch-size", "5", "--no-progress")


def test_cli_fashion_mnist_local_files_then_evaluate_predict_resume(capsys, tmp_path: Path) -> None:
    d = write_idx_set(tmp_path / "fm", idx_arrays(3))
    out = tmp_path / "run"
    rc, text, err = run(capsys, "train", "--dataset", "fashion-mnist", "--data-dir", d,
                        "--model", "simple", "--out", out, *TRAIN)  # fmt: skip
    assert rc == 0, err
    assert f"data:      Fashion-MNIST (30 train / 12 test) from {d}" in text
    assert "full MNIST" not in text and "    9  Ankle boot" in text
    log = json.loads((out / "log.json").read_text())
    assert log["data"]["dataset"] == "fashion-mnist" and log["data"]["kind"] == "full"
    assert log["data"]["classes"] == list(D.DATASETS["fashion-mnist"].classes)
    assert log["report"]["classes"][0] == "T-shirt/top"
    model = models.load(out / "model.npz")
    assert model.classes == D.DATASETS["fashion-mnist"].classes
    # evaluate: the dataset the model's classes name, its files from --data-dir
    rc, text, err = run(capsys, "evaluate", out / "model.npz", "--data-dir", d)
    assert rc == 0, err
    assert "data:   Fashion-MNIST (30 train / 12 test)" in text and "Ankle boot" in text
    # ... and not a dataset of other classes
    rc, _, err = run(
        capsys, "evaluate", out / "model.npz", "--dataset", "mnist", "--subset", "embedded"
    )
    assert rc == 2 and "trained on the classes T-shirt/top" in err and "give its --dataset" in err
    # predict names the class
    np.save(tmp_path / "one.npy", idx_arrays(3)["test_images"][0])
    rc, text, err = run(capsys, "predict", out / "model.npz", tmp_path / "one.npy", "--top", "2")
    assert rc == 0, err
    best, _, rest = text.strip().partition("  next: ")
    assert best.split(": ", 1)[1].rsplit(" (", 1)[0] in D.DATASETS["fashion-mnist"].classes
    assert rest.rsplit(" (", 1)[0] in D.DATASETS["fashion-mnist"].classes
    # resume finds the same dataset from the checkpoint's record
    rc, text, err = run(capsys, "train", "--resume", out / "checkpoint.npz", "--epochs", "2",
                        "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert "Fashion-MNIST (30 train / 12 test)" in text
    # ... and reads a new --data-dir as that dataset's files (not MNIST's, of the same names)
    moved = write_idx_set(tmp_path / "moved", idx_arrays(3))
    rc, text, err = run(capsys, "train", "--resume", out / "checkpoint.npz", "--epochs", "3",
                        "--data-dir", moved, "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert f"Fashion-MNIST (30 train / 12 test) from {moved}" in text
    # ... and refuses another dataset of the same shapes and class count
    rc, _, err = run(capsys, "train", "--resume", out / "checkpoint.npz", "--epochs", "4",
                     "--dataset", "kmnist", "--data-dir", moved, "--no-progress")  # fmt: skip
    assert rc == 2 and "trained on fashion-mnist, the data given is kmnist" in err


@pytest.mark.parametrize("model", ["deep", str(EXAMPLES / "cifar_resnet.json")])
def test_cli_cifar10_local_files(capsys, tmp_path: Path, model: str) -> None:
    d = write_cifar(tmp_path / "c")
    out = tmp_path / "run"
    rc, text, err = run(capsys, "train", "--dataset", "cifar10", "--data-dir", d, "--model", model,
                        "--out", out, *TRAIN)  # fmt: skip
    assert rc == 0, err
    assert "CIFAR-10 (30 train / 10 test)" in text and "    9  truck" in text
    log = json.loads((out / "log.json").read_text())
    assert log["data"]["dataset"] == "cifar10" and log["data"]["image_shape"] == [3, 32, 32]
    trained = models.load(out / "model.npz")
    assert trained.input_dim == (3, 32, 32) and trained.classes[0] == "airplane"
    rc, text, err = run(capsys, "evaluate", out / "model.npz", "--data-dir", d)
    assert rc == 0 and "truck" in text, err


def test_cli_folder(capsys, tmp_path: Path) -> None:
    root = write_pictures(tmp_path / "pics", {"bar": 0, "block": 1, "cross": 2})
    out = tmp_path / "run"
    rc, text, err = run(capsys, "train", "--dataset", "folder", "--data-dir", root,
                        "--model", "simple", "--out", out, *TRAIN)  # fmt: skip
    assert rc == 0, err
    assert "image folder of 3 classes (12 train / 3 test" in text and "    2  cross" in text
    log = json.loads((out / "log.json").read_text())
    assert log["data"]["dataset"] == "folder" and log["data"]["classes"] == [
        "bar",
        "block",
        "cross",
    ]
    rc, text, err = run(capsys, "predict", out / "model.npz", root / "cross" / "0.png")
    assert rc == 0, err
    assert text.split(": ", 1)[1].split(" (")[0] in ("bar", "block", "cross")
    rc, text, err = run(
        capsys, "evaluate", out / "model.npz", "--dataset", "folder", "--data-dir", root
    )
    assert rc == 0 and "cross" in text, err


@pytest.mark.parametrize("name", ["kmnist", "cifar10"])
def test_cli_train_downloads(capsys, tmp_path: Path, name: str, request) -> None:
    request.getfixturevalue("idx_server" if name == "kmnist" else "cifar_server")
    rc, text, err = run(capsys, "train", "--dataset", name, "--model", "simple",
                        "--out", tmp_path / "run", *TRAIN)  # fmt: skip
    assert rc == 0, err
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log["data"]["dataset"] == name
    assert log["data"]["directory"] == str(tmp_path / "cache-root" / name)


def test_cli_data_errors(capsys, tmp_path: Path) -> None:
    d = write_cifar(tmp_path / "c")
    cases = [
        (("--dataset", "fashion-mnist", "--subset", "embedded"), "--subset is MNIST's only"),
        (("--dataset", "folder"), "--dataset folder needs --data-dir"),
        (("--dataset", "cifar10", "--data-dir", d, "--model", EXAMPLES / "small_resnet.json"),
         "takes 1x28x28 images and has 10 outputs, but CIFAR-10 has 3x32x32 images"),
        (("--dataset", "kmnist", "--data-dir", tmp_path / "none"), "data_dir is incomplete"),
    ]  # fmt: skip
    for args, message in cases:
        rc, _, err = run(capsys, "train", *args, "--out", tmp_path / "run", *TRAIN)
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
