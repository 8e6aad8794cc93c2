"""Gradients summed over ranks: every array of a gradient dict packed into one flat buffer per
dtype (one collective per dtype, not one per array), summed in rank order
(Communicator.allreduce_sum), unpacked into new arrays shaped as given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fastcnn.distributed._comm import Communicator


def sum_gradients(
    comm: Communicator, grads: Mapping[str, np.ndarray], scale: float = 1.0
) -> dict[str, np.ndarray]:
    """sum over ranks of ``scale * grads`` (each rank its own scale), keyed like ``grads``:
    the same bits on every rank. Every rank must pass the same keys, shapes and dtypes (the
    model's params), in the same order."""
    by_dtype: dict[np.dtype, list[str]] = {}
    for key, value in grads.items():
        by_dtype.setdefault(np.asarray(value).dtype, []).append(key)
    out: dict[str, np.ndarray] = {}
    for dtype, keys in by_dtype.items():
        sizes = [np.asarray(grads[k]).size for k in keys]
        flat = np.empty(sum(sizes), dtype=dtype)
        start = 0
        for key, size in zip(keys, sizes):
            flat[start : start + size] = np.asarray(grads[key]).reshape(-1)
            start += size
        if scale != 1.0:
            flat *= dtype.type(scale)
        total = comm.allreduce_sum(flat)
        start = 0
        for key, size in zip(keys, sizes):
            out[key] = total[start : start + size].reshape(np.shape(grads[key]))
            start += size
    return {key: out[key] for key in grads}
