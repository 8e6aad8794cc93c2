"""GEMM benchmark: fastcnn.gemm vs numpy.matmul (OpenBLAS), float32, in GFLOP/s.

  pytest benchmarks/bench_gemm.py --benchmark-group-by=param:shape   # pytest-benchmark
  python benchmarks/bench_gemm.py                                    # a ratio table

Shapes: squares, and the GEMMs of DeepConvNet's six convolutions at batch 100 (taken from a
forward pass of the model) written as im2col products (forward col(M x K) . W^T(K x N);
backward-data dY . W; backward-weights col^T . dY).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fastcnn

# (name, M, N, K, trans_a, trans_b)
SQUARE = [(f"square{n}", n, n, n, False, False) for n in (256, 512, 1024, 2048)]


def _conv_products() -> list[tuple[int, int, int]]:
    """(M, K, N) of each DeepConvNet convolution's im2col forward product at batch 100, from a
    forward pass of the model (conv5 and conv6 run on 8x8), not from a table kept by hand."""
    from fastcnn._bench import BATCH, network_shapes

    out = []
    for s in network_shapes()[0].values():
        ho = (s.h + 2 * s.pad - s.size) // s.stride + 1
        wo = (s.w + 2 * s.pad - s.size) // s.stride + 1
        out.append((BATCH * ho * wo, s.c * s.size * s.size, s.k))
    return out


_CONV = _conv_products()
DEEPCONVNET = []
for _m, _k, _n in _CONV:
    DEEPCONVNET.append((f"fwd{_m}x{_k}x{_n}", _m, _n, _k, False, False))
    DEEPCONVNET.append((f"bwd_data{_m}x{_n}x{_k}", _m, _k, _n, False, True))
    DEEPCONVNET.append((f"bwd_weight{_k}x{_m}x{_n}", _k, _n, _m, True, False))
SHAPES = SQUARE + DEEPCONVNET
BY_NAME = {s[0]: s for s in SHAPES}


def _operands(m: int, n: int, k: int, ta: bool, tb: bool):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def _impls(a, b, ta, tb, out):
    op_a, op_b = (a.T if ta else a), (b.T if tb else b)
    return {
        "fastcnn": lambda: fastcnn.gemm(a, b, trans_a=ta, trans_b=tb, out=out),
        "numpy": lambda: np.matmul(op_a, op_b, out=out),
    }


@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
@pytest.mark.parametrize("shape", list(BY_NAME))
def test_gemm(benchmark, shape, impl):
    name, m, n, k, ta, tb = BY_NAME[shape]
    a, b = _operands(m, n, k, ta, tb)
    out = np.empty((m, n), np.float32)
    fn = _impls(a, b, ta, tb, out)[impl]
    fn()
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * np.sqrt(k) * 4)
    benchmark.extra_info["gflops"] = 2 * m * n * k / 1e9
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(fn)
    benchmark.extra_info["GFLOP/s"] = 2 * m * n * k / benchmark.stats.stats.min / 1e9


def main() -> None:
    from common import best_time, print_table

    rows = []
    for name, m, n, k, ta, tb in SHAPES:
        a, b = _operands(m, n, k, ta, tb)
        out = np.empty((m, n), np.float32)
        fns = _impls(a, b, ta, tb, out)
        flops = 2 * m * n * k
        t_np = best_time(fns["numpy"])
        t_fc = best_time(fns["fastcnn"])
        row = [
            name,
            f"{m}x{n}x{k}",
            f"{flops / t_np / 1e9:.1f}",
            f"{flops / t_fc / 1e9:.1f}",
            f"{t_np / t_fc:.2f}",
        ]
        if name.startswith("square") and m >= 1024:
            with fastcnn.threads(1):
                t_1 = best_time(fns["fastcnn"], repeat=3)
            row.append(f"{t_1 / t_fc:.2f}")
        else:
            row.append("")
        rows.append(row)
    print(
        f"# fastcnn {fastcnn.__version__}, isa={fastcnn.get_isa()}, "
        f"threads={fastcnn.get_num_threads()}, numpy {np.__version__}"
    )
    print_table(["shape", "MxNxK", "numpy GF/s", "fastcnn GF/s", "fastcnn/numpy", "2T/1T"], rows)


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
