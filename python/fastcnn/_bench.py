"""``fastcnn bench``: DeepConvNet's layers and its whole training step, fastcnn vs the numpy
reference vs its peers when they are importable (PyTorch's CPU path for the layers; PyTorch
eager, PyTorch channels_last and TensorFlow for the step), batch 100, float32, with each
convolution pass's share of the measured FMA peak.

The procedure: every case is checked against the reference before it is timed; times are the
best of N rounds (each round long enough for the clock), all backends timed in the same
process, one after the other, so the ratios come from one run; the peers use fastcnn's thread
count. Peak memory is measured per backend in a fresh subprocess as the growth of VmHWM
(/proc/self/status) over a few training steps, after the same start for every backend (the
model built, one inference forward of the batch); ``isa`` repeats the step comparison in a
subprocess with every framework limited to that ISA (_bench_isa). This module is the one
implementation; benchmarks/bench_layers.py is a pytest-benchmark front-end over it. Linux only
for memory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, TextIO, cast

import numpy as np

from fastcnn import _bench_isa, _malloc
from fastcnn._bench_peak import FLOPS_RULE, fma_peak, layer_flops
from fastcnn._bench_peers import PEERS, import_frameworks, peer_step

BATCH = 100


class ConvShape(NamedTuple):
    """One convolution as a network runs it: input channels, filters, input height and width,
    kernel size, stride, padding."""

    c: int
    k: int
    h: int
    w: int
    size: int
    stride: int
    pad: int


def network_shapes(model: Any = None) -> tuple[dict[str, ConvShape], dict[str, tuple]]:
    """The convolutions and pools of ``model`` (default: DeepConvNet) as a forward pass runs
    them, in order: ({"conv1_1to16_28": ConvShape, ...}, {"pool1_16x28x28": (C, H, W, size,
    stride), ...}). Taken from each layer's input in an inference pass of one image through the
    model's layers one by one, not from a table kept by hand (DeepConvNet's conv4 pads by 2,
    so conv5 and conv6 run on 8x8)."""
    from fastcnn import layers as fast_layers
    from fastcnn import models
    from fastcnn.models import _blocks

    model = models.DeepConvNet() if model is None else model
    x: Any = np.zeros((1, *model.input_dim), dtype=model.dtype)
    convs: dict[str, ConvShape] = {}
    pools: dict[str, tuple] = {}
    for layer in model.layers.values():
        if isinstance(layer, fast_layers.Convolution):
            _, c, h, w = x.shape
            k, _, size, _ = layer.W.shape
            stride: Any = layer.stride
            convs[f"conv{len(convs) + 1}_{c}to{k}_{h}"] = ConvShape(
                c, k, h, w, size, int(stride), int(cast(Any, layer.pad))
            )
        elif isinstance(layer, fast_layers.Pooling):
            _, c, h, w = x.shape
            pools[f"pool{len(pools) + 1}_{c}x{h}x{w}"] = (c, h, w, layer.pool_h, layer.stride)
        step = _blocks._Step(layer)
        x = step.forward(x, False)
        step.release()
    return convs, pools


CONVS, POOLS = network_shapes()
POOL = next(iter(POOLS))  # the first pool, the largest
POOL_SHAPE = (BATCH, *POOLS[POOL][:3])
CASES = (*CONVS, POOL)
BACKENDS = ("fastcnn", "reference", "torch")  # the layer table's
STEP_BACKENDS = ("fastcnn", "reference", *PEERS)  # the training-step table's
Pair = tuple[Callable[[], Any], Callable[[], Any]]


def best_time(
    fn: Callable[[], object], repeat: int = 7, min_time: float = 0.05, warmup: bool = True
) -> float:
    """Best wall time of one call over ``repeat`` rounds, each round calling ``fn`` enough
    times to last ``min_time``, after one warm-up call unless ``warmup`` is false (the caller
    already ran it, e.g. to check its result). repeat=1, min_time=0: one timed call."""
    if warmup:
        fn()
    number = 1
    if min_time > 0:
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            if time.perf_counter() - t0 >= min_time or number >= 1 << 16:
                break
            number *= 2
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


# ---------------------------------------------------------------------------------------------
# Single layers: (forward, backward) callables per backend, checked before timing.
# ---------------------------------------------------------------------------------------------


def _check(cases: dict[str, Pair], what: str) -> None:
    for i, direction in enumerate(("forward", "backward")):
        got, want = cases["fastcnn"][i](), cases["reference"][i]()
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(np.asarray(got) - want).max()) / scale
        if not err <= 2e-4:
            raise AssertionError(f"bench: {what} {direction}: fastcnn differs from the reference "
                                 f"by {err:.2e} (relative); not timing a wrong result")  # fmt: skip


def _torch_pair(torch: Any, module: Any, x: np.ndarray, reference: Pair, what: str) -> Pair:
    """torch forward (no grad) and backward alone: the graph of one forward is kept
    (retain_graph) and each call runs its backward again, dx and the parameters' gradients
    (set to None first, as an optimizer's zero_grad does, so nothing accumulates). Subtracting
    a forward from a forward + backward read 0.00 ms whenever noise made the difference
    negative."""
    xt = torch.from_numpy(x).requires_grad_()

    def fwd() -> Any:
        with torch.no_grad():
            return module(xt)

    y_ref = reference[0]()
    dy = torch.from_numpy(np.random.default_rng(1).standard_normal(y_ref.shape, dtype=np.float32))
    got = fwd().numpy()
    if not np.allclose(got, y_ref, atol=2e-4, rtol=2e-4):
        raise AssertionError(f"bench: {what}: torch's forward differs from the reference")
    out = module(xt)

    def bwd() -> Any:
        xt.grad = None
        module.zero_grad(set_to_none=True)
        out.backward(dy, retain_graph=True)
        return xt.grad

    return fwd, bwd


def conv_case(name: str, torch: Any = None) -> dict[str, Pair]:
    """One DeepConvNet convolution as fastcnn and reference layers (and a torch Conv2d)."""
    from fastcnn import layers as fast_layers
    from fastcnn.reference import layers as ref_layers

    s = CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, s.c, s.h, s.w), dtype=np.float32)
    w = rng.standard_normal((s.k, s.c, s.size, s.size)) * np.sqrt(2 / (s.size**2 * s.c))
    w = w.astype(np.float32)
    b = rng.standard_normal(s.k).astype(np.float32)
    cases: dict[str, Pair] = {}
    for backend, mod in (("fastcnn", fast_layers), ("reference", ref_layers)):
        layer = mod.Convolution(w, b, s.stride, s.pad)
        dy = np.random.default_rng(1).standard_normal(layer.forward(x).shape, dtype=np.float32)
        cases[backend] = (partial(layer.forward, x), partial(layer.backward, dy))
    _check(cases, name)
    if torch is not None:
        conv = torch.nn.Conv2d(s.c, s.k, s.size, s.stride, s.pad)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
        cases["torch"] = _torch_pair(torch, conv, x, cases["reference"], name)
    return cases


def pool_case(torch: Any = None) -> dict[str, Pair]:
    """DeepConvNet's first max pool (16x28x28 at batch 100), the largest."""
    from fastcnn import layers as fast_layers
    from fastcnn.reference import layers as ref_layers

    x = np.random.default_rng(2).standard_normal(POOL_SHAPE, dtype=np.float32)
    cases: dict[str, Pair] = {}
    for backend, mod in (("fastcnn", fast_layers), ("reference", ref_layers)):
        _, _, _, size, stride = POOLS[POOL]
        layer = mod.Pooling(size, size, stride)
        dy = np.random.default_rng(1).standard_normal(layer.forward(x).shape, dtype=np.float32)
        cases[backend] = (partial(layer.forward, x), partial(layer.backward, dy))
    _check(cases, POOL)
    if torch is not None:
        pool = torch.nn.MaxPool2d(POOLS[POOL][3], POOLS[POOL][4])
        cases["torch"] = _torch_pair(torch, pool, x, cases["reference"], POOL)
    return cases


_PASSES = ("forward", "backward_data", "backward_weights")
_SHORT = {"winograd_f4x4_3x3": "wino4", "winograd_f2x2_3x3": "wino", "direct_columns": "cols",
          "direct_pixels": "pixels", "col2im_gemm": "col2im"}  # fmt: skip


def _algorithms_of(pair: Pair) -> dict[str, str | None]:
    """Which convolution algorithm each pass of fastcnn's layer ran (one call of each)."""
    import fastcnn

    pair[0]()
    pair[1]()
    record = fastcnn.last_conv_algorithms()
    return {k: record[k] for k in _PASSES}


def layer_case(name: str, torch: Any = None) -> dict[str, Pair]:
    return pool_case(torch) if name == POOL else conv_case(name, torch)


# ---------------------------------------------------------------------------------------------
# The whole DeepConvNet training step: fastcnn.models.DeepConvNet + fastcnn.optim.Adam on each
# backend, and the same network with the same weights in each peer (_bench_peers).
# ---------------------------------------------------------------------------------------------


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)


