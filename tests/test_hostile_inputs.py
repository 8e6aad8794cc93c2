"""Hostile data inputs (issue 12): IDX files, predict's images and .npy arrays, the CLI's failure
paths, diverging training and FASTCNN_* variables.

Each memory case runs in a child process (tests/hostile.py) so its own peak RSS can be held to
the issue's bound, 2x the file's size + 100 MB, and its wall time to a generous 10 s.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets as D
from hostile import Run, rss_bound, run_cli, run_code, run_python

# CPU seconds (user + system, so a loaded shared machine does not fail a test; the children are
# killed after 60 s of wall time regardless): generous, each of these answers in well under a
# second on an idle machine, the 20,000-image predict in about two.
SECONDS = 10.0


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
    assert run.cpu_seconds < SECONDS, (run.cpu_seconds, run.seconds)


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


# ---------------------------------------------------------------------------------------------
# predict's pictures and .npy arrays
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastcnn import models

    path = tmp_path_factory.mktemp("model") / "model.npz"
    models.SimpleConvNet(backend="reference").save(path)
    return path


def _one_line_error(run: Run, path: Path, text: str) -> None:
    """The CLI's contract for a failure a user caused: one line naming the file, exit 2."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert str(path) in lines[0] and text in lines[0], lines[0]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature and IHDR declaring width x height, with a token IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    content = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(8)))
    path.write_bytes(content + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    ("width", "height", "declared"),
    [(20000, 20000, "more than 178,956,970"), (2049, 1024, "2049x1024 = 2,098,176")],
)
def test_png_over_the_pixel_limit_is_refused_from_its_header(
    tmp_path: Path, model_file: Path, width: int, height: int, declared: str
) -> None:
    """What was seen 2: a 69-byte PNG declaring 20000x20000 (DecompressionBombError)."""
    from fastcnn._digits import MAX_IMAGE_PIXELS

    png = _png_header_only(tmp_path / "bomb.png", width, height)
    assert png.stat().st_size < 80
    run = run_cli("predict", str(model_file), str(png))
    _one_line_error(run, png, f"declares {declared} pixels, over the limit of 2,097,152")
    assert MAX_IMAGE_PIXELS == 2**21
    _bounded(run, png)


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_a_picture_at_the_pixel_limit_is_read_within_the_bound(
    tmp_path: Path, model_file: Path, mode: str
) -> None:
    from PIL import Image

    pixels = np.full((1024, 2048, 4), 255, dtype=np.uint8)
    pixels[300:700, 900:1100, :3] = 0  # a dark bar: a "1" on white
    path = tmp_path / f"wide-{mode}.png"
    Image.fromarray(pixels, "RGBA").convert(mode).save(path)
    run = run_cli("predict", str(model_file), str(path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{path}: ")
    _bounded(run, path)


@pytest.mark.parametrize("kind", ["jpg", "mpo"])  # MPO: the multi-picture JPEG of phones
def test_a_large_jpeg_is_decoded_at_a_reduced_scale(
    tmp_path: Path, model_file: Path, kind: str
) -> None:
    from PIL import Image

    from fastcnn._digits import load_digits

    pixels = np.full((3000, 4000), 255, dtype=np.uint8)
    pixels[300:2700, 1900:2100] = 0
    path = tmp_path / f"photo.{kind}"
    photo = Image.fromarray(pixels).convert("RGB")
    if kind == "mpo":
        photo.save(path, format="MPO", save_all=True, append_images=[photo])
    else:
        photo.save(path)
    with Image.open(path) as im:
        assert im.format == {"jpg": "JPEG", "mpo": "MPO"}[kind]
    names, x = load_digits(path)
    assert names == [str(path)] and x.shape == (1, 1, 28, 28)
    assert x[0, 0, 4:24, 13:15].mean() > 0.9  # the bar, white on black, centred
    run = run_cli("predict", str(model_file), str(path))
    assert run.returncode == 0, run.stderr
    _bounded(run, path)


def _npy(path: Path, descr: str, shape: tuple[int, ...], data: bytes) -> Path:
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    path.write_bytes(header.getvalue() + data)
    return path


def test_npy_declaring_petabytes_is_refused_from_its_header(
    tmp_path: Path, model_file: Path
) -> None:
    """What was seen 2: a 228-byte .npy declaring shape (1e12, 784) (_ArrayMemoryError)."""
    path = _npy(tmp_path / "huge.npy", "<f4", (10**12, 784), bytes(100))
    assert path.stat().st_size == 228
    run = run_cli("predict", str(model_file), str(path))
    _one_line_error(
        run, path, "declares shape (1000000000000, 784) of float32 (3,136,000,000,000,000 bytes)"
    )
    assert "the file holds 100 data bytes" in run.stderr
    _bounded(run, path)


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("random", "not a .npy file (no NumPy magic string)"),
        ("header", "not a valid .npy file"),
        ("objects", "holds object data; pixels must be booleans, integers or floats"),
        ("complex", "holds complex128 data"),
        ("short", "(784 bytes), the file holds 783 data bytes"),
        ("long", "(784 bytes), the file holds 785 data bytes"),
        ("picture", "declares 2049x1024 pixels, over the limit"),
    ],
)
def test_bad_npy_files_say_what_is_wrong(tmp_path: Path, case: str, text: str) -> None:
    from fastcnn._digits import load_digits

    path = tmp_path / f"{case}.npy"
    if case == "random":
        path.write_bytes(np.random.default_rng(0).bytes(1000))
    elif case == "header":
        path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': 5}    \n")
    elif case == "objects":
        np.save(path, np.array([[1, None]], dtype=object), allow_pickle=True)
    elif case == "complex":
        np.save(path, np.zeros((28, 28), dtype=complex))
    elif case == "picture":
        _npy(path, "|u1", (2049, 1024), bytes(2049 * 1024))
    else:
        _npy(path, "|u1", (28, 28), bytes(783 if case == "short" else 785))
    with pytest.raises(ValueError) as info:
        load_digits(path)
    assert str(path) in str(info.value) and text in str(info.value), str(info.value)


