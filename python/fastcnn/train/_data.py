"""The data a run trains on: the arrays checked against the model (a named dataset's image
shape and class count too), what the run log and the checkpoint record about their source,
the dataset a checkpoint names found again for resume, and the test split alone for
evaluation. Finding, reading, batching and augmentation are fastcnn.datasets'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn.datasets import DatasetSource
from fastcnn.train._net import Net

Data = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def source_info(data: Any) -> dict[str, Any]:
    """What the log records about where ``data`` came from (counts are added once loaded):
    the dataset's name, its title as a run names it, its classes and image shape, the kind
    of source, its directory and a one-line description."""
    if isinstance(data, DatasetSource):
        title = "the embedded MNIST subset" if data.kind == "embedded" else data.title
        return {
            "dataset": data.name,
            "title": title,
            "kind": data.kind,
            "directory": str(data.directory.resolve()),  # resume may run from elsewhere
            "description": str(data),
            "classes": list(data.classes),
            "image_shape": list(data.image_shape),
        }
    return {"kind": "arrays"}


def check_source(source: DatasetSource, net: Net) -> None:
    """A fastcnn model must take the dataset's images and have one output per class: one
    line saying which differs and how to build a fitting model."""
    model = net.model
    if not net.fastcnn:
        return  # another object: its arrays are checked by shape_data only
    shape, k = tuple(source.image_shape), len(source.classes)
    got_shape, got_k = tuple(model.input_dim), int(model.output_size)
    if (got_shape, got_k) != (shape, k):
        raise ValueError(
            f"Trainer: {model.name} takes {'x'.join(map(str, got_shape))} images and has "
            f"{got_k} outputs, but {source.title} has {'x'.join(map(str, shape))} images and "
            f"{k} classes; build the model with input shape {list(shape)} and {k} outputs"
        )


def check_data(data: Any, net: Net) -> Data:
    """``((x_train, t_train), (x_test, t_test))`` checked against ``net``: images cast to its
    dtype (a fastcnn model's (N, C, H, W) or flattened (N, C*H*W); for another object, as
    given), int64 labels. A DatasetSource is checked against the model (check_source), gives
    a fastcnn model its class names (``model.classes``, saved with it) and is loaded here."""
    if isinstance(data, DatasetSource):
        check_source(data, net)
        if net.fastcnn:
            net.model.classes = tuple(data.classes)
        data = data.load(flatten=False, dtype=net.dtype)
    try:
        (x_train, t_train), (x_test, t_test) = data
    except (TypeError, ValueError):
        raise TypeError(
            "Trainer: data must be ((x_train, t_train), (x_test, t_test)) or a DatasetSource "
            "(fastcnn.datasets.dataset_source)"
        ) from None
    out = []
    for split, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
        x = net.shape_data(np.asarray(x), split)
        t = np.asarray(t)
        if t.ndim != 1 or t.dtype.kind not in "iu" or len(t) != len(x):
            raise ValueError(
                f"Trainer: {split} labels must be integers (N,) with N = {len(x)}, "
                f"got {t.dtype} {t.shape}"
            )
        if len(t) == 0:
            raise ValueError(f"Trainer: the {split} set is empty")
        out.append((x.astype(net.dtype, copy=False), t.astype(np.int64, copy=False)))
    return out[0], out[1]


def source_from_meta(checkpoint: Path, info: Mapping[str, Any]) -> DatasetSource:
    """The dataset a checkpoint's data record names (a record without a dataset name is
    MNIST's, from before there were others): MNIST's embedded subset, a folder of images
    again, or a published set from the same directory (else wherever dataset_source finds
    it)."""
    from fastcnn.datasets import EMBEDDED_DIR, FolderSource, MNISTSource, dataset_source

    kind = info.get("kind")
    name = info.get("dataset", "mnist")
    directory = info.get("directory")
    if kind == "embedded" and name == "mnist":
        return MNISTSource("embedded", EMBEDDED_DIR)
    if kind == "folder" and directory:
        return FolderSource(directory)
    if kind == "full" and isinstance(name, str):
        if directory and Path(directory).is_dir():
            return dataset_source(name, directory)
        return dataset_source(name, subset="full" if name == "mnist" else None)
    raise ValueError(
        f"{checkpoint}: the run trained on arrays given in Python (not a dataset by name); "
        "pass the same data to resume it"
    )


def recorded_dataset(checkpoint: Path) -> str:
    """The name of the dataset a checkpoint's data record names ("mnist" for a record from
    before there were others, or of arrays), so that a new --data-dir is read as that
    dataset's files."""
    from fastcnn import models

    info = models.load_checkpoint(checkpoint, backend="reference").meta.get("data")
    name = info.get("dataset") if isinstance(info, dict) else None
    return name if isinstance(name, str) else "mnist"


def load_test_set(source: DatasetSource, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Only the test split of ``source``: images (N, C, H, W) in [0, 1] and int64 labels,
    with the same checks as a full load (evaluation need not read the training set)."""
    return source.load_test(dtype=dtype)