def training_step(
    backend: str, frameworks: dict | None = None, *, check: bool = True, warm_up: bool = False
) -> Callable[[], float] | None:
    """A callable doing one DeepConvNet training step (forward, backward, Adam update) on a fixed
    batch of 100 for ``backend`` (one of STEP_BACKENDS), or None for a peer whose framework is
    not in ``frameworks`` (_bench_peers.import_frameworks). Every backend starts from the same
    weights (DeepConvNet, seed 0). check: first compare a peer's logits with those of the numpy
    reference layers. warm_up: first run one inference forward of the batch on the backend
    itself (what the memory measurement does for every backend alike)."""
    from fastcnn import models, optim

    x, t = _batch()
    if backend in PEERS:
        model = models.DeepConvNet(backend="reference", seed=0)
        return peer_step(backend, frameworks or {}, model, x, t, check=check, warm_up=warm_up)
    be = {"fastcnn": "fast", "reference": "reference"}[backend]
    model = models.DeepConvNet(backend=be, seed=0)
    adam = optim.Adam(lr=1e-3, backend=be)
    if warm_up:
        model.predict(x)

    def step() -> float:
        loss, grads = model.loss_and_gradient(x, t)
        adam.update(model.params, grads)
        return loss

    return step


def check_training_step() -> float:
    """Run the first training step on both backends (same seed: same weights and dropout
    masks) and check that losses and gradients agree; returns the loss. (Not the updated
    weights: Adam's first step moves every weight by +-lr whatever the gradient's size, so a
    gradient within rounding of 0 may take either sign on the two backends. And the gradients
    below a max pool only to 0.5 %: where ReLU outputs tie at 0 inside a pooling window, float32
    rounding of the input decides which element wins, so a few gradient entries move.)"""
    steps = {}
    for backend in ("fastcnn", "reference"):
        from fastcnn import models, optim

        be = {"fastcnn": "fast", "reference": "reference"}[backend]
        model = models.DeepConvNet(backend=be, seed=0)
        x, t = _batch()
        loss, grads = model.loss_and_gradient(x, t)
        grads = {k: g.copy() for k, g in grads.items()}
        optim.Adam(lr=1e-3, backend=be).update(model.params, grads)
        steps[backend] = (loss, grads)
    (lf, gf), (lr_, gr) = steps["fastcnn"], steps["reference"]
    if not abs(lf - lr_) <= 1e-4 * max(1.0, abs(lr_)):
        raise AssertionError(f"bench: training-step loss fastcnn {lf} vs reference {lr_}")
    for key in gr:
        scale = max(float(np.abs(gr[key]).max()), 1e-30)
        if not np.allclose(gf[key], gr[key], atol=5e-3 * scale, rtol=0):
            raise AssertionError(f"bench: training step: gradient {key} differs")
    return lf


