"""Max-pool benchmark: fastcnn vs the numpy reference (and PyTorch's CPU op when installed).

  pytest benchmarks/bench_pool.py --benchmark-group-by=param:case   # pytest-benchmark
  python benchmarks/bench_pool.py                                   # a ratio table

Shapes: DeepConvNet's three 2x2 stride-2 pools at batch 100, float32 (7x7 is odd: the last
row and column are dropped). Every implementation is checked against the reference first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest

import fastcnn
from fastcnn import _pool
from fastcnn._bench_peers import import_torch
from fastcnn.reference import functional as R

# (name, x shape); all pools are window 2, stride 2, no padding.
SHAPES = [
    ("pool1_16x28x28", (100, 16, 28, 28)),
    ("pool2_32x14x14", (100, 32, 14, 14)),
    ("pool3_64x7x7", (100, 64, 7, 7)),
]
BY_NAME = dict(SHAPES)
WIN, STRIDE = 2, 2


def _data(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    y, am = R.max_pool2d_forward(x, WIN, STRIDE)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = R.max_pool2d_backward(dy, am, shape, WIN, STRIDE)
    return x, dy, (y, am, dx)


def _impls(impl: str, shape) -> dict[str, Callable[[], object]]:
    """{'forward': fn, 'backward': fn} for one implementation, each checked against the
    reference before being returned."""
    x, dy, (y_ref, am_ref, dx_ref) = _data(shape)
    if impl in ("fastcnn", "reference"):
        mod = _pool if impl == "fastcnn" else R
        y, am = mod.max_pool2d_forward(x, WIN, STRIDE)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(am, am_ref)
        np.testing.assert_array_equal(mod.max_pool2d_backward(dy, am, shape, WIN, STRIDE), dx_ref)
        return {
            "forward": lambda: mod.max_pool2d_forward(x, WIN, STRIDE),
            "backward": lambda: mod.max_pool2d_backward(dy, am, shape, WIN, STRIDE),
        }
    torch = import_torch()
    if torch is None:
        pytest.skip("torch is not installed")
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    yt, it = torch.nn.functional.max_pool2d(xt, WIN, STRIDE, return_indices=True)
    np.testing.assert_array_equal(yt.numpy(), y_ref)

    def backward():
        return torch.ops.aten.max_pool2d_with_indices_backward(
            dyt, xt, [WIN, WIN], [STRIDE, STRIDE], [0, 0], [1, 1], False, it
        )

    np.testing.assert_array_equal(backward().numpy(), dx_ref)
    return {
        "forward": lambda: torch.nn.functional.max_pool2d(xt, WIN, STRIDE, return_indices=True),
        "backward": backward,
    }


@pytest.mark.parametrize("impl", ["fastcnn", "reference", "torch"])
@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("shape", ["pool1_16x28x28"])
def test_max_pool2d(benchmark, shape, op, impl):
    fn = _impls(impl, BY_NAME[shape])[op]
    benchmark.extra_info["case"] = f"{shape}-{op}"
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(fn)


def main() -> None:
    from common import best_time, print_table

    have_torch = import_torch() is not None
    rows = []
    for name, shape in SHAPES:
        impls = {"reference": _impls("reference", shape), "fastcnn": _impls("fastcnn", shape)}
        if have_torch:
            impls["torch"] = _impls("torch", shape)
        for op in ("forward", "backward"):
            t = {k: best_time(v[op], repeat=5) for k, v in impls.items()}
            with fastcnn.threads(1):
                t1 = best_time(impls["fastcnn"][op], repeat=3)
            row = [
                f"{name} {op}",
                f"{t['reference'] * 1e3:.3f}",
                f"{t['fastcnn'] * 1e3:.3f}",
                f"{t['reference'] / t['fastcnn']:.1f}",
                f"{t1 / t['fastcnn']:.2f}",
            ]
            if have_torch:
                row += [f"{t['torch'] * 1e3:.3f}", f"{t['torch'] / t['fastcnn']:.2f}"]
            rows.append(row)
    print(
        f"# fastcnn {fastcnn.__version__}, max_pool2d 2x2/2 float32, "
        f"threads={fastcnn.get_num_threads()}, numpy {np.__version__}"
        + (f", torch {sys.modules['torch'].__version__}" if have_torch else ", no torch")
    )
    header = ["case", "ref ms", "fastcnn ms", "ref/fastcnn", "1T/2T"]
    if have_torch:
        header += ["torch ms", "torch/fastcnn"]
    print_table(header, rows)


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
