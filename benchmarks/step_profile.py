"""Where a DeepConvNet training step's time goes: each step of the model's chain (a fused
conv + ReLU, or conv + ReLU + max-pool, counts as one), forward and backward, the loss, and
the Adam update, timed inside real training steps (batch 100, float32), with the total of an
untimed step beside it.

  python benchmarks/step_profile.py [--steps 30] [--threads N] [--batch 100]

Each part's figure is its median over the timed steps (after warm-up); "rest" is the untimed
step's median minus the parts' sum: Python between the parts, and the timers themselves.
Convolutions also show which algorithm each pass ran.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np

import fastcnn
from fastcnn import models, optim


def _name(step: Any, layers: dict[str, Any]) -> str:
    inner = [getattr(step, a, None) for a in ("conv", "relu", "pool", "layer")]
    names = [n for n, layer in layers.items() if any(layer is s for s in inner if s is not None)]
    return "+".join(names)


def profile(steps: int, batch: int) -> tuple[dict[str, list[float]], list[float], dict[str, str]]:
    model = models.DeepConvNet(seed=0)
    adam = optim.Adam(lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.input_dim), dtype=np.float32)
    t = rng.integers(0, 10, batch)
    chain = model._chain
    times: dict[str, list[float]] = defaultdict(list)
    algorithms: dict[str, str] = {}

    def timed(key: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args)
            times[key].append(time.perf_counter() - t0)
            if "Conv" in key:
                ran = fastcnn.last_conv_algorithms()
                if key.endswith("fwd"):
                    algorithms[key] = str(ran["forward"])
                else:  # the first convolution computes no dx: args are (dout, need_dx)
                    dx = ran["backward_data"] if args[-1] else "no dx"
                    algorithms[key] = f"dx {dx}, dW {ran['backward_weights']}"
            return out

        return run

    originals = []
    for step in chain.steps:
        name = _name(step, model.layers)
        originals.append((step, step.forward, step.backward))
        step.forward = timed(f"{name} fwd", step.forward)
        step.backward = timed(f"{name} bwd", step.backward)
    last = model.last_layer
    last_fwd, last_bwd = last.forward, last.backward
    last.forward = timed("loss fwd", last.forward)
    last.backward = timed("loss bwd", last.backward)
    update = timed("adam", adam.update)

    def step_timed() -> None:
        _, grads = model.loss_and_gradient(x, t)
        update(model.params, grads)

    def step_plain() -> None:
        _, grads = model.loss_and_gradient(x, t)
        adam.update(model.params, grads)

    totals: list[float] = []
    for i in range(steps + 3):
        if i == 3:
            times.clear()
        step_timed()
    for step, fwd, bwd in originals:  # untimed steps, for the total
        step.forward, step.backward = fwd, bwd
    last.forward, last.backward = last_fwd, last_bwd
    for i in range(steps + 3):
        t0 = time.perf_counter()
        step_plain()
        if i >= 3:
            totals.append(time.perf_counter() - t0)
    return times, totals, algorithms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=100)
    args = p.parse_args(argv)
    if args.threads:
        fastcnn.set_num_threads(args.threads)
    times, totals, algorithms = profile(args.steps, args.batch)
    total = statistics.median(totals)
    rows = []
    parts = 0.0
    for key, ts in times.items():
        med = statistics.median(ts)
        parts += med
        rows.append([key, f"{med * 1e3:.3f}", f"{100 * med / total:.1f}", algorithms.get(key, "")])
    rows.sort(key=lambda r: -float(r[1]))
    rest = total - parts
    rows.append(["rest", f"{rest * 1e3:.3f}", f"{100 * rest / total:.1f}", ""])
    rows.append(["step (untimed)", f"{total * 1e3:.3f}", "100.0", ""])
    print(
        f"# fastcnn {fastcnn.__version__}, isa {fastcnn.get_isa()}, "
        f"cpu {fastcnn.cpu_info()['microarch']}, {fastcnn.get_num_threads()} threads, "
        f"batch {args.batch}, float32; medians of {args.steps} steps"
    )
    from common import print_table

    print_table(["part", "ms", "% of step", "algorithms"], rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    raise SystemExit(main())
