"""A dataset of the user's own pictures: one sub-folder per class, each picture prepared exactly
as ``fastcnn predict`` prepares one (fastcnn._digits: grayscale, white on black, scaled into
20x20 and centred by mass in 28x28), so a model trained here predicts on the same kind of input.

Layouts: ``DIR/<class>/<image>`` (a seeded, class-balanced TEST_FRACTION of each class is the
test split) or ``DIR/train/<class>/...`` with ``DIR/test/<class>/...``. Nothing is cached: the
pictures are read and prepared on every load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from fastcnn.datasets import _fetch
from fastcnn.datasets._registry import FOLDER, Dataset
from fastcnn.datasets._source import DatasetSource, Split

__all__ = ["IMAGE_SUFFIXES", "SPLIT_SEED", "TEST_FRACTION", "FolderSource"]

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEST_FRACTION = 0.2  # of each class, when there is no test folder (rounded; at least 1 of 2+)
SPLIT_SEED = 0


class FolderError(ValueError):
    """A folder of images is not a usable dataset; the message names the folder or file."""


def _class_order(names: list[str]) -> list[str]:
    """Sub-folder names sorted, numerically when every one is a number ("2" before "10")."""
    if all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _skipped(name: str) -> bool:
    """Not a class: hidden folders and the resource forks macOS's zip adds (__MACOSX)."""
    return name.startswith(".") or name == "__MACOSX"


def _images_of(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _scan(root: Path) -> dict[str, list[Path]]:
    """Class name -> its pictures, for the class sub-folders of ``root``."""
    if not root.is_dir():
        raise FolderError(f"{root}: no such directory (expected one sub-folder per class)")
    folders = [p for p in root.iterdir() if p.is_dir() and not _skipped(p.name)]
    found = {}
    for name in _class_order([p.name for p in folders]):
        images = _images_of(root / name)
        if not images:
            raise FolderError(
                f"{root / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        found[name] = images
    if len(found) < 2:
        raise FolderError(
            f"{root}: needs at least 2 class sub-folders of images, found {len(found)}"
            + (f" ({', '.join(found)})" if found else "")
        )
    return found


def _split(per_class: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """A seeded, class-balanced train/test split: TEST_FRACTION of each class to test."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: dict[str, list[Path]] = {}
    test: dict[str, list[Path]] = {}
    for name, paths in per_class.items():
        n = len(paths)
        k = max(1, round(n * TEST_FRACTION)) if n >= 2 else 0
        chosen = set(rng.permutation(n)[:k].tolist())
        test[name] = [p for i, p in enumerate(paths) if i in chosen]
        train[name] = [p for i, p in enumerate(paths) if i not in chosen]
    return train, test


def _read_picture(path: Path) -> np.ndarray:
    """One picture as ``fastcnn predict`` prepares it: (1, 28, 28) float32 in [0, 1]."""
    from fastcnn._digits import load_digits

    try:
        _, images = load_digits(path)
    except (OSError, ValueError) as exc:
        text = " ".join(str(exc).split())
        raise FolderError(
            text if str(path) in text else f"{path}: cannot read the image: {_fetch.short(exc)}"
        ) from exc
    return images[0]


class FolderSource(DatasetSource):
    """A folder of pictures, one sub-folder per class (class names: the sub-folder names,
    sorted; numerically when all are numbers). See the module's docstring for the layouts."""

    def __init__(self, directory: PathLike) -> None:
        root = Path(directory).expanduser()
        self.split_note = ""
        if (root / "train").is_dir():
            train = _scan(root / "train")
            if (root / "test").is_dir():
                test = _scan(root / "test")
                extra = [c for c in test if c not in train]
                if extra:
                    raise FolderError(
                        f"{root / 'test'}: classes {extra} have no folder in {root / 'train'}"
                    )
                test = {c: test.get(c, []) for c in train}
            else:
                train, test = _split(train)
                self.split_note = f"test: {TEST_FRACTION:.0%} of each class"
        else:
            train, test = _split(_scan(root))
            self.split_note = f"test: {TEST_FRACTION:.0%} of each class"
        if not any(test.values()):
            raise FolderError(f"{root}: no test images (give each class 2 or more pictures)")
        self.images = {"train": train, "test": test}
        row = Dataset(
            name=FOLDER,
            title="image folder",
            classes=tuple(train),
            image_shape=(1, 28, 28),
            format=FOLDER,
            files={},
            md5={},
            mirrors=(),
            n_train=sum(map(len, train.values())),
            n_test=sum(map(len, test.values())),
            source=f"pictures in {root}",
        )
        super().__init__(row, FOLDER, root)

    @property
    def n_train(self) -> int:
        return self.dataset.n_train

    @property
    def n_test(self) -> int:
        return self.dataset.n_test

    def __str__(self) -> str:
        note = f"; {self.split_note}" if self.split_note else ""
        return (
            f"image folder of {len(self.classes)} classes ({self.n_train} train / "
            f"{self.n_test} test{note}) from {self.directory}"
        )

    def _read(self, split: str) -> Split:
        paths = [(k, p) for k, c in enumerate(self.classes) for p in self.images[split][c]]
        images = np.empty((len(paths), *self.image_shape), dtype=np.float32)
        for i, (_, path) in enumerate(paths):
            images[i] = _read_picture(path)
        labels = np.array([k for k, _ in paths], dtype=np.int64)
        return images, labels
