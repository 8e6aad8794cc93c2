"""A model's inputs from the files ``fastcnn predict`` is given, prepared as the model's input
shape asks, and the PNG ``predict --show`` writes of what the model saw.

A (1, 28, 28) model takes MNIST-style digits (fastcnn._digits: a picture's digit found and
normalised as MNIST's were). Any other (C, H, W) model takes a picture resized to H x W as it
is (RGB for C = 3, grayscale for C = 1; no digit is looked for) or a .npy of (C, H, W) or
(N, C, H, W) pixels; pixels are in [0, 1] as fastcnn's datasets give them. Left out: crops
that keep the aspect ratio, and any per-channel normalisation a model was trained with.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastcnn import _digits
from fastcnn._digits import Digits, _check_file, _read_image_file, _read_npy

__all__ = ["DIGIT_SHAPE", "SHOW_SCALE", "read_inputs", "prepare_picture", "write_input_png"]

DIGIT_SHAPE = (1, 28, 28)
SHOW_SCALE = 8  # --show's PNGs: each input pixel as an 8x8 square, so a 28x28 digit is 224 px


def read_inputs(path: os.PathLike[str] | str, input_dim: Sequence[int]) -> Digits:
    """The inputs in one file for a model whose input is ``input_dim`` (C, H, W): names and
    float32 (n, C, H, W) chunks in [0, 1], as Digits holds them."""
    shape = tuple(int(d) for d in input_dim)
    if shape == DIGIT_SHAPE:
        return _digits.read_digits(path)  # looked up here: tests replace it
    c, h, w = shape
    path = Path(path)
    where = str(path)
    _check_file(path)
    if path.suffix.lower() == ".npy":
        arr = _read_npy(path)
        if arr.shape == shape:
            return Digits([where], arr[None], where, False)
        if arr.ndim == 4 and arr.shape[1:] == shape:
            return Digits([f"{path}[{i}]" for i in range(arr.shape[0])], arr, where, False)
        raise ValueError(
            f"{path}: expected a {shape} array or an (N, {c}, {h}, {w}) batch for this model, "
            f"got shape {arr.shape}"
        )
    if c not in (1, 3):
        raise ValueError(
            f"{path}: the model takes {c} channels; pictures are read as 1 (grayscale) or 3 "
            f"(RGB), so pass a .npy of shape {shape}"
        )
    img = _read_image_file(path, "RGB" if c == 3 else "L")
    return Digits([where], prepare_picture(img, shape, where)[None], where, True)


def prepare_picture(img: np.ndarray, input_dim: Sequence[int], where: str = "image") -> np.ndarray:
    """A (C, H, W) float32 input in [0, 1] from an (h, w) grayscale or (h, w, 3) RGB uint8
    picture: resized to H x W (Pillow's Lanczos filter, which averages when shrinking),
    grayscale made RGB or RGB made grayscale as C asks."""
    from PIL import Image

    c, h, w = (int(d) for d in input_dim)
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.dtype != np.uint8 or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(
            f"{where}: expected an (h, w) or (h, w, 3) uint8 picture, got {img.dtype} {img.shape}"
        )
    pil = Image.fromarray(img).convert("RGB" if c == 3 else "L")
    out = np.asarray(pil.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    return out.transpose(2, 0, 1) if c == 3 else out[None]


def write_input_png(x: np.ndarray, path: os.PathLike[str] | str) -> None:
    """Write one (C, H, W) input in [0, 1] as a PNG, each pixel a SHOW_SCALE square (nearest
    neighbour, so pixel (i, j) is the value x[:, i, j] rounded to 0..255): RGB for C = 3,
    grayscale otherwise, C != 1, 3 channels side by side."""
    from PIL import Image

    pixels = np.round(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
    if pixels.shape[0] == 3:
        picture = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    else:
        picture = Image.fromarray(np.concatenate(list(pixels), axis=1))
    size = (picture.width * SHOW_SCALE, picture.height * SHOW_SCALE)
    picture.resize(size, Image.Resampling.NEAREST).save(path, format="PNG")
