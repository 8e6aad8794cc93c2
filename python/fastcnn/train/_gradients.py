"""What the trainer does to the gradients between the backward pass and the optimizer: L2 weight
decay and clipping by the global norm. Each returns new arrays (the model's own gradient
buffers are left as the backward pass wrote them) in the gradients' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def decayed_names(params: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The parameters weight decay applies to: the weights, i.e. every parameter of two or
    more dimensions (convolution kernels, affine matrices). Biases and batch-norm scales and
    shifts are 1-D and not decayed, as in the classic book's networks (which decay the W's)."""
    return tuple(name for name, value in params.items() if value.ndim >= 2)


def add_weight_decay(
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    names: tuple[str, ...],
    decay: float,
) -> dict[str, np.ndarray]:
    """The gradients of loss + decay/2 * sum(W**2) over the weights ``names``: decay * W added
    to each weight's gradient (coupled L2, as the classic book's extended network has, not
    AdamW's decoupled decay)."""
    out = dict(grads)
    for name in names:
        g = grads[name]
        out[name] = g + np.asarray(decay, dtype=g.dtype) * params[name]
    return out


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of all gradients taken together, accumulated in float64."""
    total = 0.0
    for g in grads.values():
        g64 = np.asarray(g, dtype=np.float64).ravel()
        total += float(g64 @ g64)
    return math.sqrt(total)


def clip_by_norm(
    grads: Mapping[str, np.ndarray], max_norm: float
) -> tuple[dict[str, np.ndarray], float]:
    """(gradients, their norm before clipping): when the global norm exceeds ``max_norm`` every
    gradient is scaled by max_norm / norm, so the direction is kept and the norm becomes
    max_norm; otherwise they are returned as they are. A norm that is not finite is returned
    unscaled (the trainer then stops on the loss or the parameters)."""
    norm = global_norm(grads)
    if not norm > max_norm or not math.isfinite(norm):
        return dict(grads), norm
    out = {}
    for name, g in grads.items():
        out[name] = g * np.asarray(max_norm / norm, dtype=g.dtype)
    return out, norm