# ---------------------------------------------------------------------------------------------
# Peak memory in a fresh process
# ---------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _memory_child(backend: str, steps: int, threads: int) -> None:
    import fastcnn

    fastcnn.set_num_threads(threads)
    framework = PEERS.get(backend)
    frameworks, _ = import_frameworks(framework == "torch", framework == "tensorflow")
    # Every backend does the same before the baseline: build the model, run one inference
    # forward of the batch on itself. Not a peer's logits check (run where the step is timed):
    # it also runs the numpy reference layers' forward, whose tens of MiB of freed arrays
    # torch's step then reused, so its growth read 10-31 MiB, against 41-74 MiB after its own
    # inference forward alone.
    step = training_step(backend, frameworks, check=False, warm_up=True)
    assert step is not None
    before = _status_kib("VmHWM")
    rss_before = _status_kib("VmRSS")
    for _ in range(steps):
        step()
    after = _status_kib("VmHWM")
    print(json.dumps({"before_kib": before, "rss_before_kib": rss_before, "peak_kib": after,
                      "growth_kib": after - before}))  # fmt: skip


def peak_memory(backend: str, steps: int = 3) -> dict[str, int] | None:
    """In a fresh Python process (VmHWM is per process and survives nothing), build the
    DeepConvNet training step of ``backend``, run one inference forward of the batch, then
    ``steps`` steps: returns the high-water mark before the first step, after the last, and the
    growth (KiB). None: the peer's framework is missing, or no /proc (not Linux)."""
    if not os.path.exists("/proc/self/status"):
        return None
    if backend in PEERS and importlib.util.find_spec(PEERS[backend]) is None:
        return None
    import fastcnn

    code = (
        "from fastcnn import _bench; "
        f"_bench._memory_child({backend!r}, {int(steps)}, {fastcnn.get_num_threads()})"
    )
    env = {**os.environ, **_malloc.child_environment()}  # the same malloc policy as here
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench: the memory process for {backend} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)), file=out)
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)), file=out, flush=True)


