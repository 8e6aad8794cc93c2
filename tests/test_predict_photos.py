"""`fastcnn predict` on photo-like pictures (issue 14, item 4): real MNIST digits printed dark on
light paper, off-centre, unevenly lit, with sensor noise and specks; every file gets a line;
--show writes what the model saw; a model of another input shape gets plain resized pictures.
The naive preparation of before (border median, bounding box of everything above 10 %) is kept
here to show each test fails without the fix."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastcnn import cli, models
from fastcnn._digits import _resize, prepare_digit
from fastcnn._inputs import SHOW_SCALE, prepare_picture, read_inputs
from fastcnn.datasets import load_mnist

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

PHOTOS = 30


def photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (260, 320) uint8 'photo' of an MNIST digit: dark ink 110-190 px tall at a random
    place, lit by a gradient times a vignette (not a quadratic: the fit must approximate it),
    Gaussian noise (sigma 10 grey levels) and six dark specks."""
    h, w = 260, 320
    side = int(rng.integers(110, 190))
    big = Image.fromarray(np.round(digit * 255).astype(np.uint8))
    ink = np.zeros((h, w))
    top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
    ink[top : top + side, left : left + side] = (
        np.asarray(big.resize((side, side), Image.Resampling.BICUBIC)) / 255
    )
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    gradient = ((xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)) / w
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (w / 2) ** 2
    light = (1 + 0.6 * gradient) * (0.45 + 0.55 * np.exp(-1.2 * r2))
    pixels = 0.92 * light * (1 - 0.85 * ink) + rng.normal(0, 0.04, (h, w))
    picture = Image.fromarray(np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        px, py, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1.5, 3.5)
        draw.ellipse([px - r, py - r, px + r, py + r], fill=int(rng.integers(20, 80)))
    return np.asarray(picture)


def naive_prepare(img: np.ndarray) -> np.ndarray:
    """fastcnn's preparation before the fix: invert by the border's median, subtract it, crop
    to the pixels above a tenth of the maximum, 20x20, centre of mass (no noise handling)."""
    x = img / 255.0
    border = float(np.median(np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])))
    if border > 0.5:
        x, border = 1.0 - x, 1.0 - border
    x = np.clip(x - border, 0, 1)
    x /= x.max()
    rows, cols = np.flatnonzero((x > 0.1).any(1)), np.flatnonzero((x > 0.1).any(0))
    x = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = 20 / max(x.shape)
    nh, nw = max(1, round(x.shape[0] * scale)), max(1, round(x.shape[1] * scale))
    x = _resize(x, nh, nw)
    cy = (x.sum(1) * np.arange(nh)).sum() / x.sum()
    cx = (x.sum(0) * np.arange(nw)).sum() / x.sum()
    top, left = (
        int(np.clip(round(13.5 - cy), 0, 28 - nh)),
        int(np.clip(round(13.5 - cx), 0, 28 - nw)),
    )
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + nh, left : left + nw] = x
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    (_, _), (x, t) = load_mnist(flatten=False, subset="embedded")
    return x[:PHOTOS, 0], t[:PHOTOS]


@pytest.fixture(scope="module")
def photos(digits, tmp_path_factory) -> list[Path]:
    """The digits as photos, saved alternately as PNG and as JPEG (quality 90)."""
    rng = np.random.default_rng(14)
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, digit in enumerate(digits[0]):
        path = folder / f"photo{i:02d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(photo(digit, rng)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A SimpleConvNet trained by the CLI for 2 epochs on the embedded subset (~93 %)."""
    out = tmp_path_factory.mktemp("run")
    rc = cli.main(["train", "--model", "simple", "--epochs", "2", "--subset", "embedded",
                   "--out", str(out), "--no-progress", "--eval-sample", "200"])  # fmt: skip
    assert rc == 0
    return out / "model.npz"


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def test_a_photo_is_prepared_as_its_digit(digits, photos):
    """The prepared photo matches the MNIST digit itself (both MNIST-normalised); the naive
    preparation boxes the noise with the digit and does not."""
    fixed, naive = [], []
    for digit, path in zip(digits[0], photos):
        want = prepare_digit(digit)
        got = prepare_digit(_read(path), str(path))
        assert got.shape == (28, 28) and got.dtype == np.float32
        assert got.min() == 0.0 and got.max() <= 1.0
        fixed.append(correlation(got, want))
        naive.append(correlation(naive_prepare(_read(path)), want))
    assert sum(c > 0.8 for c in fixed) >= 0.9 * PHOTOS and np.median(fixed) > 0.9, fixed
    assert max(naive) < 0.7 and np.median(naive) < 0.4, naive


