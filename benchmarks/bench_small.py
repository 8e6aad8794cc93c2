"""Small-shape benchmark: fastcnn against the numpy reference from one image upward, where
fixed per-call costs (threads, packing, scratch, Python checks) decide the time.

  pytest benchmarks/bench_small.py --benchmark-group-by=param:case     # pytest-benchmark
  python benchmarks/bench_small.py [--quick] [--idle-only] [--only SUBSTRING]

Cases, every one checked against the reference before it is timed:
  * DeepConvNet's layers (shapes from a real forward pass of fastcnn.models.DeepConvNet,
    float32), forward and backward, at batch 1, 2, 3, 8 and 32;
  * the classic two-layer net 784-50-10 (float64, as in the book's gradient check), loss and
    loss + gradient on 3 images;
  * SimpleConvNet (conv 30 5x5, relu, pool 2, affine 100, relu, affine 10; float64) on one
    1x10x10 image, the book's gradient-check shape, loss and loss + gradient;
  * the book's batch-norm gradient check net (784-100-100-10 with batch normalisation,
    float64) on one image, loss and loss + gradient;
  * A/A controls (control_*): affine2's cases with the reference on both sides, whose ratio
    is 1.0 but for the noise of the machine.

The script prints fast/reference time ratios (< 1: fastcnn is faster) on the machine as it is
("idle") and with one core kept busy by a spinning child process it starts itself ("loaded";
the child stops itself after a bounded time and is always killed on the way out). Both
backends are timed in the same process, alternating, each keeping its best of two blocks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import fastcnn
from fastcnn import layers as fast_layers
from fastcnn._bench import best_time
from fastcnn.models import DeepConvNet
from fastcnn.reference import layers as ref_layers

BATCHES = (1, 2, 3, 8, 32)
# DeepConvNet layers benchmarked (ReLU and dropout: the largest and the hidden one).
DEEP_LAYERS = (
    "Conv1", "Conv2", "Conv3", "Conv4", "Conv5", "Conv6",
    "Pool1", "Pool2", "Pool3", "Affine1", "Affine2",
    "Relu1", "Relu7", "Dropout1", "SoftmaxWithLoss",
)  # fmt: skip
NETS = ("twolayer_784x50x10_n3", "simpleconv_1x10x10_n1", "bnmlp_784x100x100x10_n1")
BACKENDS = ("fastcnn", "reference")


@dataclass
class Case:
    """One benchmark: a callable per backend, already checked against each other."""

    name: str
    fns: dict[str, Callable[[], Any]]


def _close(got: Any, want: Any, what: str, tol: float) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"bench_small: {what}: shape {got.shape} != {want.shape}")
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    if not err <= tol:
        raise AssertionError(f"bench_small: {what}: fastcnn differs from the reference by "
                             f"{err:.2e} (relative); not timing a wrong result")  # fmt: skip


def _tol(dtype: Any) -> float:
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-9


# ---------------------------------------------------------------------------------------------
# DeepConvNet's layers
# ---------------------------------------------------------------------------------------------


def _forward(layer: Any, x: Any, t: Any) -> Any:
    if isinstance(layer, ref_layers.SoftmaxWithLoss):
        return layer.forward(x, t)
    if isinstance(layer, ref_layers.Dropout):
        return layer.forward(x, True)
    return layer.forward(x)


def deep_layer_cases(batch: int, layers: tuple[str, ...] = DEEP_LAYERS) -> list[Case]:
    """DeepConvNet's `layers` at `batch`: inputs from a real forward pass of the reference
    model; the fast layer gets the reference layer's parameters."""
    ref = DeepConvNet(backend="reference", seed=0)
    fast = DeepConvNet(backend="fast", seed=0)
    rng = np.random.default_rng(batch)
    h = rng.standard_normal((batch, *ref.input_dim), dtype=np.float32)
    t = rng.integers(0, ref.output_size, batch)
    cases = []
    for (name, rl), fl in zip(
        [*ref.layers.items(), ("SoftmaxWithLoss", ref.last_layer)],
        [*fast.layers.values(), fast.last_layer],
    ):
        for attr in ("W", "b"):
            if hasattr(rl, attr):
                setattr(fl, attr, getattr(rl, attr).copy())
        x = h
        label = f"deep_{name.lower()}_{'x'.join(map(str, np.shape(x)[1:]))}_b{batch}"
        h = want = _forward(rl, x, t)
        got = _forward(fl, x, t)  # dropout: the same call count, so the same mask
        _close(got, want, f"{label} forward", 2e-4)
        if name not in layers:
            continue
        dy = 1.0 if np.ndim(want) == 0 else rng.standard_normal(np.shape(want), dtype=np.float32)
        _close(fl.backward(dy), rl.backward(dy), f"{label} backward", 2e-4)
        if hasattr(rl, "dW"):
            _close(fl.dW, rl.dW, f"{label} dW", 2e-4)
        for direction in ("fwd", "bwd"):
            fns = {}
            for backend, layer in (("fastcnn", fl), ("reference", rl)):
                if direction == "fwd":
                    fns[backend] = lambda lay=layer, x=x: _forward(lay, x, t)
                else:
                    fns[backend] = lambda lay=layer, d=dy: lay.backward(d)
            cases.append(Case(f"{label}_{direction}", fns))
    return cases