def test_a_large_uint8_batch_is_predicted_within_the_bound(
    tmp_path: Path, model_file: Path
) -> None:
    """20,000 uint8 digits (15.7 MB): their float32 form is 4x the file, so predict converts
    them a chunk at a time (it peaked at 148 MB against the 131 MB bound converting at once)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "batch.npy"
    np.save(path, rng.integers(0, 256, (20000, 28, 28), dtype=np.uint8))
    run = run_cli("predict", str(model_file), str(path))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 20000 and lines[-1].startswith(f"{path}[19999]: ")
    _bounded(run, path)


def test_a_batch_in_chunks_converts_as_one(tmp_path: Path) -> None:
    """The scale of a float batch is decided on the whole batch: a chunk whose values are all
    <= 1 is still divided by 255 when another chunk has values above 1."""
    from fastcnn._digits import read_digits

    x = np.zeros((3, 28, 28))
    x[0] = 0.5
    x[2] = 200.0
    path = tmp_path / "mixed.npy"
    np.save(path, x)
    chunks = list(read_digits(path).chunks(1))
    assert [c.shape for c in chunks] == [(1, 1, 28, 28)] * 3
    np.testing.assert_allclose(np.concatenate(chunks)[:, 0], x / 255, rtol=1e-6)


def test_fortran_order_npy_is_read_as_saved(tmp_path: Path) -> None:
    from fastcnn._digits import load_digits

    digit = (np.arange(784).reshape(28, 28) % 256).astype(np.uint8)
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(digit))
    _, x = load_digits(path)
    np.testing.assert_array_equal(x[0, 0], digit / np.float32(255))


# ---------------------------------------------------------------------------------------------
# FASTCNN_* variables
# ---------------------------------------------------------------------------------------------


def test_an_unknown_winograd_value_is_an_error_not_on() -> None:
    """What was seen 4: FASTCNN_WINOGRAD=maybe silently meant "on"."""

    run = run_python(
        "-c", "import fastcnn; print(fastcnn.get_winograd())", env={"FASTCNN_WINOGRAD": "maybe"}
    )
    assert run.returncode != 0
    assert (
        "FASTCNN_WINOGRAD='maybe' is not one of 1, true, on, yes, 0, false, off, no" in run.stderr
    )
    run = run_python("-m", "fastcnn", "info", env={"FASTCNN_WINOGRAD": "maybe"})
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        "fastcnn: error: environment variable FASTCNN_WINOGRAD='maybe' is not one of "
        "1, true, on, yes, 0, false, off, no"
    ]


def test_every_on_off_variable_takes_exactly_its_words() -> None:
    from fastcnn import _env

    switches = [n for n, (ok, _) in _env.VARIABLES.items() if ok and "on" in ok]
    assert switches == ["FASTCNN_WINOGRAD", "FASTCNN_DEBUG"]
    for name in switches:
        for value in ("1", "TRUE", "On", "yes", "0", "False", "OFF", "no", ""):
            _env.check_environment({name: value})
        for value in ("maybe", "2", "y", " 1"):
            with pytest.raises(ValueError, match=f"{name}={value!r} is not one of"):
                _env.check_environment({name: value})
    _env.check_environment({"FASTCNN_DATA_DIR": "any/path", "FASTCNN_CACHE_DIR": "~x"})


def test_a_bad_debug_value_is_one_line_too(tmp_path: Path) -> None:

    run = run_python("-m", "fastcnn", "predict", "m.npz", "x.png", env={"FASTCNN_DEBUG": "2"})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "fastcnn: error: environment variable FASTCNN_DEBUG='2' is not one of "
        "1, true, on, yes, 0, false, off, no"
    ]


def test_the_core_is_only_imported_after_the_check() -> None:
    """A module importing fastcnn._core directly would let the core read unchecked values."""
    package = Path(D.__file__).resolve().parents[1]
    direct = [
        str(f.relative_to(package))
        for f in package.rglob("*.py")
        if f.name != "_env.py" and "from fastcnn import _core" in f.read_text()
    ]
    assert direct == []
    assert "from fastcnn._env import _core" in (package / "_conv.py").read_text()


# ---------------------------------------------------------------------------------------------
# The CLI: every failure a user causes is one line naming the file, exit 2, nothing written
# ---------------------------------------------------------------------------------------------


def _tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture
def hostile_mnist(tmp_path: Path) -> Path:
    """The embedded subset with its test images replaced by a (1e6, 1000, 1000) header."""
    d = tmp_path / "mnist"
    d.mkdir()
    for name in D.MNIST_FILES.values():
        (d / f"{name}.gz").write_bytes((D.EMBEDDED_DIR / f"{name}.gz").read_bytes())
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    (d / "t10k-images-idx3-ubyte").write_bytes(_idx(2051, (10**6, 1000, 1000), bytes(100)))
    return d


def test_train_and_evaluate_on_hostile_data(
    tmp_path: Path, model_file: Path, hostile_mnist: Path
) -> None:
    bad = hostile_mnist / "t10k-images-idx3-ubyte"
    before = _tree(tmp_path)
    out = tmp_path / "run"
    run = run_cli("train", "--model", "simple", "--data-dir", str(hostile_mnist), "--out", str(out))
    _one_line_error(run, bad, "wrong dims: expected 28x28")
    run = run_cli("evaluate", str(model_file), "--data-dir", str(hostile_mnist))
    _one_line_error(run, bad, "wrong dims: expected 28x28")
    _bounded(run, bad)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("command", ["evaluate", "predict", "convert", "resume"])
def test_random_bytes_as_the_input_file(tmp_path: Path, command: str) -> None:
    junk = tmp_path / ("params.pkl" if command == "convert" else "model.npz")
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), dtype=np.uint8))
    before = _tree(tmp_path)
    argv = {
        "evaluate": ["evaluate", str(junk), "--subset", "embedded"],
        "predict": ["predict", str(junk), str(digit)],
        "convert": ["convert", str(junk), str(tmp_path / "out.npz"), "--model", "simple"],
        "resume": ["train", "--resume", str(junk), "--out", str(tmp_path / "run")],
    }[command]
    run = run_cli(*argv)
    _one_line_error(run, junk, "")
    assert "Traceback" not in run.stderr and run.stdout.count("\n") <= 1
    assert _tree(tmp_path) == before
    _bounded(run, junk)


def test_predict_names_each_bad_image(tmp_path: Path, model_file: Path) -> None:
    from PIL import Image

    good = tmp_path / "good.npy"
    np.save(good, np.zeros((28, 28), dtype=np.uint8))
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)).save(whole)
    for name, content, text in [
        ("text.png", b"not a picture", "not an image file Pillow can read"),
        ("cut.png", whole.read_bytes()[: whole.stat().st_size // 2], "cannot read the image"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        run = run_cli("predict", str(model_file), str(good), str(path))
        _one_line_error(run, path, text)
        assert run.stdout.startswith(f"{good}: ")  # the good file is still predicted


def test_errors_without_a_file_name_get_one(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A MemoryError (or any error of a reader underneath) still names the file it came from;
    FASTCNN_DEBUG=1 shows the traceback instead."""
    from fastcnn import _digits, cli

    def no_memory(path: object) -> None:
        raise MemoryError

    monkeypatch.setattr(_digits, "read_digits", no_memory)
    image = tmp_path / "digit.png"
    assert cli.main(["predict", str(model_file), str(image)]) == 2
    assert capsys.readouterr().err == f"{image}: error: MemoryError\n"
    monkeypatch.setattr(_digits, "read_digits", lambda p: (_ for _ in ()).throw(zlib.error("x")))
    assert cli.main(["predict", str(model_file), str(image)]) == 2
    assert capsys.readouterr().err == f"{image}: error: x\n"
    monkeypatch.setenv("FASTCNN_DEBUG", "1")
    with pytest.raises(cli.CLIError) as info:
        cli.main(["predict", str(model_file), str(image)])
    assert isinstance(info.value.__cause__, zlib.error)
    monkeypatch.setenv("FASTCNN_DEBUG", "0")
    assert cli.main(["predict", str(model_file), str(image)]) == 2


