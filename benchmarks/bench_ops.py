"""Small-ops benchmark: fastcnn vs the numpy reference (and PyTorch's CPU ops when installed).

  pytest benchmarks/bench_ops.py --benchmark-group-by=param:case   # pytest-benchmark
  python benchmarks/bench_ops.py                                   # a ratio table

Sizes: DeepConvNet's at batch 100, float32 - ReLU and spatial batchnorm on its first conv
output (100x16x28x28), dropout on the 100x50 hidden layer, softmax-xent on the 100x10 head, and
Adam over 100k parameters. fastcnn is checked against the reference before it is timed (bit for
bit where the arithmetic is the same); torch is checked where it computes the same thing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest

import fastcnn
from fastcnn import _ops
from fastcnn._bench_peers import import_torch
from fastcnn.reference import functional as R

CASES = [
    "relu_forward",
    "relu_backward",
    "dropout_forward",
    "dropout_backward",
    "softmax_xent_forward",
    "softmax_xent_backward",
    "spatial_bn_forward",
    "spatial_bn_backward",
    "adam_update",
]
X4 = (100, 16, 28, 28)
HIDDEN = (100, 50)
HEAD = (100, 10)
PARAMS = 100_000


def _data():
    rng = np.random.default_rng(0)
    d = {
        "x4": rng.standard_normal(X4, dtype=np.float32),
        "dy4": rng.standard_normal(X4, dtype=np.float32),
        "h": rng.standard_normal(HIDDEN, dtype=np.float32),
        "dh": rng.standard_normal(HIDDEN, dtype=np.float32),
        "logits": rng.standard_normal(HEAD, dtype=np.float32),
        "labels": rng.integers(0, HEAD[1], HEAD[0]),
        "gamma": rng.random(X4[1], dtype=np.float32) + 0.5,
        "beta": rng.standard_normal(X4[1], dtype=np.float32),
        "param": rng.standard_normal(PARAMS, dtype=np.float32),
        "grad": rng.standard_normal(PARAMS, dtype=np.float32),
    }
    d["mask"] = R.dropout_mask(HIDDEN, 0.5, 7)
    d["p"] = R.softmax_cross_entropy_forward(d["logits"], d["labels"])[1]
    _, d["mean"], d["inv_std"] = R.spatial_batchnorm_forward(
        d["x4"], d["gamma"], d["beta"], None, None
    )
    return d


def _numpy_calls(mod, d) -> dict[str, Callable[[], object]]:
    """One call per case on fastcnn._ops or the reference (the same API)."""
    rm, rv = np.zeros(X4[1], np.float32), np.ones(X4[1], np.float32)
    m, v = np.zeros(PARAMS, np.float32), np.zeros(PARAMS, np.float32)
    param = d["param"].copy()
    return {
        "relu_forward": lambda: mod.relu_forward(d["x4"]),
        "relu_backward": lambda: mod.relu_backward(d["dy4"], d["x4"]),
        "dropout_forward": lambda: mod.dropout_forward(d["h"], 0.5, seed=7),
        "dropout_backward": lambda: mod.dropout_backward(d["dh"], d["mask"]),
        "softmax_xent_forward": lambda: mod.softmax_cross_entropy_forward(d["logits"], d["labels"]),
        "softmax_xent_backward": lambda: mod.softmax_cross_entropy_backward(d["p"], d["labels"]),
        "spatial_bn_forward": lambda: mod.spatial_batchnorm_forward(
            d["x4"], d["gamma"], d["beta"], rm, rv
        ),
        "spatial_bn_backward": lambda: mod.spatial_batchnorm_backward(
            d["dy4"], d["x4"], d["gamma"], d["mean"], d["inv_std"]
        ),
        "adam_update": lambda: mod.adam_update(param, d["grad"], m, v, 1e-3, 0.9, 0.999, 1),
    }


def _check_fastcnn(d) -> None:
    """fastcnn's results against the reference's, before anything is timed."""
    fast, ref = _numpy_calls(_ops, d), _numpy_calls(R, d)
    for case in CASES:
        if case == "adam_update":
            continue  # in place: checked below on fresh state
        a, b = fast[case](), ref[case]()
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        for u, w in zip(a, b):
            np.testing.assert_allclose(u, w, rtol=1e-4, atol=1e-5 * float(np.abs(w).max()))
    p1, p2 = d["param"].copy(), d["param"].copy()
    s1 = [np.zeros(PARAMS, np.float32) for _ in range(2)]
    s2 = [np.zeros(PARAMS, np.float32) for _ in range(2)]
    _ops.adam_update(p1, d["grad"], *s1, 1e-3, 0.9, 0.999, 1)
    R.adam_update(p2, d["grad"], *s2, 1e-3, 0.9, 0.999, 1)
    assert p1.tobytes() == p2.tobytes()


def _torch_calls(torch, d) -> dict[str, Callable[[], object]]:
    """PyTorch's CPU ops for the cases it has a direct op for; checked where comparable."""
    tf = torch.nn.functional
    x4, dy4 = torch.from_numpy(d["x4"]), torch.from_numpy(d["dy4"])
    h, dh = torch.from_numpy(d["h"]), torch.from_numpy(d["dh"])
    mask = torch.from_numpy(d["mask"])
    logits, labels = torch.from_numpy(d["logits"]), torch.from_numpy(d["labels"])
    gamma, beta = torch.from_numpy(d["gamma"]), torch.from_numpy(d["beta"])
    rm, rv = torch.zeros(X4[1]), torch.ones(X4[1])
    eps = 1e-6
    y, mean, invstd = torch.ops.aten.native_batch_norm(x4, gamma, beta, rm, rv, True, 0.1, eps)

    np.testing.assert_array_equal(torch.relu(x4).numpy(), R.relu_forward(d["x4"]))
    loss = tf.cross_entropy(logits, labels).item()
    assert abs(loss - R.softmax_cross_entropy_forward(d["logits"], d["labels"])[0]) < 1e-5
    np.testing.assert_allclose(invstd.numpy(), d["inv_std"], rtol=1e-4)

    param = torch.from_numpy(d["param"].copy()).requires_grad_()
    param.grad = torch.from_numpy(d["grad"])
    try:
        opt = torch.optim.Adam([param], lr=1e-3, betas=(0.9, 0.999), fused=True)
        opt.step()
    except (RuntimeError, ValueError):  # no fused CPU Adam in this build
        opt = torch.optim.Adam([param], lr=1e-3, betas=(0.9, 0.999))

    def adam():
        with torch.no_grad():
            opt.step()

    return {
        "relu_forward": lambda: torch.relu(x4),
        "relu_backward": lambda: torch.ops.aten.threshold_backward(dy4, x4, 0),
        "dropout_forward": lambda: tf.dropout(h, 0.5, True),
        "dropout_backward": lambda: torch.ops.aten.native_dropout_backward(dh, mask, 1.0),
        "softmax_xent_forward": lambda: tf.cross_entropy(logits, labels),
        "spatial_bn_forward": lambda: torch.ops.aten.native_batch_norm(
            x4, gamma, beta, rm, rv, True, 0.1, eps
        ),
        "spatial_bn_backward": lambda: torch.ops.aten.native_batch_norm_backward(
            dy4, x4, gamma, rm, rv, mean, invstd, True, eps, [True, True, True]
        ),
        "adam_update": adam,
    }