# ---------------------------------------------------------------------------------------------
# Whole small networks (the book's gradient checks)
# ---------------------------------------------------------------------------------------------


def _net(mod: Any, spec: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    return [getattr(mod, kind)(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))
            for kind, args in spec]  # fmt: skip


def _loss_fn(net: list[Any], x: np.ndarray, t: np.ndarray) -> Callable[[], float]:
    def loss() -> float:
        h = x
        for layer in net[:-1]:
            h = _forward(layer, h, t)
        return net[-1].forward(h, t)

    return loss


def _grad_fn(net: list[Any], x: np.ndarray, t: np.ndarray) -> Callable[[], list[np.ndarray]]:
    loss = _loss_fn(net, x, t)

    def grad() -> list[np.ndarray]:
        loss()
        d = net[-1].backward(1.0)
        for layer in reversed(net[:-1]):
            d = layer.backward(d)
        return [g for layer in net for g in (getattr(layer, "dW", None), getattr(layer, "db", None))
                if g is not None]  # fmt: skip

    return grad


def net_spec(name: str) -> tuple[list[tuple[str, tuple[Any, ...]]], np.ndarray, np.ndarray]:
    """(layer spec, x, labels) of one of NETS, float64 with the book's weight scales."""
    rng = np.random.default_rng(0)

    def affine(d: int, m: int, scale: float) -> tuple[str, tuple[Any, ...]]:
        return ("Affine", (rng.standard_normal((d, m)) * scale, np.zeros(m)))

    if name == "twolayer_784x50x10_n3":
        spec = [affine(784, 50, 0.01), ("Relu", ()), affine(50, 10, 0.01), ("SoftmaxWithLoss", ())]
        x = rng.random((3, 784))
    elif name == "simpleconv_1x10x10_n1":
        conv = ("Convolution", (rng.standard_normal((30, 1, 5, 5)) * 0.01, np.zeros(30), 1, 0))
        spec = [conv, ("Relu", ()), ("Pooling", (2, 2, 2)), affine(30 * 3 * 3, 100, 0.01),
                ("Relu", ()), affine(100, 10, 0.01), ("SoftmaxWithLoss", ())]  # fmt: skip
        x = rng.random((1, 1, 10, 10))
    elif name == "bnmlp_784x100x100x10_n1":
        bn = ("BatchNormalization", (np.ones(100), np.zeros(100)))
        spec = [affine(784, 100, np.sqrt(2 / 784)), bn, ("Relu", ()),
                affine(100, 100, np.sqrt(2 / 100)), bn, ("Relu", ()),
                affine(100, 10, np.sqrt(2 / 100)), ("SoftmaxWithLoss", ())]  # fmt: skip
        x = rng.random((1, 784))
    else:
        raise ValueError(f"unknown net {name!r}")
    return spec, x, rng.integers(0, 10, x.shape[0])


def net_cases(name: str) -> list[Case]:
    spec, x, t = net_spec(name)
    nets = {"fastcnn": _net(fast_layers, spec), "reference": _net(ref_layers, spec)}
    _close(_loss_fn(nets["fastcnn"], x, t)(), _loss_fn(nets["reference"], x, t)(), name, 1e-9)
    for g_fast, g_ref in zip(_grad_fn(nets["fastcnn"], x, t)(),
                             _grad_fn(nets["reference"], x, t)()):  # fmt: skip
        _close(g_fast, g_ref, f"{name} gradient", 1e-9)
    return [
        Case(f"{name}_loss", {b: _loss_fn(n, x, t) for b, n in nets.items()}),
        Case(f"{name}_grad", {b: _grad_fn(n, x, t) for b, n in nets.items()}),
    ]


# A/A controls: these cases again with the reference on both sides, so the table shows the
# spread of a ratio whose true value is 1.0 (for calls of a few us, where the fast backend runs
# numpy's products: affine2's are below fastcnn.functional.AFFINE_KERNEL_MACS).
CONTROL_PREFIX = "control_"
CONTROLLED = "affine2"