def test_bench_refuses_a_bad_environment_before_running() -> None:
    run = run_python("-m", "fastcnn", "bench", "--quick", env={"FASTCNN_WINOGRAD": "sometimes"})
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and "FASTCNN_WINOGRAD" in run.stderr


# ---------------------------------------------------------------------------------------------
# Training that diverges
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    (x, t), (xt, tt) = D.mnist_source(subset="embedded").load(flatten=False)
    return (x[:200], t[:200]), (xt[:100], tt[:100])


def _trainer(data, out: Path | None, **kw):
    from fastcnn import models, train

    model = models.SimpleConvNet(conv_param={"filter_num": 4}, hidden_size=8, seed=1)
    settings = dict(epochs=2, batch_size=50, seed=1, progress=False, verbose=False, out_dir=out)
    return train.Trainer(model, data, **{**settings, **kw})


def _poison(at_epoch: int, at_batch: int):
    """A callback setting one weight to NaN after that iteration's (finite) loss."""

    def callback(trainer, info) -> None:
        if (info["epoch"], info["batch"]) == (at_epoch, at_batch):
            trainer.model.params["W1"].flat[0] = np.nan

    return callback


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(
    tmp_path: Path, small_mnist
) -> None:
    from fastcnn import train

    out = tmp_path / "run"
    trainer = _trainer(small_mnist, out, callbacks=[_poison(1, 3)])  # the last batch of epoch 2
    with pytest.raises(train.TrainingDiverged) as info:
        trainer.fit()
    good = out / "checkpoint.npz"
    message = str(info.value)
    assert "training diverged: val loss nan at the end of epoch 2" in message
    assert f"no model file written, the last good checkpoint is {good}" in message
    assert info.value.checkpoint == good and isinstance(info.value, FloatingPointError)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "epochs.csv", "log.json"]
    resumed = train.Trainer.resume(good, small_mnist, progress=False, verbose=False)
    assert (resumed.epoch, resumed.iteration) == (1, 4)  # the state after epoch 1
    assert all(np.isfinite(v).all() for v in resumed.model.params.values())
    log = json.loads((out / "log.json").read_text())
    assert log["status"] == "diverged" and len(log["epochs"]) == 1