def test_clean_digits_are_prepared_as_before(digits):
    """A clean MNIST digit (a 28x28 PNG, say) is prepared as the naive method did."""
    for digit in digits[0]:
        clean = np.round(digit * 255).astype(np.uint8)
        got, before = prepare_digit(clean), naive_prepare(clean)
        assert np.abs(got - before).max() < 0.05


def test_predict_recognises_photos(capsys, digits, photos, model_file):
    rc = cli.main(["predict", str(model_file), *map(str, photos)])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in photos]
    got = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    right = int((got == digits[1]).sum())
    model = models.load(model_file)
    naive = np.stack([naive_prepare(_read(p)) for p in photos])[:, None]
    naive_right = int((model.predict_proba(naive).argmax(1) == digits[1]).sum())
    assert right >= 0.8 * PHOTOS > 2 * naive_right, (right, naive_right)


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height pixels (its data is a token)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(8))))
    return path


def test_predict_gives_every_file_a_line_in_order(tmp_path, photos, model_file):
    """A missing file, an unreadable picture, a too large one and a bad .npy each get one
    error line, in their place among the predictions; the exit status says some failed."""
    (tmp_path / "corrupt.png").write_bytes(photos[0].read_bytes()[:200])
    _png_declaring(tmp_path / "huge.png", 4000, 4000)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY junk")
    files = [photos[0], tmp_path / "missing.png", tmp_path / "corrupt.png", photos[1],
             tmp_path / "huge.png", tmp_path / "bad.npy", photos[2]]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "fastcnn", "predict", str(model_file), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    lines = run.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files], run.stdout
    errors = {1: "error: no such file", 2: "error: cannot read the image",
              4: "error: the image declares 4000x4000 = 16,000,000 pixels, over",
              5: "error: not a valid .npy file"}  # fmt: skip
    for i, line in enumerate(lines):
        if i in errors:
            assert line.startswith(f"{files[i]}: {errors[i]}"), line
        else:
            assert line.split(": ")[1].split()[0].isdigit(), line


def test_show_writes_what_the_model_saw(capsys, tmp_path, photos, model_file):
    batch = tmp_path / "batch.npy"
    np.save(batch, (np.random.default_rng(3).random((2, 28, 28)) * 255).astype(np.uint8))
    show = tmp_path / "seen"
    rc = cli.main(["predict", str(model_file), str(photos[1]), str(batch), "--show", str(show)])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in show.iterdir()) == sorted(
        [f"{photos[1].name}.png", "batch.npy[0].png", "batch.npy[1].png"]
    )
    seen = np.concatenate(
        [
            next(read_inputs(photos[1], (1, 28, 28)).chunks()),
            next(read_inputs(batch, (1, 28, 28)).chunks()),
        ]
    )
    for x, name in zip(seen, [f"{photos[1].name}.png", "batch.npy[0].png", "batch.npy[1].png"]):
        with Image.open(show / name) as im:
            assert im.mode == "L" and im.size == (28 * SHOW_SCALE, 28 * SHOW_SCALE)
            png = np.asarray(im)
        np.testing.assert_array_equal(png[::SHOW_SCALE, ::SHOW_SCALE], np.round(x[0] * 255))
        np.testing.assert_array_equal(
            png, np.kron(png[::SHOW_SCALE, ::SHOW_SCALE], np.ones((8, 8)))
        )