def _percent(flops: float, seconds: float, gflops: float) -> str:
    return f"{100 * flops / seconds / (gflops * 1e9):.0f}" if flops > 0 else "-"


def main(
    quick: bool = False,
    torch: bool = True,
    memory: bool = True,
    inference: bool = True,
    tensorflow: bool = True,
    isa: str | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Print the layer table (with each convolution pass's % of the measured FMA peak), the
    training-step table (fastcnn, the reference and the peers installed), with ``isa`` the
    step table of every framework limited to that ISA beside it (_bench_isa), and
    (``inference``) the inference table; return the measurements (seconds, GFLOP/s)."""
    import fastcnn

    if isa is not None:
        _bench_isa.check_isa(isa)  # before anything runs
    out = out if out is not None else sys.stdout
    frameworks, notes = import_frameworks(torch, tensorflow)
    tmod = frameworks.get("torch")
    versions = [f"{name} {mod.__version__}" for name, mod in frameworks.items()]
    versions += [f"{name} {why}" for name, why in notes.items()]
    print(
        f"# fastcnn {fastcnn.__version__}, isa {fastcnn.get_isa()}, "
        f"winograd {'on' if fastcnn.get_winograd() else 'off'}, "
        f"{fastcnn.get_num_threads()} threads, batch {BATCH}, float32; "
        + "; ".join(versions)
        + ("; --quick" if quick else ""),
        file=out,
    )
    kept = _malloc.kept_limit_mib()
    policy = (f"malloc keeps up to {kept} MiB of freed memory (fastcnn.keep_freed_memory), for "
              "every backend" if kept is not None else "malloc at its defaults")  # fmt: skip
    print(f"# times are best-of-N wall clock; ratios > 1 mean fastcnn is faster; {policy}",
          file=out)  # fmt: skip
    results: dict[str, Any] = {}
    results["layers"], results["limit"], peak = _layer_table(tmod, quick, out)
    results["peak"] = peak
    results["step"], results["memory"] = _step_table(frameworks, notes, quick, memory, out)
    if isa is not None:
        results["isa"] = _isa_table(isa, results["step"], peak, quick, torch, tensorflow, out)
    if inference:
        results["inference"] = _inference_table(tmod, quick, out)
    return results


def _layer_table(
    tmod: Any, quick: bool, out: TextIO
) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """The per-layer table; returns ({layer: its times, algorithms and useful FLOPs}, the six
    convolutions' limit: useful FLOPs, the time they take at the peak and the time measured,
    the FMA peak: the better of two measurements, before and after the layers are timed)."""
    fast_reps, fast_min = (3, 0.02) if quick else (9, 0.05)
    ref_reps, ref_min = (1, 0.0) if quick else (3, 0.0)
    # Each backend is timed as a block (all layers, then the next backend) with a pause in
    # between: fastcnn, numpy's BLAS and torch each keep a thread pool whose
    # threads spin for a while after a parallel region, and interleaving the backends call by
    # call would make each one pay for the others' spinning on a 2-core machine. Without
    # --quick the fast backends' blocks run twice, alternating, and each case keeps its best
    # time, so a slow spell of the shared machine does not land on one backend alone.
    cases = {name: layer_case(name, tmod) for name in CASES}
    algorithms = {name: _algorithms_of(cases[name]["fastcnn"]) for name in CONVS}
    flops = {name: layer_flops(CONVS[name], BATCH, algorithms[name]) for name in CONVS}
    peak = fma_peak(quick=quick)
    t: dict[tuple[str, str, str], float] = {}
    rounds = 1 if quick else 2
    for rnd in range(rounds):
        for backend in BACKENDS:
            if (backend == "torch" and tmod is None) or (backend == "reference" and rnd > 0):
                continue
            time.sleep(0.3)
            reps, min_time = (
                (ref_reps, ref_min) if backend == "reference" else (fast_reps, fast_min)
            )
            for name in CASES:
                for d, fn in zip("fb", cases[name][backend]):
                    # --quick: the reference's check call was its warm-up; time one more call.
                    warm = not (quick and backend == "reference")
                    sec = best_time(fn, repeat=reps, min_time=min_time, warmup=warm)
                    t[name, backend, d] = min(t.get((name, backend, d), sec), sec)
    peak = max(peak, fma_peak(quick=quick), key=lambda p: p["gflops"])
    print(f"\n# FMA peak {peak['gflops']:.0f} GFLOP/s: {peak['isa']} on {peak['threads']} "
          f"threads, measured ({peak['chains']} independent multiply-add chains of "
          f"{peak['lanes']} floats per thread, on registers; the better of two runs, before and "
          "after the layers were timed)", file=out)  # fmt: skip
    print(f"# %peak = useful FLOPs / time / FMA peak; {FLOPS_RULE}", file=out)
    layers: dict[str, Any] = {}
    rows = []
    for name in CASES:
        layers[name] = {f"{b}_{d}": v for (n, b, d), v in t.items() if n == name}
        if name in algorithms:
            layers[name]["algorithms"] = algorithms[name]
            layers[name]["flops_f"], layers[name]["flops_b"] = flops[name]
        row = [name]
        for i, d in enumerate("fb"):
            fast = t[name, "fastcnn", d]
            ref = t[name, "reference", d]
            row += [f"{fast * 1e3:.2f}", f"{ref * 1e3:.1f}", f"{ref / fast:.1f}"]
            if tmod is not None:
                tt = t[name, "torch", d]
                row += [f"{tt * 1e3:.2f}", f"{tt / fast:.2f}"]
            row.append(_percent(flops[name][i], fast, peak["gflops"]) if name in flops else "-")
        a = algorithms.get(name)
        names = [a[k] or "-" for k in _PASSES] if a else []
        row.append(" / ".join(_SHORT.get(n, n) for n in names) if names else "-")
        rows.append(row)
    header = ["layer"]
    for d in ("fwd", "bwd"):
        header += [f"{d} fast ms", "ref ms", "ref/fast"]
        if tmod is not None:
            header += ["torch ms", "torch/fast"]
        header.append("%peak")
    header.append("fwd / dx / dW algorithm")
    _table(header, rows, out)
    print(f"  ({', '.join(f'{v} = {k}' for k, v in _SHORT.items())})", file=out)
    useful = sum(f + b for f, b in flops.values())
    measured = sum(t[name, "fastcnn", d] for name in CONVS for d in "fb")
    at_peak = useful / (peak["gflops"] * 1e9)
    print(f"  the {len(CONVS)} convolutions, forward + backward: {useful / 1e9:.2f} GFLOP useful "
          f"in the algorithms used, {at_peak * 1e3:.2f} ms at the FMA peak (the limit); measured "
          f"{measured * 1e3:.2f} ms = {measured / at_peak:.2f}x the limit", file=out)  # fmt: skip
    return layers, {"flops": useful, "limit_s": at_peak, "measured_s": measured}, peak


def time_steps(step_fns: dict[str, Callable[[], float] | None], quick: bool) -> dict[str, float]:
    """Best seconds per training step of each backend that has a step (None: left out), in the
    order given. Each is timed as a block with a pause before it; without ``quick`` the blocks
    run twice, alternating, each keeping its best (the reference once)."""
    fast_reps, ref_reps, rounds = (3, 1, 1) if quick else (9, 3, 2)
    steps: dict[str, float] = {}
    for rnd in range(rounds):
        for backend, step in step_fns.items():
            if step is None or (backend == "reference" and rnd > 0):
                continue
            time.sleep(0.3)
            if backend == "reference":
                sec = best_time(step, repeat=ref_reps, min_time=0.0, warmup=not quick)
            else:
                sec = best_time(step, repeat=fast_reps, min_time=0.1 if quick else 0.3)
            steps[backend] = min(steps.get(backend, sec), sec)
    return steps


def torch_best(steps: dict[str, float]) -> str | None:
    """The fastest of the torch configurations in ``steps`` (None: torch did not run)."""
    timed = [name for name in PEERS if PEERS[name] == "torch" and name in steps]
    return min(timed, key=steps.__getitem__) if timed else None


def _versus(steps: dict[str, float]) -> str:
    """fastcnn's step time as a fraction of torch's best and of TensorFlow's, as a line."""
    parts = []
    best = torch_best(steps)
    if best is not None:
        parts.append(f"{steps['fastcnn'] / steps[best]:.2f}x torch's best ({best})")
    if "tensorflow" in steps:
        parts.append(f"{steps['fastcnn'] / steps['tensorflow']:.2f}x tensorflow's")
    return "fastcnn's step takes " + ", ".join(parts) if parts else ""


def _step_table(
    frameworks: dict[str, Any], notes: dict[str, str], quick: bool, memory: bool, out: TextIO
) -> tuple[dict[str, float], dict[str, dict[str, int] | None]]:
    """The training-step table: fastcnn, the reference and each peer installed, with time
    ratios to fastcnn and to torch's best configuration, and peak memory; returns (seconds per
    step, memory per backend)."""
    check_training_step()
    steps = time_steps({b: training_step(b, frameworks) for b in STEP_BACKENDS}, quick)
    mem: dict[str, dict[str, int] | None] = {}
    for backend in steps:
        mem[backend] = peak_memory(backend, steps=1 if quick else 3) if memory else None
    best = torch_best(steps)
    rows = []
    for backend, sec in steps.items():
        m = mem[backend]
        row = [backend, f"{sec * 1e3:.1f}", f"{sec / steps['fastcnn']:.2f}"]
        if best is not None:
            row.append(f"{sec / steps[best]:.2f}")
        row += [f"{BATCH / sec:.0f}", f"{m['growth_kib'] / 1024:.0f}" if m else "-",
                f"{m['peak_kib'] / 1024:.0f}" if m else "-"]  # fmt: skip
        rows.append(row)
    print(
        "\nDeepConvNet training step (forward, backward, Adam), batch 100, the same weights on "
        "every backend"
        + (", peak memory from a fresh process per backend" if memory else "")
        + ":",
        file=out,
    )
    header = ["backend", "ms/step", "time/fastcnn"]
    header += ["time/torch best"] if best is not None else []
    header += ["images/s", "step peak growth MiB", "peak MiB"]
    _table(header, rows, out)
    versus = _versus(steps)
    if versus:
        print(f"  {versus}", file=out)
    for peer, framework in PEERS.items():
        if framework in notes:
            print(f"  {peer}: left out, {framework} {notes[framework]}", file=out)
    return steps, mem


def _isa_table(
    isa: str,
    steps: dict[str, float],
    peak: dict[str, Any],
    quick: bool,
    torch: bool,
    tensorflow: bool,
    out: TextIO,
) -> dict[str, Any]:
    """The training step with every framework limited to ``isa`` (a subprocess), beside this
    process's (default-ISA) step times; returns the subprocess's measurements."""
    import fastcnn

    pair = _bench_isa.run_isa_steps(isa, quick=quick, torch=torch, tensorflow=tensorflow)
    here, there = fastcnn.get_isa(), pair["isa"]
    env = " ".join(f"{k}={v}" for k, v in _bench_isa.ISA_ENVIRONMENT[isa].items())
    print(f"\nDeepConvNet training step with every framework limited to {isa} (a process with "
          f"{env}), beside this one's ({here}):", file=out)  # fmt: skip
    best_here, best_there = torch_best(steps), torch_best(pair["steps"])
    rows = []
    for backend in (b for b in STEP_BACKENDS if b in pair["steps"]):
        row = [backend]
        for st, best in ((steps, best_here), (pair["steps"], best_there)):
            sec = st.get(backend)
            row.append(f"{sec * 1e3:.1f}" if sec is not None else "-")
            if best is not None:
                row.append(f"{sec / st[best]:.2f}" if sec is not None else "-")
        rows.append(row)
    header = ["backend"]
    for name, best in ((here, best_here), (there, best_there)):
        header.append(f"{name} ms/step")
        header += ["time/torch best"] if best is not None else []
    _table(header, rows, out)
    versus = _versus(pair["steps"])
    if versus:
        print(f"  {there}: {versus}", file=out)
    print(f"  FMA peak, measured: {here} {peak['gflops']:.0f} GFLOP/s, {there} "
          f"{pair['peak']['gflops']:.0f} GFLOP/s", file=out)  # fmt: skip
    if pair.get("torch_capability"):
        print(f"  torch's CPU capability in that process: {pair['torch_capability']}", file=out)
    if "tensorflow" in pair["steps"]:
        print("  (tensorflow: ONEDNN_MAX_CPU_ISA limits its oneDNN kernels; its Eigen kernels "
              "run as its build compiled them)", file=out)  # fmt: skip
    return pair


def _inference_table(torch: Any, quick: bool, out: TextIO) -> dict[str, dict[int, float]]:
    from fastcnn import _bench_inference as inf

    runs, versions = inf.inference_runs(torch)
    time.sleep(0.3)
    t = inf.time_inference(runs, best_time, quick)
    big, one = inf.BATCHES
    rows = []
    for name, sec in t.items():
        rows.append(
            [
                name,
                versions[name],
                f"{sec[big] * 1e3:.2f}",
                f"{big / sec[big]:.0f}",
                f"{sec[big] / t['fastcnn'][big]:.2f}",
                f"{sec[one] * 1e6:.0f}",
                f"{sec[one] / t['fastcnn'][one]:.2f}",
            ]
        )
    print(
        f"\nDeepConvNet inference (predict: logits), batch {big} and batch {one}; every runtime's "
        "logits checked against fastcnn's (runtimes not installed are left out):",
        file=out,
    )
    header = ["runtime", "version", f"b{big} ms", "images/s", "time/fastcnn", f"b{one} us",
              "time/fastcnn"]  # fmt: skip
    _table(header, rows, out)
    return t
