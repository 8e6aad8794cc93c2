"""Turning user images into MNIST-style digits for ``fastcnn predict``.

MNIST's own preparation: a white digit on black, its bounding box scaled to fit 20x20 keeping
the aspect ratio (anti-aliased), placed in 28x28 with its centre of mass at the centre. This
module does the same for a PNG/JPEG (via Pillow) or a 2-D array of any size, once
fastcnn._photo has found the digit in it (lighting, polarity, threshold, specks). Arrays
already 28x28 (.npy digits) are taken as MNIST images and only scaled to [0, 1]. One digit per
image: no segmentation of multi-digit pictures. Other models' inputs: fastcnn._inputs.

Files are sized from their headers before any pixel is decoded or read: a picture must have at
most MAX_IMAGE_PIXELS pixels, and a .npy file must hold exactly the bytes its header declares.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn._photo import digit_ink

__all__ = ["MAX_IMAGE_PIXELS", "Digits", "prepare_digit", "read_digits", "load_digits"]

_BOX = 20  # the digit's bounding box is scaled to fit this square
_SIZE = 28
# The most pixels a picture may have once decoded (2**21: a 1920 x 1080 screen fits): one digit
# needs far fewer, and preparing one takes up to ~12 bytes a pixel, so a tiny compressed file
# declaring the maximum stays within the memory target of issue 12 (2x its size + 100 MB). A
# larger JPEG (a phone photo) is decoded at a reduced scale (1/2, 1/4 or 1/8: its decoder does
# that for free) to fit; other formats must be scaled down first.
MAX_IMAGE_PIXELS = 2**21


def _unit_divisor(img: np.ndarray, where: str) -> int:
    """What _to_unit divides ``img`` by, decided on the whole array (so a batch converted in
    chunks converts as one): integers by their type's maximum (255 unless a wider type holds
    values above it), floats by 255 when any is greater than 1, booleans by 1."""
    if img.dtype == np.bool_:
        return 1
    if img.dtype.kind in "iu":
        return 255 if img.dtype.itemsize == 1 or img.max(initial=0) <= 255 else 65535
    if img.dtype.kind == "f":
        if not np.isfinite(img).all():
            raise ValueError(f"{where}: the image holds NaN or infinite values")
        return 255 if img.max(initial=0) > 1 else 1
    raise ValueError(f"{where}: pixels must be numbers, got dtype {img.dtype}")


def _to_unit(
    img: np.ndarray, where: str, dtype: Any = np.float64, divisor: int | None = None
) -> np.ndarray:
    """Grayscale pixels as a new ``dtype`` array in [0, 1], divided by ``divisor`` (by default
    _unit_divisor's choice for ``img``). Batches ask for float32, the model's input, directly:
    no float64 copy eight times the size of a uint8 file."""
    if divisor is None:
        divisor = _unit_divisor(img, where)
    out = img.astype(dtype)
    if divisor != 1:
        out /= divisor
    return np.clip(out, 0, 1, out=out)


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "resizing an image to 28x28 needs Pillow: pip install pillow "
            "(or pass 28x28 .npy arrays)"
        ) from None
    pil = Image.fromarray(img.astype(np.float32), mode="F")
    out = pil.resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def prepare_digit(img: Any, where: str = "image") -> np.ndarray:
    """An MNIST-style (28, 28) float32 image in [0, 1] from a 2-D grayscale array of any size.

    Finds the digit as _photo.digit_ink does (lighting corrected, polarity decided, Otsu's
    threshold, specks dropped: its ink white on black, the background exactly 0), scales its
    bounding box to fit 20x20 keeping the aspect ratio and centres it by mass in 28x28.
    Raises ValueError for an image with no digit (a uniform or noise-only one).
    """
    img = np.asarray(img)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"{where}: expected a 2-D grayscale image, got shape {img.shape}")
    x = digit_ink(_to_unit(img, where), where)
    h, w = x.shape
    scale = _BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        x = _resize(x, nh, nw)
    # Centre of mass to the image centre (MNIST: the mass centre lands at pixel 14, 14).
    total = x.sum()
    cy = (x.sum(axis=1) * np.arange(nh)).sum() / total
    cx = (x.sum(axis=0) * np.arange(nw)).sum() / total
    top = int(np.clip(round(_SIZE / 2 - 0.5 - cy), 0, _SIZE - nh))
    left = int(np.clip(round(_SIZE / 2 - 0.5 - cx), 0, _SIZE - nw))
    out = np.zeros((_SIZE, _SIZE), dtype=np.float32)
    out[top : top + nh, left : left + nw] = x
    return out


def _read_image_file(path: Path, mode: str = "L") -> np.ndarray:
    """The pixels of a picture file: (H, W) grayscale for ``mode`` "L" (16-bit and float
    pictures keep their type), (H, W, 3) uint8 for "RGB"."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError(
            f"{path}: reading images needs Pillow: pip install pillow (or pass .npy arrays)"
        ) from None
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb limit is far above ours: its warning would only repeat ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
        with im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS and im.format in ("JPEG", "MPO"):  # MPO: phones
                # draft picks the largest of 1/2, 1/4, 1/8 keeping at least the size asked for.
                k = next((k for k in (2, 4, 8) if _pixels(width, height, k) <= MAX_IMAGE_PIXELS), 8)
                im.draft(mode, (-(-width // k), -(-height // k)))
            if _pixels(*im.size, 1) > MAX_IMAGE_PIXELS:
                raise ValueError(_too_many_pixels(path, f"{width}x{height} = {width * height:,}"))
            im.load()
            return np.asarray(_grayscale(im) if mode == "L" else _rgb(im))
    except Image.DecompressionBombError:  # so large that Pillow refuses to open it at all
        bomb = Image.MAX_IMAGE_PIXELS  # None when a user switched Pillow's check off
        declared = f"more than {2 * bomb:,}" if bomb else "too many"
        raise ValueError(_too_many_pixels(path, declared)) from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
        # Pillow reports a damaged file with any of these (SyntaxError: "broken PNG file").
        raise ValueError(f"{path}: cannot read the image ({exc})") from None


def _grayscale(im: Any) -> Any:
    """The image in a grayscale mode; transparent pixels are background, so they become white."""
    if _transparent(im):
        return _on_white(im).convert("L")
    return im.convert("L") if im.mode not in ("L", "I", "I;16", "F") else im


def _rgb(im: Any) -> Any:
    """The image as RGB; transparent pixels become white, as in _grayscale."""
    return _on_white(im).convert("RGB") if _transparent(im) else im.convert("RGB")


def _transparent(im: Any) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def _on_white(im: Any) -> Any:
    from PIL import Image

    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    # In place, and without a copy of an RGBA image: the fewest full-size images alive.
    white.alpha_composite(im if im.mode == "RGBA" else im.convert("RGBA"))
    return white


def _pixels(width: int, height: int, k: int) -> int:
    """Pixels of a width x height image decoded at scale 1/k (partial blocks round up)."""
    return -(-width // k) * -(-height // k)


def _too_many_pixels(path: Path, declared: str) -> str:
    return (
        f"{path}: the image declares {declared} pixels, over the limit of "
        f"{MAX_IMAGE_PIXELS:,} (fastcnn._digits.MAX_IMAGE_PIXELS); scale it down first"
    )


def _check_file(path: Path) -> None:
    """FileNotFoundError unless ``path`` is a regular file (or a link to one): a directory, a
    device or a FIFO (which would block) is never opened."""
    if path.is_file():
        return
    if path.is_dir():
        raise FileNotFoundError(f"{path}: is a directory, not a file")
    if path.exists():
        raise FileNotFoundError(f"{path}: not a regular file (a device, FIFO or socket)")
    raise FileNotFoundError(f"{path}: no such file")


def _read_npy(path: Path) -> np.ndarray:
    """A numeric array from a .npy file whose header is checked against the file's size (and
    its dtype against pickled objects) before the data is read."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
        except ValueError:
            raise ValueError(f"{path}: not a .npy file (no NumPy magic string)") from None
        try:
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, SyntaxError, struct.error, EOFError) as exc:
            raise ValueError(f"{path}: not a valid .npy file ({exc})") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ValueError(
                f"{path}: holds {dtype} data; pixels must be booleans, integers or floats"
            )
        declared = math.prod(shape) * dtype.itemsize
        present = os.fstat(f.fileno()).st_size - f.tell()
        if present != declared:
            raise ValueError(
                f"{path}: not a valid .npy file: the header declares shape {shape} of {dtype} "
                f"({declared:,} bytes), the file holds {present:,} data bytes"
            )
        arr = np.fromfile(f, dtype=dtype, count=math.prod(shape))
    return arr.reshape(shape, order="F" if fortran else "C")


class Digits:
    """The digits of one file, read and checked: ``names`` (one per digit) and ``chunks``, the
    images as float32 (n, 1, 28, 28) in [0, 1], at most ``size`` at a time (fastcnn._inputs
    also holds other models' (n, C, H, W) inputs in one). A .npy batch stays
    in its file's dtype until a chunk is asked for, so predicting a uint8 batch needs its
    float32 form one chunk at a time, not four times the file at once."""

    def __init__(self, names: list[str], pixels: np.ndarray, where: str, prepared: bool) -> None:
        self.names = names
        # (n, 28, 28) MNIST pixels or (n, C, H, W) model pixels, or float32 prepared inputs
        self._pixels = pixels
        self._where = where
        self._prepared = prepared
        if not names:  # else nothing at all would be printed for the file
            raise ValueError(f"{where}: holds no images (an empty batch of shape {pixels.shape})")
        self._divisor = 1 if prepared else _unit_divisor(pixels, where)

    def __len__(self) -> int:
        return len(self.names)

    def chunks(self, size: int = 1024) -> Iterator[np.ndarray]:
        for i in range(0, len(self), size):
            part = self._pixels[i : i + size]
            if not self._prepared:
                part = _to_unit(part, self._where, np.float32, self._divisor)
            yield part[:, None] if part.ndim == 3 else part


def read_digits(path: os.PathLike[str] | str) -> Digits:
    """The digits in one file (see Digits).

    ``.npy``: a (28, 28) digit or an (N, 28, 28) / (N, 1, 28, 28) / (N, 784) batch is used as
    MNIST pixels (only scaled to [0, 1]); any other 2-D array is prepared like a picture.
    Anything else is opened with Pillow (PNG, JPEG, ...) and prepared with ``prepare_digit``.
    """
    path = Path(path)
    where = str(path)
    _check_file(path)
    if path.suffix.lower() != ".npy":
        digit = prepare_digit(_read_image_file(path), where)
        return Digits([where], digit[None, None], where, True)
    arr = _read_npy(path)
    if arr.ndim == 2 and arr.shape == (_SIZE, _SIZE):
        return Digits([where], arr[None], where, False)
    if arr.ndim == 2 and arr.shape[1] == _SIZE * _SIZE:
        arr = arr.reshape(-1, _SIZE, _SIZE)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 3 and arr.shape[1:] == (_SIZE, _SIZE):
        return Digits([f"{path}[{i}]" for i in range(arr.shape[0])], arr, where, False)
    if arr.ndim == 2:
        if arr.size > MAX_IMAGE_PIXELS:
            raise ValueError(_too_many_pixels(path, f"{arr.shape[0]}x{arr.shape[1]}"))
        return Digits([where], prepare_digit(arr, where)[None, None], where, True)
    raise ValueError(
        f"{path}: expected a 2-D image, an (N, 28, 28) or (N, 784) batch, got shape {arr.shape}"
    )


def load_digits(path: os.PathLike[str] | str) -> tuple[list[str], np.ndarray]:
    """The digits in one file as (names, images (N, 1, 28, 28) float32 in [0, 1]); see
    read_digits for the formats."""
    digits = read_digits(path)
    return digits.names, next(digits.chunks(max(len(digits), 1)))