def _impl(impl: str, case: str) -> Callable[[], object]:
    d = _data()
    if impl == "fastcnn":
        _check_fastcnn(d)
        return _numpy_calls(_ops, d)[case]
    if impl == "reference":
        return _numpy_calls(R, d)[case]
    torch = import_torch()
    if torch is None:
        pytest.skip("torch is not installed")
    calls = _torch_calls(torch, d)
    if case not in calls:
        pytest.skip(f"no direct torch op for {case}")
    return calls[case]


@pytest.mark.parametrize("impl", ["fastcnn", "reference", "torch"])
@pytest.mark.parametrize("case", CASES)
def test_ops(benchmark, case, impl):
    fn = _impl(impl, case)
    benchmark.extra_info["case"] = case
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(fn)


def main() -> None:
    from common import best_time, print_table

    d = _data()
    _check_fastcnn(d)
    torch = import_torch()
    impls = {"reference": _numpy_calls(R, d), "fastcnn": _numpy_calls(_ops, d)}
    if torch is not None:
        impls["torch"] = _torch_calls(torch, d)
    rows = []
    for case in CASES:
        t = {k: best_time(v[case], repeat=5) for k, v in impls.items() if case in v}
        with fastcnn.threads(1):
            t1 = best_time(impls["fastcnn"][case], repeat=3)
        row = [
            case,
            f"{t['reference'] * 1e3:.3f}",
            f"{t['fastcnn'] * 1e3:.3f}",
            f"{t1 * 1e3:.3f}",
            f"{t['reference'] / t['fastcnn']:.1f}",
            f"{t['reference'] / t1:.1f}",
        ]
        if torch is not None:
            tt = t.get("torch")
            row += ["-", "-"] if tt is None else [f"{tt * 1e3:.3f}", f"{tt / t['fastcnn']:.2f}"]
        rows.append(row)
    print(
        f"# fastcnn {fastcnn.__version__}, small ops at DeepConvNet sizes (batch 100) float32, "
        f"threads={fastcnn.get_num_threads()}, numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else ", no torch")
    )
    header = ["case", "ref ms", "fastcnn ms", "fastcnn 1T ms", "ref/fastcnn", "ref/fastcnn 1T"]
    if torch is not None:
        header += ["torch ms", "torch/fastcnn"]
    print_table(header, rows)


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