def all_cases(batches: tuple[int, ...] = BATCHES, only: str = "") -> list[Case]:
    cases = [c for name in NETS for c in net_cases(name)]
    for n in batches:
        cases += deep_layer_cases(n)
    cases += [Case(CONTROL_PREFIX + c.name, {b: c.fns["reference"] for b in BACKENDS})
              for c in cases if CONTROLLED in c.name]  # fmt: skip
    return [c for c in cases if only in c.name]


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------

_CACHE: dict[str, Case] = {}


def _case(name: str) -> Case:
    if not _CACHE:
        _CACHE.update((c.name, c) for c in all_cases())
    return _CACHE[name]


def _case_names() -> list[str]:
    names = [f"{n}_{kind}" for n in NETS for kind in ("loss", "grad")]
    ref = DeepConvNet(backend="reference", seed=0)
    h = np.zeros((1, *ref.input_dim), dtype=np.float32)
    shapes = {}
    for name, layer in ref.layers.items():
        shapes[name] = h.shape[1:]
        h = layer.forward(h)
    shapes["SoftmaxWithLoss"] = h.shape[1:]
    for b in BATCHES:
        for layer in DEEP_LAYERS:
            label = f"deep_{layer.lower()}_{'x'.join(map(str, shapes[layer]))}_b{b}"
            names += [f"{label}_fwd", f"{label}_bwd"]
    return names


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", _case_names())
def test_small(benchmark, case, backend):
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark(_case(case).fns[backend])


# ---------------------------------------------------------------------------------------------
# The ratio table
# ---------------------------------------------------------------------------------------------


def time_cases(cases: list[Case], min_time: float) -> list[tuple[float, float]]:
    """(fast, reference) best times per case: two alternating blocks, each keeping its best."""
    out = []
    for case in cases:
        best = {b: float("inf") for b in BACKENDS}
        for _ in range(2):
            for b in BACKENDS:
                best[b] = min(best[b], best_time(case.fns[b], repeat=5, min_time=min_time))
        out.append((best["fastcnn"], best["reference"]))
    return out


SPIN = "import time\nend = time.monotonic() + {0}\nwhile time.monotonic() < end:\n    pass\n"


def start_load(seconds: float) -> subprocess.Popen[bytes]:
    """A child process that keeps one core busy for at most `seconds`."""
    return subprocess.Popen([sys.executable, "-c", SPIN.format(seconds)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batches 1 and 8 only, shorter timing")
    ap.add_argument("--idle-only", action="store_true", help="skip the loaded run")
    ap.add_argument("--only", default="", help="cases whose name contains this")
    args = ap.parse_args(argv)
    batches = (1, 8) if args.quick else BATCHES
    min_time = 0.005 if args.quick else 0.02
    cases = all_cases(batches, args.only)
    idle = time_cases(cases, min_time)
    loaded: list[tuple[float, float]] | None = None
    if not args.idle_only:
        load = start_load(seconds=60 + 4 * len(cases))
        try:
            loaded = time_cases(cases, min_time)
        finally:
            load.kill()
            load.wait()
    print(f"# fastcnn {fastcnn.__version__}, isa {fastcnn.get_isa()}, "
          f"{fastcnn.get_num_threads()} threads, numpy {np.__version__}; "
          "ratio = fast time / reference time (< 1: fastcnn faster)")  # fmt: skip
    header = ["case", "idle fast us", "ref us", "fast/ref"]
    if loaded is not None:
        header += ["loaded fast us", "ref us", "fast/ref"]
    rows = []
    for i, case in enumerate(cases):
        row = [case.name, f"{idle[i][0] * 1e6:.1f}", f"{idle[i][1] * 1e6:.1f}",
               f"{idle[i][0] / idle[i][1]:.2f}"]  # fmt: skip
        if loaded is not None:
            row += [f"{loaded[i][0] * 1e6:.1f}", f"{loaded[i][1] * 1e6:.1f}",
                    f"{loaded[i][0] / loaded[i][1]:.2f}"]  # fmt: skip
        rows.append(row)
    from fastcnn._bench import _table

    _table(header, rows, sys.stdout)
    control = [c.name.startswith(CONTROL_PREFIX) for c in cases]
    spread = f"{CONTROL_PREFIX}* (reference/reference) spread"
    for label, want in (("worst fast/ref", False), (spread, True)):
        ratios = [[r[0] / r[1] for r, is_control in zip(runs, control) if is_control == want]
                  for runs in (idle, loaded) if runs]  # fmt: skip
        if all(ratios):
            print(f"{label}: " + ", ".join(f"{min(r):.2f}-{max(r):.2f}" if want else f"{max(r):.2f}"
                                        for r in ratios))  # fmt: skip


if __name__ == "__main__":
    main()
