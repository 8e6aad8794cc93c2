"""Layer benchmark: DeepConvNet's six 3x3 convolutions and its first 2x2 max pool as layer
objects (forward, backward), and one whole training step of the network (forward, backward,
Adam) for fastcnn, the numpy reference and PyTorch's CPU path (when torch is importable).
Batch 100, float32, fastcnn's thread count for torch too.

  pytest benchmarks/bench_layers.py --benchmark-group-by=param:case
  python benchmarks/bench_layers.py              # ratio table + training-step peak memory

Peak memory is measured per backend in a fresh subprocess: the growth of the resident set over
a few training steps (ru_maxrss after the steps minus the resident size before the first).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

import fastcnn
from fastcnn import layers as fast_layers
from fastcnn.reference import layers as ref_layers

BATCH = 100
# name -> (C, K, H (= W), pad); all 3x3, stride 1.
CONVS = {
    "conv1_1to16_28": (1, 16, 28, 1),
    "conv2_16to16_28": (16, 16, 28, 1),
    "conv3_16to32_14": (16, 32, 14, 1),
    "conv4_32to32_14": (32, 32, 14, 2),
    "conv5_32to64_7": (32, 64, 7, 1),
    "conv6_64to64_7": (64, 64, 7, 1),
}
POOL_SHAPE = (BATCH, 16, 28, 28)
BACKENDS = ("fastcnn", "reference", "torch")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(fastcnn.get_num_threads())
    return torch


# ---------------------------------------------------------------------------------------------
# Single layers: (forward, backward) callables per backend, checked against the reference.
# ---------------------------------------------------------------------------------------------


def _conv_case(name: str) -> dict[str, tuple[Callable, Callable]]:
    c, k, h, pad = CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    cases = {}
    for backend, mod in (("fastcnn", fast_layers), ("reference", ref_layers)):
        layer = mod.Convolution(w, b, 1, pad)
        y = layer.forward(x)
        dy = np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32)
        cases[backend] = (lambda lay=layer: lay.forward(x), lambda lay=layer, d=dy: lay.backward(d))
    _check(cases)
    torch = _torch()
    if torch is not None:
        conv = torch.nn.Conv2d(c, k, 3, 1, pad)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
        cases["torch"] = _torch_pair(torch, conv, x)
    return cases


def _pool_case() -> dict[str, tuple[Callable, Callable]]:
    x = np.random.default_rng(2).standard_normal(POOL_SHAPE, dtype=np.float32)
    cases = {}
    for backend, mod in (("fastcnn", fast_layers), ("reference", ref_layers)):
        layer = mod.Pooling(2, 2, 2)
        y = layer.forward(x)
        dy = np.random.default_rng(3).standard_normal(y.shape, dtype=np.float32)
        cases[backend] = (lambda lay=layer: lay.forward(x), lambda lay=layer, d=dy: lay.backward(d))
    _check(cases)
    torch = _torch()
    if torch is not None:
        cases["torch"] = _torch_pair(torch, torch.nn.MaxPool2d(2, 2), x)
    return cases


def _check(cases: dict[str, tuple[Callable, Callable]]) -> None:
    for i in range(2):
        np.testing.assert_allclose(cases["fastcnn"][i](), cases["reference"][i](), atol=2e-4)


def _torch_pair(torch, module, x: np.ndarray) -> tuple[Callable, Callable]:
    """torch forward without grad, and backward alone: the graph is rebuilt outside the timed
    region is impossible in torch (backward frees it), so backward = (forward + backward) minus
    forward is done by the table; pytest-benchmark times forward+backward as 'backward'."""
    xt = torch.from_numpy(x).requires_grad_()

    def fwd():
        with torch.no_grad():
            return module(xt)

    def fwd_bwd():
        out = module(xt)
        out.backward(torch.ones_like(out))
        return xt.grad

    return fwd, fwd_bwd


# ---------------------------------------------------------------------------------------------
# The whole DeepConvNet training step
# ---------------------------------------------------------------------------------------------

# (C_in, K, pad) of the six convolutions; pools after the 2nd, 4th and 6th.
DEEP_CONVS = [(1, 16, 1), (16, 16, 1), (16, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 1)]


def _deep_params(seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised DeepConvNet weights, float32, shared by all three backends."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (c, k, _) in enumerate(DEEP_CONVS, 1):
        params[f"W{i}"] = rng.standard_normal((k, c, 3, 3)) * np.sqrt(2.0 / (9 * c))
        params[f"b{i}"] = np.zeros(k)
    params["W7"] = rng.standard_normal((64 * 4 * 4, 50)) * np.sqrt(2.0 / (64 * 3 * 3))
    params["b7"] = np.zeros(50)
    params["W8"] = rng.standard_normal((50, 10)) * np.sqrt(2.0 / 50)
    params["b8"] = np.zeros(10)
    return {k: v.astype(np.float32) for k, v in params.items()}


class _LayerNet:
    """DeepConvNet from a layers module (fastcnn.layers or fastcnn.reference.layers) + Adam."""

    def __init__(self, mod, params: dict[str, np.ndarray]) -> None:
        self.mod, self.params = mod, {k: v.copy() for k, v in params.items()}
        p = self.params
        self.layers = []
        for i, (_, _, pad) in enumerate(DEEP_CONVS, 1):
            self.layers += [mod.Convolution(p[f"W{i}"], p[f"b{i}"], 1, pad), mod.Relu()]
            if i % 2 == 0:
                self.layers.append(mod.Pooling(2, 2, 2))
        self.layers += [
            mod.Affine(p["W7"], p["b7"]),
            mod.Relu(),
            mod.Dropout(0.5, seed=1),
            mod.Affine(p["W8"], p["b8"]),
            mod.Dropout(0.5, seed=2),
        ]
        self.last = mod.SoftmaxWithLoss()
        self.m = {k: np.zeros_like(v) for k, v in p.items()}
        self.v = {k: np.zeros_like(v) for k, v in p.items()}
        self.step_count = 0

    def step(self, x: np.ndarray, t: np.ndarray) -> float:
        h = x
        for layer in self.layers:
            h = layer.forward(h)
        loss = self.last.forward(h, t)
        d = self.last.backward()
        for layer in reversed(self.layers):
            d = layer.backward(d)
        self.step_count += 1
        F = self.mod.Layer.F
        weighted = [lay for lay in self.layers if hasattr(lay, "dW")]
        for i, lay in enumerate(weighted, 1):
            for key, grad in ((f"W{i}", lay.dW), (f"b{i}", lay.db)):
                F.adam_update(
                    self.params[key],
                    grad,
                    self.m[key],
                    self.v[key],
                    1e-3,
                    0.9,
                    0.999,
                    self.step_count,
                )
        return loss


def _torch_net(torch, params: dict[str, np.ndarray]):
    nn = torch.nn
    mods = []
    for i, (c, k, pad) in enumerate(DEEP_CONVS, 1):
        conv = nn.Conv2d(c, k, 3, 1, pad)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(params[f"W{i}"]))
            conv.bias.zero_()
        mods += [conv, nn.ReLU()]
        if i % 2 == 0:
            mods.append(nn.MaxPool2d(2, 2))
    fc1, fc2 = nn.Linear(1024, 50), nn.Linear(50, 10)
    with torch.no_grad():
        fc1.weight.copy_(torch.from_numpy(params["W7"].T.copy()))
        fc2.weight.copy_(torch.from_numpy(params["W8"].T.copy()))
        fc1.bias.zero_()
        fc2.bias.zero_()
    net = nn.Sequential(*mods, nn.Flatten(), fc1, nn.ReLU(), nn.Dropout(0.5), fc2, nn.Dropout(0.5))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, t):
        opt.zero_grad()
        loss = loss_fn(net(x), t)
        loss.backward()
        opt.step()
        return float(loss)

    return step


def _mnist_like_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)


def training_step(backend: str) -> Callable[[], float] | None:
    """A callable doing one training step on a fixed batch, or None (torch missing)."""
    x, t = _mnist_like_batch()
    params = _deep_params()
    if backend == "torch":
        torch = _torch()
        if torch is None:
            return None
        step = _torch_net(torch, params)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        return lambda: step(xt, tt)
    net = _LayerNet(fast_layers if backend == "fastcnn" else ref_layers, params)
    return lambda: net.step(x, t)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4  # resident pages of 4 KiB


def _peak_memory_child(backend: str, steps: int) -> None:
    import resource

    step = training_step(backend)
    before = _rss_kib()
    for _ in range(steps):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "peak_kib": peak, "growth_kib": peak - before}))


def peak_memory(backend: str, steps: int = 3) -> dict[str, int] | None:
    """Resident-memory growth of `steps` training steps in a fresh process (None: no torch)."""
    if backend == "torch" and _torch() is None:
        return None
    code = (
        f"import sys; sys.path.insert(0, {__file__.rsplit('/', 1)[0]!r}); "
        f"import bench_layers; bench_layers._peak_memory_child({backend!r}, {steps})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", [*CONVS, "maxpool_16x28x28"])
def test_layer(benchmark, case, direction, backend):
    cases = _pool_case() if case.startswith("maxpool") else _conv_case(case)
    if backend not in cases:
        pytest.skip("torch is not installed")
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(cases[backend][0 if direction == "forward" else 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_step(benchmark, backend):
    step = training_step(backend)
    if step is None:
        pytest.skip("torch is not installed")
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark.pedantic(step, rounds=3 if backend == "reference" else 10, warmup_rounds=1)


# ---------------------------------------------------------------------------------------------
# Ratio table
# ---------------------------------------------------------------------------------------------


def main() -> None:
    from common import best_time, print_table

    has_torch = _torch() is not None
    rows, sums = [], {"fastcnn": 0.0, "torch": 0.0}
    for case in [*CONVS, "maxpool_16x28x28"]:
        cases = _pool_case() if case.startswith("maxpool") else _conv_case(case)
        t = {}
        for backend, (fwd, bwd) in cases.items():
            reps = 1 if backend == "reference" else 9
            t[backend, "f"] = best_time(fwd, repeat=reps, min_time=0.0 if reps == 1 else 0.05)
            t[backend, "b"] = best_time(bwd, repeat=reps, min_time=0.0 if reps == 1 else 0.05)
        if has_torch:
            t["torch", "b"] = max(t["torch", "b"] - t["torch", "f"], 1e-9)  # fwd+bwd timed
        row = [case]
        for d in "fb":
            row += [
                f"{t['fastcnn', d] * 1e3:.2f}",
                f"{t['reference', d] / t['fastcnn', d]:.1f}",
                f"{t['torch', d] / t['fastcnn', d]:.2f}" if has_torch else "-",
            ]
        rows.append(row)
        if case in CONVS:
            for backend in sums:
                if backend != "torch" or has_torch:
                    sums[backend] += t[backend, "f"] + t[backend, "b"]
    print(
        f"# fastcnn {fastcnn.__version__}, isa={fastcnn.get_isa()}, "
        f"threads={fastcnn.get_num_threads()}, batch {BATCH}, float32; "
        "ratios > 1 mean fastcnn is faster"
    )
    print_table(
        ["layer", "fwd ms", "ref/fast", "torch/fast", "bwd ms", "ref/fast", "torch/fast"], rows
    )
    if has_torch:
        print(
            f"six convolutions fwd+bwd: fastcnn {sums['fastcnn'] * 1e3:.1f} ms, torch "
            f"{sums['torch'] * 1e3:.1f} ms -> fastcnn/torch = {sums['fastcnn'] / sums['torch']:.2f}"
        )
    steps = {}
    for backend in BACKENDS:
        step = training_step(backend)
        if step is not None:
            reps = 2 if backend == "reference" else 9
            steps[backend] = best_time(step, repeat=reps, min_time=0.0 if reps == 2 else 0.2)
    mem = {backend: peak_memory(backend) for backend in BACKENDS}
    rows = []
    for backend, sec in steps.items():
        m = mem[backend]
        rows.append(
            [
                backend,
                f"{sec * 1e3:.1f}",
                f"{sec / steps['fastcnn']:.2f}",
                f"{m['growth_kib'] / 1024:.0f}" if m else "-",
                f"{m['peak_kib'] / 1024:.0f}" if m else "-",
            ]
        )
    print("\nDeepConvNet training step (forward, backward, Adam), batch 100:")
    print_table(["backend", "ms/step", "time/fastcnn", "step RSS growth MiB", "peak RSS MiB"], rows)


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
