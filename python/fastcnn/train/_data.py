"""The data a run trains on: the arrays checked against the model, what the run log and the
checkpoint record about their source, the MNIST a checkpoint names found again for resume,
and the test split alone for evaluation. Batching and augmentation are fastcnn.datasets'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn.datasets import MNISTSource
from fastcnn.train._net import Net

Data = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def source_info(data: Any) -> dict[str, Any]:
    """What the log records about where ``data`` came from (counts are added once loaded)."""
    if isinstance(data, MNISTSource):
        return {"kind": data.kind, "directory": str(data.directory), "description": str(data)}
    return {"kind": "arrays"}


def check_data(data: Any, net: Net) -> Data:
    """``((x_train, t_train), (x_test, t_test))`` checked against ``net``: images cast to its
    dtype (a fastcnn model's (N, C, H, W) or flattened (N, C*H*W); for another object, as
    given), int64 labels."""
    try:
        (x_train, t_train), (x_test, t_test) = data
    except (TypeError, ValueError):
        raise TypeError(
            "Trainer: data must be ((x_train, t_train), (x_test, t_test)) or an MNISTSource"
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


def source_from_meta(checkpoint: Path, info: Mapping[str, Any]) -> MNISTSource:
    """The MNIST a checkpoint's data record names: the embedded subset, or the full set from
    the same directory (else wherever mnist_source finds it)."""
    from fastcnn.datasets import EMBEDDED_DIR, mnist_source

    kind = info.get("kind")
    if kind == "embedded":
        return MNISTSource("embedded", EMBEDDED_DIR)
    if kind == "full":
        directory = info.get("directory")
        if directory and Path(directory).is_dir():
            return mnist_source(directory)
        return mnist_source(subset="full")
    raise ValueError(
        f"{checkpoint}: the run trained on arrays given in Python (not MNIST by name); "
        "pass the same data to resume it"
    )


def load_test_set(source: MNISTSource, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Only the test split of ``source``: images (N, 1, 28, 28) in [0, 1] and int64 labels,
    with the same checks as ``load_mnist`` (evaluation need not read the training set)."""
    from fastcnn.datasets._mnist import _convert, _read_pair

    images, labels = _read_pair("test", source.files["test_images"], source.files["test_labels"])
    return _convert(images, labels, True, False, False, np.dtype(dtype))