def test_a_nan_parameter_is_never_checkpointed(tmp_path: Path, small_mnist) -> None:
    """Ctrl-C just after the update that broke a parameter: no checkpoint of that state."""
    from fastcnn import train

    def interrupt(trainer, info) -> None:
        if (info["epoch"], info["batch"]) == (0, 1):
            raise KeyboardInterrupt

    trainer = _trainer(small_mnist, tmp_path / "run", callbacks=[_poison(0, 1), interrupt])
    with pytest.raises(train.TrainingDiverged, match=r"parameter W1 is not finite at epoch 1, "):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_divergence_without_an_output_directory(small_mnist) -> None:
    from fastcnn import train

    trainer = _trainer(small_mnist, None, callbacks=[_poison(0, 3)], epochs=1)
    with pytest.raises(train.TrainingDiverged, match="no checkpoint was written"):
        trainer.fit()


def test_cli_train_with_a_huge_learning_rate_fails_and_writes_no_model(tmp_path: Path) -> None:
    """What was seen 4: --lr 1e30 ended with test loss nan, exit 0 and a model.npz."""
    out = tmp_path / "run"
    run = run_cli(
        "train", "--model", "simple", "--subset", "embedded", "--epochs", "1",
        "--limit-batches", "1", "--eval-sample", "100", "--lr", "1e30", "--out", str(out),
        "--no-progress",
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcnn train: error: training diverged: ")
    assert "no model file written, no checkpoint was written" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["epochs.csv", "log.json"]
