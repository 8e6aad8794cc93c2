"""What ONNX export (_onnx_export.py: Sequential -> graph) and import (_onnx_import.py: graph
-> Sequential) share: the error type, the opset range, the element types and the one import
of the optional ``onnx`` package. The layer-by-layer mapping lives in those two files.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

# Export writes this opset unless told otherwise: every op fastcnn writes has had its current
# form since opset 13-15, and 17 is read by every onnxruntime since 1.12 (2022).
DEFAULT_OPSET = 17
# The oldest opset export writes: Gemm, Reshape and Flatten took their current signatures in 13.
MIN_EXPORT_OPSET = 13
# The oldest opset import reads: before 9, BatchNormalization had a "spatial" switch.
MIN_IMPORT_OPSET = 9

# numpy dtype <-> ONNX TensorProto element type (FLOAT = 1, DOUBLE = 11), the two fastcnn uses.
ELEM_TYPES: dict[np.dtype, int] = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}
DTYPES: dict[int, np.dtype] = {v: k for k, v in ELEM_TYPES.items()}


class OnnxError(ValueError):
    """An ONNX file fastcnn cannot read (not ONNX, or outside the subset it maps: the message
    names the node, its op type and why), or a model it cannot write."""


def require_onnx() -> ModuleType:
    """The ``onnx`` package, or an ImportError saying how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX export and import need the onnx package: pip install 'fastcnn[onnx]'"
        ) from exc
    return onnx
