"""Red-team regressions for issue 14's code (named datasets, predict on photos, the trainer's
selection features): each test is a hostile or unlucky input that once got through, and fails
without its fix. Every input is small and generated here; downloads come from a local
http.server only."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import struct
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets as D
from fastcnn import train
from fastcnn.datasets._cifar import extract_cifar
from mirror import Mirror

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


@pytest.fixture
def kmnist_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """KMNIST's row pointed at a local mirror of a generated set (its own MD5s)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(20) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(10) % 10).astype(np.uint8),
    }
    files = {}
    for role, name in D.MNIST_FILES.items():
        path = D.write_idx(tmp_path / f"{name}.gz", arrays[role])
        files[f"{name}.gz"] = path.read_bytes()
    md5 = {n: hashlib.md5(files[f"{n}.gz"]).hexdigest() for n in D.MNIST_FILES.values()}
    mirror = Mirror(files)
    row = dataclasses.replace(D.DATASETS["kmnist"], md5=md5, mirrors=(mirror.url + "/good/",))
    monkeypatch.setitem(D.DATASETS, "kmnist", row)
    try:
        yield mirror
    finally:
        mirror.close()


@pytest.mark.parametrize("mode", ["html", "cut"])
def test_a_portal_page_or_a_cut_transfer_leaves_nothing_to_use(kmnist_mirror, mode, tmp_path):
    kmnist_mirror.mode = mode
    with pytest.raises(D.DatasetNotFoundError, match="every mirror failed"):
        D.dataset_source("kmnist")
    cache = tmp_path / "cache-root" / "kmnist"
    assert [p.name for p in cache.iterdir()] == []  # no partial or unverified file
    kmnist_mirror.mode = "good"  # the next attempt downloads cleanly and is used
    assert D.dataset_source("kmnist").n_train == 20


@pytest.mark.parametrize("blocked", ["root", "dataset"])
def test_a_cache_path_that_is_a_file_is_a_dataset_error(
    kmnist_mirror, blocked, tmp_path, monkeypatch
):
    """The cache root (or its dataset folder) is a file: the download cannot start. That was a
    bare NotADirectoryError / FileExistsError ('[Errno 20] Not a directory: ...'), not the
    DatasetNotFoundError every other failure to find a dataset is."""
    root = tmp_path / "cache-file"
    if blocked == "root":
        root.write_text("not a directory")
    else:
        root.mkdir()
        (root / "kmnist").write_text("not a directory")
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(root))
    with pytest.raises(D.DatasetNotFoundError, match="cannot create the download directory"):
        D.dataset_source("kmnist")


def test_idx_headers_and_gzip_streams_that_lie_are_refused(tmp_path):
    """A 60-byte .gz declaring 60,001 training images, and a .gz cut short: each an IDXError
    naming the file, before (or instead of) a large allocation."""
    d = tmp_path / "fashion"
    d.mkdir()
    arrays = {
        "train_images": np.zeros((4, 28, 28), np.uint8),
        "train_labels": np.zeros(4, np.uint8),
        "test_images": np.zeros((2, 28, 28), np.uint8),
        "test_labels": np.zeros(2, np.uint8),
    }
    for role, name in D.MNIST_FILES.items():
        D.write_idx(d / f"{name}.gz", arrays[role])
    images = d / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(struct.pack(">IIII", 2051, 60_001, 28, 28), mtime=0))
    with pytest.raises(D.IDXError, match="60,001 images"):
        D.load_dataset("fashion-mnist", data_dir=d)
    D.write_idx(images, np.zeros((4, 28, 28), np.uint8))
    images.write_bytes(images.read_bytes()[:-12])
    with pytest.raises(D.IDXError, match=r"train-images.*(corrupt gzip|truncated)"):
        D.load_dataset("fashion-mnist", data_dir=d)


# ---------------------------------------------------------------------------------------------
# A folder of pictures
# ---------------------------------------------------------------------------------------------


