"""``fastcnn.gemm``: C = alpha * op(A) @ op(B) + beta * C with fastcnn's own GEMM.

Arguments are checked by ``_validation.check_gemm``, shared with ``fastcnn.reference.gemm``
(numpy's matmul), so both accept and reject the same calls. Transposes are passed to the kernel
as strided views, so transposed numpy arrays and sub-matrices are used without copying.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastcnn import _validation as V
from fastcnn._env import _core


def _element_strided(x: np.ndarray) -> np.ndarray:
    # The kernel takes strides in elements and loads whole elements: a view whose data address
    # or any stride is not a multiple of the item size is copied (np.ascontiguousarray would
    # keep a misaligned C-contiguous view as it is).
    if x.flags.aligned and not any(s % x.itemsize for s in x.strides):
        return x
    return x.copy(order="C")


def product_into(op_a: np.ndarray, op_b: np.ndarray, out: np.ndarray, alpha: float,
                 beta: float) -> np.ndarray:  # fmt: skip
    """out = alpha * op_a @ op_b + beta * out on the kernel, for callers that have checked
    the arguments (gemm, the affine layers): operands of out's dtype, out C-contiguous and
    not overlapping them. Small products are bound by per-call cost, so nothing else runs."""
    _core.gemm(_element_strided(op_a), _element_strided(op_b), out, alpha, beta)
    return out


def gemm(
    a: Any,
    b: Any,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``alpha * op(a) @ op(b) + beta * out`` where op transposes when asked.

    a, b: 2-D real arrays, any strides; float32 and float64 are used as they are, other real
    dtypes as ``fastcnn._validation.compute_dtype`` says, and mixed operands promote as numpy
    does. trans_a, trans_b: bools. alpha, beta: finite reals.
    out: optional (M, N) array of the result dtype, written in place and returned (it is
    written through a contiguous copy when its last axis is not unit-stride); when omitted a
    new array is returned (``beta`` then has no effect). Runs multithreaded with the GIL
    released.
    """
    op_a, op_b, alpha, beta, out, dt = V.check_gemm(a, b, trans_a, trans_b, alpha, beta, out)
    if out is None:
        target = np.empty((op_a.shape[0], op_b.shape[1]), dtype=dt)
        beta = 0.0
    elif out.size and (
        (out.shape[1] > 1 and out.strides[1] != out.itemsize)
        or out.strides[0] % out.itemsize
        or not out.flags.aligned
    ):
        target = out.copy(order="C")
    else:
        target = out
    product_into(op_a.astype(dt, copy=False), op_b.astype(dt, copy=False), target, alpha, beta)
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out