def test_show_refuses_what_it_cannot_write(capsys, tmp_path, photos, model_file):
    (tmp_path / "file").write_text("")
    twin = tmp_path / "other"
    twin.mkdir()
    (twin / photos[0].name).write_bytes(photos[0].read_bytes())
    for show, images, text in [
        (tmp_path / "file", [photos[0]], "--show takes a directory"),
        (tmp_path / "no" / "dir", [photos[0]], "no such directory"),
        (tmp_path / "seen", [photos[0], twin / photos[0].name], f"named {photos[0].name}"),
    ]:
        rc = cli.main(["predict", str(model_file), *map(str, images), "--show", str(show)])
        out, err = capsys.readouterr()
        assert (rc, out) == (2, "") and text in err and err.count("\n") == 1, err
    assert not (tmp_path / "seen").exists()


@pytest.mark.parametrize("input_dim", [(3, 32, 32), (1, 32, 32)])
def test_a_model_of_another_input_shape_gets_resized_pictures(capsys, tmp_path, input_dim):
    """No digit centring: the picture is resized to H x W, RGB kept for 3 channels."""
    path = tmp_path / "model.npz"
    models.SimpleConvNet(input_dim=input_dim, backend="reference").save(path)
    rng = np.random.default_rng(5)
    rgb = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    picture = tmp_path / "cat.png"
    Image.fromarray(rgb).save(picture)
    good = tmp_path / "good.npy"
    np.save(good, rng.random((2, *input_dim)).astype(np.float32))
    wrong = tmp_path / "digit.npy"
    np.save(wrong, np.zeros((28, 28)))
    show = tmp_path / "seen"
    rc = cli.main(["predict", str(path), str(picture), str(good), str(wrong), "--show", str(show)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert [line.split(": ")[0] for line in out.splitlines()] == [
        str(picture),
        f"{good}[0]",
        f"{good}[1]",
    ]
    shape = ", ".join(map(str, input_dim))
    assert err == f"{wrong}: error: expected a ({shape}) array or an (N, {shape}) batch " \
        "for this model, got shape (28, 28)\n"  # fmt: skip
    mode = "RGB" if input_dim[0] == 3 else "L"
    want = Image.fromarray(rgb).convert(mode).resize((32, 32), Image.Resampling.LANCZOS)
    x = next(read_inputs(picture, input_dim).chunks())[0]
    assert x.shape == input_dim
    np.testing.assert_allclose(x, prepare_picture(rgb, input_dim))
    want = np.asarray(want, dtype=np.float32) / 255
    np.testing.assert_allclose(x, want.transpose(2, 0, 1) if mode == "RGB" else want[None])
    with Image.open(show / "cat.png.png") as im:
        assert im.mode == mode and im.size == (32 * SHOW_SCALE, 32 * SHOW_SCALE)
        png = np.asarray(im)[::SHOW_SCALE, ::SHOW_SCALE]
    np.testing.assert_array_equal(png, np.round(x.transpose(1, 2, 0) * 255).squeeze())


def test_class_names_are_printed_when_the_model_has_them(capsys, monkeypatch, photos, model_file):
    model = models.load(model_file)
    model.classes = tuple(f"digit-{k}" for k in range(10))
    monkeypatch.setattr(cli, "_load_model", lambda *args: model)
    assert cli.main(["predict", str(model_file), str(photos[0]), "--top", "2"]) == 0
    p = model.predict_proba(next(read_inputs(photos[0], model.input_dim).chunks()))[0]
    best, second = np.argsort(-p, kind="stable")[:2]
    assert capsys.readouterr().out == (
        f"{photos[0]}: digit-{best} ({p[best]:.3f})  next: digit-{second} ({p[second]:.3f})\n"
    )