def _bar(size: tuple[int, int] = (30, 26), kind: int = 0) -> np.ndarray:
    img = np.zeros(size, dtype=np.uint8)
    h, w = size
    if kind == 0:
        img[3 : h - 3, w // 2 - 2 : w // 2 + 2] = 255
    else:
        img[h // 2 - 2 : h // 2 + 2, 3 : w - 3] = 255
    return img


def _classes(root: Path, n: int = 3) -> Path:
    from PIL import Image

    for name, kind in (("bar", 0), ("dash", 1)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_bar((30 + i, 26), kind)).save(root / name / f"{i}.png")
    return root


def test_a_folder_unzipped_on_a_mac_reads_as_its_classes(tmp_path):
    """A zip made on macOS unpacks a __MACOSX folder of '._' resource forks beside the
    classes (and .DS_Store files): it was taken as a class and refused as holding no images."""
    root = _classes(tmp_path / "digits")
    (root / "__MACOSX" / "bar").mkdir(parents=True)
    (root / "__MACOSX" / "bar" / "._0.png").write_bytes(b"\0\5\26\7resource fork")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "bar" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "bar" / "._1.png").write_bytes(b"\0\5\26\7resource fork")
    source = D.dataset_source("folder", root)
    assert source.classes == ("bar", "dash")
    (x, t), (x_test, t_test) = source.load(flatten=False)
    assert len(t) + len(t_test) == 6 and x.shape[1:] == (1, 28, 28)


def test_folder_pictures_of_every_mode_and_odd_names_are_read(tmp_path):
    """Palette, 16-bit, RGBA, CMYK JPEG, a non-ASCII name, mixed sizes, a looping symlink
    (skipped): all one dataset; a 1x1, a picture over the pixel limit or a file that is no
    picture is an error naming it."""
    from PIL import Image

    root = _classes(tmp_path / "d")
    img = _bar((40, 33))
    Image.fromarray(img).convert("P").save(root / "bar" / "palette.png")
    Image.fromarray(img.astype(np.uint16) * 257).save(root / "bar" / "sixteen.png")
    Image.fromarray(img).convert("RGBA").save(root / "bar" / "alpha.png")
    Image.fromarray(_bar((50, 61), 1)).convert("CMYK").save(root / "dash" / "cmyk.jpg")
    Image.fromarray(_bar((29, 26), 1)).save(root / "dash" / "ünï 日本.png")
    (root / "dash" / "loop.png").symlink_to("loop.png")
    source = D.dataset_source("folder", root)
    (x, _), (x_test, _) = source.load(flatten=False)
    assert len(x) + len(x_test) == 11 and np.isfinite(x).all()
    for name, write in (
        ("tiny.png", lambda p: Image.new("L", (1, 1), 0).save(p)),
        ("huge.png", lambda p: Image.new("L", (2100, 1000), 0).save(p)),
        ("junk.png", lambda p: p.write_bytes(b"GIF89a but not really")),
    ):
        path = root / "bar" / name
        write(path)
        with pytest.raises(D.FolderError, match=str(path)):
            D.dataset_source("folder", root).load()
        path.unlink()


# ---------------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory) -> Path:
    from fastcnn import models

    path = tmp_path_factory.mktemp("model") / "model.npz"
    models.SimpleConvNet(backend="reference").save(path)
    return path


def _predict(capsys, monkeypatch, *argv: object) -> tuple[int, list[str], list[str]]:
    from fastcnn import cli

    monkeypatch.delenv("FASTCNN_DEBUG", raising=False)
    rc = cli.main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def test_predict_gives_every_odd_npy_one_line(capsys, monkeypatch, tmp_path, digit_model):
    """float16, int, bool, Fortran order, NaN, inf, object, complex and empty arrays: a
    prediction or one error line each, in order, exit 2, never a traceback. An empty batch
    (0, 28, 28) or (0, 784) once printed nothing at all for its file and exited 0."""
    rng = np.random.default_rng(0)
    nan = rng.random((28, 28))
    nan[3, 3] = np.nan
    arrays: dict[str, np.ndarray] = {
        "f16": rng.random((28, 28)).astype(np.float16),
        "int": rng.integers(-5, 300, (28, 28)).astype(np.int32),
        "bool": rng.random((28, 28)) > 0.5,
        "fortran": np.asfortranarray(rng.random((2, 28, 28))),
        "nan": nan,
        "inf": np.full((28, 28), np.inf),
        "complex": np.zeros((28, 28), complex),
        "empty": np.zeros((0, 28, 28), np.uint8),
        "empty784": np.zeros((0, 784), np.float32),
    }
    paths = []
    for name, arr in arrays.items():
        paths.append(tmp_path / f"{name}.npy")
        np.save(paths[-1], arr)
    obj = tmp_path / "object.npy"
    np.save(obj, np.array([[1, None]], dtype=object), allow_pickle=True)
    paths.append(obj)
    rc, out, err = _predict(capsys, monkeypatch, digit_model, *paths)
    assert rc == 2
    names = [line.split(": ")[0] for line in out]
    assert names == [
        str(paths[0]),
        str(paths[1]),
        str(paths[2]),
        f"{paths[3]}[0]",
        f"{paths[3]}[1]",
    ]
    failed = {Path(line.split(": ")[0]).stem: line for line in err}
    assert list(failed) == ["nan", "inf", "complex", "empty", "empty784", "object"]
    assert "holds no images" in failed["empty"] and "holds no images" in failed["empty784"]
    assert all(": error: " in line for line in err)


def test_predict_names_with_a_newline_keep_one_line_each(
    capsys, monkeypatch, tmp_path, digit_model
):
    """A file name holding a newline split its prediction over two lines, and its error line
    too (with the name repeated in the message); control characters are now escaped."""
    from PIL import Image

    good = tmp_path / "two\nlines.png"
    Image.fromarray(_bar((40, 30))).save(good)
    bad = tmp_path / "bad\rname.png"
    bad.write_bytes(b"<html>not a picture</html>")
    rc, out, err = _predict(capsys, monkeypatch, digit_model, good, bad)
    assert rc == 2
    assert len(out) == 1 and out[0].startswith(f"{tmp_path}/two\\nlines.png: ")
    assert err == [f"{tmp_path}/bad\\rname.png: error: not an image file Pillow can read"]


def test_predict_on_things_that_are_not_files(capsys, monkeypatch, tmp_path, digit_model):
    """A directory and a FIFO are never opened (a FIFO would block): each one line."""
    import os

    folder = tmp_path / "folder.png"
    folder.mkdir()
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    rc, out, err = _predict(capsys, monkeypatch, digit_model, folder, fifo, tmp_path / "gone.png")
    assert rc == 2 and out == []
    assert err == [
        f"{folder}: error: is a directory, not a file",
        f"{fifo}: error: not a regular file (a device, FIFO or socket)",
        f"{tmp_path / 'gone.png'}: error: no such file",
    ]


def test_predict_pictures_without_a_digit_say_so(capsys, monkeypatch, tmp_path, digit_model):
    """All white, all black, pure noise and a 1x1 picture: no digit, one line each (noise was
    called 'uniform'); a digit touching the border and a large JPEG (decoded at a reduced
    scale) are predicted."""
    from PIL import Image

    rng = np.random.default_rng(1)
    pictures = {
        "white.png": np.full((40, 40), 255, np.uint8),
        "black.png": np.zeros((40, 40), np.uint8),
        "noise.png": rng.integers(0, 256, (60, 60), dtype=np.uint8),
        "dot.png": np.zeros((1, 1), np.uint8),
        "edge.png": np.pad(np.full((40, 6), 255, np.uint8), ((0, 0), (0, 34))),
    }
    paths = []
    for name, img in pictures.items():
        paths.append(tmp_path / name)
        Image.fromarray(img).save(paths[-1])
    big = np.full((2400, 1800), 230, np.uint8)
    big[400:2000, 800:1000] = 20
    paths.append(tmp_path / "phone.jpg")
    Image.fromarray(big).save(paths[-1], quality=60)
    rc, out, err = _predict(capsys, monkeypatch, digit_model, *paths)
    assert rc == 2
    assert [Path(line.split(": ")[0]).name for line in out] == ["edge.png", "phone.jpg"]
    assert [Path(line.split(": ")[0]).name for line in err] == [
        "white.png", "black.png", "noise.png", "dot.png"
    ]  # fmt: skip
    assert all(
        line.endswith("error: no digit found (a uniform or noise-only image)") for line in err
    )


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------


class _Linear:
    """A classic-protocol net (params, gradient, loss, accuracy, predict): softmax regression
    on flattened 8x8 images, in float64."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((64, 10)) * 0.1, "b": np.zeros(10)}

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ self.params["W"] + self.params["b"]

    def _proba(self, x: np.ndarray) -> np.ndarray:
        y = self.predict(x)
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return float(-np.log(self._proba(x)[np.arange(len(t)), t] + 1e-7).mean())

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        return float((self.predict(x).argmax(axis=1) == t).mean())

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        dy = self._proba(x)
        dy[np.arange(len(t)), t] -= 1
        dy /= len(t)
        return {"W": x.reshape(len(x), -1).T @ dy, "b": dy.sum(axis=0)}


def _arrays(n: int = 60, n_test: int = 20, dtype=np.float64):
    rng = np.random.default_rng(0)
    x = rng.random((n + n_test, 1, 8, 8)).astype(dtype)
    t = np.arange(n + n_test) % 10
    return (x[:n], t[:n]), (x[n:], t[n:])


def _quiet(**kw):
    return {"progress": False, "verbose": False} | kw


def test_ctrl_c_while_best_npz_is_written_keeps_it_the_checkpoints_best(tmp_path, monkeypatch):
    """A second Ctrl-C during the best.npz write after an improving epoch: the checkpoint of
    the interrupted run named that epoch the best while best.npz held an earlier one (so a
    resumed run reported the wrong model as its best)."""
    from fastcnn.train import _checkpoint

    real = _checkpoint.save_model
    writes = {"best": 0}

    def interrupted_second_best(trainer, path):
        if path.name == "best.npz":
            writes["best"] += 1
            if writes["best"] == 2:
                raise KeyboardInterrupt
        real(trainer, path)

    monkeypatch.setattr(_checkpoint, "save_model", interrupted_second_best)
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        trainer = train.Trainer(_Linear(), _arrays(), val=20, save_best=True, epochs=4,
                                optimizer="sgd", lr=0.01, out_dir=tmp_path, **_quiet())  # fmt: skip
    with pytest.raises(train.TrainingInterrupted):
        trainer.fit()
    assert [r["epoch"] for r in trainer.history] == [1, 2]
    assert trainer.best_epoch()["epoch"] == 2  # the loss falls: epoch 2 improved
    kept = np.load(tmp_path / "best.npz")
    for name, value in trainer.net.params.items():  # the end of epoch 2: nothing ran since
        np.testing.assert_array_equal(kept[f"params/{name}"], value)


def test_a_classic_object_with_save_best_reports_a_params_only_best(tmp_path):
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        trainer = train.Trainer(_Linear(), _arrays(), val=20, save_best=True, epochs=2,
                                optimizer="sgd", lr=0.05, out_dir=tmp_path, **_quiet())  # fmt: skip
    result = trainer.fit()
    best = result.report["best"]
    assert best["file"] == str(tmp_path / "best.npz") and "test_acc" not in best
    assert best["epoch"] == trainer.best_epoch()["epoch"]
    with np.load(tmp_path / "best.npz") as kept:
        assert sorted(k for k in kept.files if k.startswith("params/")) == ["params/W", "params/b"]


def test_nan_gradients_with_clip_norm_stop_before_the_update(tmp_path):
    """A NaN gradient under --clip-norm went into the update (clipping passes a non-finite
    norm through), so every weight became NaN and the run stopped a batch later blaming a
    loss; the norm is known before the update, so the run stops there, weights intact."""

    class Poisoned(_Linear):
        calls = 0

        def gradient(self, x, t):
            g = super().gradient(x, t)
            Poisoned.calls += 1
            if Poisoned.calls == 3:
                g["W"][0, 0] = np.nan
            return g

    net = Poisoned()
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        trainer = train.Trainer(net, _arrays(), val=20, clip_norm=1.0, batch_size=10, epochs=2,
                                out_dir=tmp_path, **_quiet())  # fmt: skip
    with pytest.raises(train.TrainingDiverged, match=r"gradient norm nan at epoch 1, batch 3"):
        trainer.fit()
    assert all(np.isfinite(v).all() for v in net.params.values())


def test_weight_decay_beyond_the_parameters_dtype_is_refused(tmp_path):
    """--weight-decay 1e300 is a finite float64 but inf as float32: every weight became NaN
    and the run 'diverged', the message suggesting a lower learning rate."""
    from fastcnn import models

    net = models.Sequential([{"type": "flatten"}, {"type": "affine", "units": 10}], (1, 8, 8),
                            backend="reference")  # fmt: skip
    with pytest.raises(ValueError, match=r"weight_decay=1e\+300 overflows the float32"):
        train.Trainer(net, _arrays(dtype=np.float32), weight_decay=1e300, **_quiet())
    # A decay that fits but still blows the run up is named in the divergence message.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on the way there
        with pytest.raises(train.TrainingDiverged, match=r"or weight decay than 1e\+30"):
            train.Trainer(net, _arrays(dtype=np.float32), weight_decay=1e30, optimizer="sgd",
                          epochs=2, **_quiet()).fit()  # fmt: skip


def test_early_stopping_on_a_tiny_set_says_the_default_val_is_zero():
    with pytest.raises(
        ValueError, match=r"the default, a twelfth of the 11 training images, is 0: give val"
    ):
        train.Trainer(_Linear(), _arrays(11, 4), early_stopping=2, **_quiet())


@pytest.mark.parametrize("val", [39, 40, 41])
def test_val_at_and_beyond_the_training_set(val):
    if val == 39:  # one image left to train on: it still runs
        result = train.Trainer(_Linear(), _arrays(40), val=val, epochs=1, **_quiet()).fit()
        assert result.history[0]["val_n"] == 39
    else:
        with pytest.raises(ValueError, match=r"val must be in \[0, 39\]"):
            train.Trainer(_Linear(), _arrays(40), val=val, **_quiet())


def test_resuming_an_early_stopped_run_with_more_epochs_stops_where_it_did(tmp_path):
    """The stop is derived from the history: more epochs on resume do not restart a run the
    patience already ended (the report says why, again)."""
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        first = train.Trainer(_Linear(), _arrays(), val=20, early_stopping=1, epochs=40,
                              optimizer="sgd", lr=5.0, out_dir=tmp_path, **_quiet())  # fmt: skip
    done = first.fit()
    assert "early_stop" in done.report and len(done.history) < 40
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        again = train.Trainer.resume(tmp_path / "checkpoint.npz", _arrays(), model=_Linear(),
                                     epochs=80, out_dir=tmp_path, **_quiet())  # fmt: skip
    result = again.fit()
    assert len(result.history) == len(done.history)
    assert result.report["early_stop"] == done.report["early_stop"]
