"""``fastcnn bench``'s roofline: the float32 FMA peak of this CPU for the ISA in use, measured
(independent multiply-add chains on registers on every thread, _core.fma_peak), and the useful
floating-point operations of each convolution pass in the algorithm that ran, from which the
layer table gives each pass's % of peak and the six convolutions' limit (their useful
operations at the peak). Memory traffic and transforms are left out on purpose: they are what
keeps a kernel from its limit, not part of it.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastcnn._bench import ConvShape

# The Winograd algorithms by name: winograd_f{m}x{m}_{r}x{r} computes m x m output tiles of an
# r x r filter from (m + r - 1)^2-point transforms.
_WINOGRAD = re.compile(r"winograd_f(\d+)x\1_(\d+)x\2")
# The direct forms: every multiply-add of the convolution's sum, 2*N*K*C*R*S per output pixel.
DIRECT = ("direct_columns", "direct_pixels", "col2im_gemm")
# What the header says the counts are.
FLOPS_RULE = (
    "useful FLOPs of the algorithm that ran: direct forms 2*N*K*C*R*S*P*Q, Winograd "
    "F(m x m, 3 x 3) the multiply-adds of its element-wise stage, 2*(m+2)^2*C*K per m x m tile"
)


def fma_peak(isa: str | None = None, quick: bool = False) -> dict[str, Any]:
    """The measured float32 FMA peak of ``isa`` (default: the one in use) on fastcnn's threads:
    _core.fma_peak's dict (gflops, threads, chains, lanes, ...)."""
    import fastcnn
    from fastcnn._env import _core

    name = fastcnn.get_isa() if isa is None else isa
    return _core.fma_peak(name, min_seconds=0.02 if quick else 0.05, repeat=3 if quick else 7)


def pass_flops(s: ConvShape, batch: int, pass_: str, algorithm: str) -> float:
    """Useful floating-point operations of one convolution pass ("forward", "backward_data",
    "backward_weights") of shape ``s`` on ``batch`` images in ``algorithm`` (a name from
    fastcnn.conv_algorithms()). The extent the algorithm computes over: the output y (P x Q)
    forward and for the weight gradient (which sums over y's pixels or tiles); for dx, the
    forward algorithms run on the flipped problem, whose output is dx (H x W), while
    col2im_gemm multiplies over dy's pixels (P x Q)."""
    p = (s.h + 2 * s.pad - s.size) // s.stride + 1
    q = (s.w + 2 * s.pad - s.size) // s.stride + 1
    if pass_ not in ("forward", "backward_data", "backward_weights"):
        raise ValueError(f"pass_flops: unknown pass {pass_!r}")
    flipped = pass_ == "backward_data" and algorithm != "col2im_gemm"
    rows, cols = (s.h, s.w) if flipped else (p, q)
    wino = _WINOGRAD.fullmatch(algorithm)
    if wino is not None:
        m, r = int(wino.group(1)), int(wino.group(2))
        if r != s.size:
            raise ValueError(f"pass_flops: {algorithm} on a {s.size} x {s.size} filter")
        tiles = batch * math.ceil(rows / m) * math.ceil(cols / m)
        return 2.0 * tiles * (m + r - 1) ** 2 * s.c * s.k
    if algorithm in DIRECT:
        return 2.0 * batch * s.k * s.c * s.size * s.size * rows * cols
    raise ValueError(f"pass_flops: unknown convolution algorithm {algorithm!r}")


def layer_flops(s: ConvShape, batch: int, algorithms: dict[str, str | None]) -> tuple[float, float]:
    """(forward, backward) useful operations of a convolution layer whose passes ran
    ``algorithms`` ({pass: name or None}, fastcnn.last_conv_algorithms()); backward is dx plus
    dW, as Layer.backward computes both (a pass that did not run counts 0)."""

    def count(pass_: str) -> float:
        name = algorithms.get(pass_)
        return 0.0 if name is None else pass_flops(s, batch, pass_, name)

    return count("forward"), count("backward_data") + count("backward_weights")
