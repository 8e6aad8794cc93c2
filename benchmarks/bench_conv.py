"""Convolution benchmark: DeepConvNet's six 3x3 convolutions at batch 100, float32, forward
and backward, fastcnn vs the numpy reference vs PyTorch's CPU ops (when torch is importable),
and fastcnn's Winograd path (the default for conv2-conv6) vs its direct form
("fastcnn-direct", fastcnn.winograd(False)).

  pytest benchmarks/bench_conv.py --benchmark-group-by=param:layer
  python benchmarks/bench_conv.py            # a ratio table (reference timed once per layer)
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import _conv as fast
from fastcnn._bench import BATCH, CONVS
from fastcnn.reference import functional as ref

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

# name -> ConvShape of DeepConvNet's six convolutions as a forward pass runs them, the same
# as `fastcnn bench` (conv5 and conv6 on 8x8: conv4 pads by 2).
LAYERS = CONVS


def _operands(name: str):
    s = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, s.c, s.h, s.w), dtype=np.float32)
    w = rng.standard_normal((s.k, s.c, s.size, s.size)) * np.sqrt(2 / (s.size**2 * s.c))
    w = w.astype(np.float32)
    b = rng.standard_normal(s.k).astype(np.float32)
    y = ref.conv2d_forward(x, w, b, s.stride, s.pad)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return x, w, b, dy, s.pad


def _direct(fn):
    def run():
        with fastcnn.winograd(False):
            return fn()

    return run


def _impls(x, w, b, dy, pad):
    impls = {
        "fastcnn": (
            lambda: fast.conv2d_forward(x, w, b, 1, pad),
            lambda: fast.conv2d_backward(dy, x, w, 1, pad),
        ),
        "fastcnn-direct": (
            _direct(lambda: fast.conv2d_forward(x, w, b, 1, pad)),
            _direct(lambda: fast.conv2d_backward(dy, x, w, 1, pad)),
        ),
        "reference": (
            lambda: ref.conv2d_forward(x, w, b, 1, pad),
            lambda: ref.conv2d_backward(dy, x, w, 1, pad),
        ),
    }
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        bt = torch.from_numpy(b).requires_grad_()
        dyt = torch.from_numpy(dy)

        def t_fwd():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, 1, pad)

        out = torch.nn.functional.conv2d(xt, wt, bt, 1, pad)

        def t_bwd():  # the backward alone, again over one kept forward graph
            return torch.autograd.grad(out, (xt, wt, bt), dyt, retain_graph=True)

        impls["torch"] = (t_fwd, t_bwd)
    return impls


@pytest.mark.parametrize("impl", ["fastcnn", "fastcnn-direct", "reference", "torch"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_conv(benchmark, layer, direction, impl):
    x, w, b, dy, pad = _operands(layer)
    impls = _impls(x, w, b, dy, pad)
    if impl not in impls:
        pytest.skip("torch is not installed")
    fwd, bwd = impls[impl]
    # Check against the oracle before timing.
    np.testing.assert_allclose(
        fast.conv2d_forward(x, w, b, 1, pad), ref.conv2d_forward(x, w, b, 1, pad), atol=2e-4
    )
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(fwd if direction == "forward" else bwd)


def main() -> None:
    from common import best_time, print_table

    if torch is not None:
        torch.set_num_threads(fastcnn.get_num_threads())
    rows = []
    totals = {"fastcnn": 0.0, "fastcnn-direct": 0.0, "torch": 0.0}
    for name in LAYERS:
        x, w, b, dy, pad = _operands(name)
        impls = _impls(x, w, b, dy, pad)
        t = {}
        for impl, (fwd, bwd) in impls.items():
            reps = 1 if impl == "reference" else 7
            t[impl, "f"] = best_time(fwd, repeat=reps, min_time=0.0 if reps == 1 else 0.05)
            t[impl, "b"] = best_time(bwd, repeat=reps, min_time=0.0 if reps == 1 else 0.05)
        if torch is not None:
            totals["torch"] += t["torch", "f"] + t["torch", "b"]
        for impl in ("fastcnn", "fastcnn-direct"):
            totals[impl] += t[impl, "f"] + t[impl, "b"]
        row = [name]
        for d in "fb":
            row.append(f"{t['fastcnn', d] * 1e3:.2f}")
            row.append(f"{t['fastcnn-direct', d] / t['fastcnn', d]:.2f}")
            row.append(f"{t['reference', d] / t['fastcnn', d]:.1f}")
            row.append(f"{t['torch', d] / t['fastcnn', d]:.2f}" if torch is not None else "-")
        rows.append(row)
    print(
        f"# fastcnn {fastcnn.__version__}, isa={fastcnn.get_isa()}, "
        f"threads={fastcnn.get_num_threads()}, batch {BATCH}, float32"
    )
    print_table(
        [
            "layer",
            "fwd ms",
            "direct/fast",
            "ref/fast",
            "torch/fast",
            "bwd ms",
            "direct/fast",
            "ref/fast",
            "torch/fast",
        ],
        rows,
    )
    print(
        f"six convolutions, forward + backward: fastcnn {totals['fastcnn'] * 1e3:.1f} ms, "
        f"direct form (no Winograd) {totals['fastcnn-direct'] * 1e3:.1f} ms"
    )
    if torch is not None:
        print(
            f"six convolutions, forward + backward: fastcnn {totals['fastcnn'] * 1e3:.1f} ms, "
            f"torch {totals['torch'] * 1e3:.1f} ms, fastcnn/torch "
            f"{totals['fastcnn'] / totals['torch']:.2f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
