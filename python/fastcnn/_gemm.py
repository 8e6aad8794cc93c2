"""``fastcnn.gemm``: C = alpha * op(A) @ op(B) + beta * C with fastcnn's own GEMM.

Checks arguments and picks the output; transposes are passed to the kernel as strided views,
so transposed numpy arrays and sub-matrices are used without copying.
"""

from __future__ import annotations

import numpy as np

from fastcnn._native import core as _core

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_operand(x: object, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"gemm: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"gemm: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"gemm: {name} must be 2-D, got {name}.shape={x.shape}")
    if any(s % x.itemsize for s in x.strides):
        x = np.ascontiguousarray(x)  # byte-misaligned views: the kernel needs element strides
    return x


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``alpha * op(a) @ op(b) + beta * out`` where op transposes when asked.

    a, b: 2-D float32 or float64 arrays of the same dtype, any strides.
    out: optional (M, N) array of that dtype with unit stride along its last axis, written in
    place and returned; when omitted a new array is returned (``beta`` then has no effect).
    Runs multithreaded with the GIL released.
    """
    a = _as_operand(a, "a")
    b = _as_operand(b, "b")
    if a.dtype != b.dtype:
        raise TypeError(
            f"gemm: a and b must have the same dtype, got a.dtype={a.dtype}, b.dtype={b.dtype}"
        )
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    (m, k), (k2, n) = op_a.shape, op_b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) is {op_a.shape} and op(b) is {op_b.shape} "
            f"(a.shape={a.shape}, trans_a={trans_a}, b.shape={b.shape}, trans_b={trans_b})"
        )
    if out is None:
        out = np.empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"gemm: out must be a numpy array, got {type(out).__name__}")
        if out.dtype != a.dtype:
            raise TypeError(f"gemm: out.dtype={out.dtype} but a and b are {a.dtype}")
        if out.shape != (m, n):
            raise ValueError(f"gemm: out.shape={out.shape} but the product is {(m, n)}")
        if out.size and (
            (n > 1 and out.strides[1] != out.itemsize) or out.strides[0] % out.itemsize
        ):
            raise ValueError(
                f"gemm: out must have unit stride along its last axis (out.strides={out.strides})"
            )
        if not out.flags.writeable:
            raise ValueError("gemm: out is read-only")
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError("gemm: out must not overlap a or b")
    _core.gemm(op_a, op_b, out, float(alpha), float(beta))
    return out
