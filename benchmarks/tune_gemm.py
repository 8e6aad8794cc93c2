"""Rank GEMM cache blockings on this CPU: the numbers a new row of kMeasured would hold.

  python benchmarks/tune_gemm.py                       # default candidates, 5 rounds
  python benchmarks/tune_gemm.py --rounds 7 144,256,4096 1020,256,8192

Each candidate MC,KC,NC (or "modelled" / "measured", the blockings fastcnn picks itself) runs
in its own process with FASTCNN_GEMM_BLOCKING set, since the blocking is fixed at import. The
candidates take turns, round after round, so a load that comes and goes hits them all alike;
each keeps its best time per shape. The shapes are the squares of bench_gemm.py and
DeepConvNet's im2col products (from a forward pass), and a whole DeepConvNet training step,
which is what the blocking is for. The table gives each candidate's time relative to the
first one (< 1: faster), per shape and as a geometric mean.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

DEFAULT = [
    "measured",
    "modelled",
    "144,256,4096",
    "240,256,4096",
    "480,256,4096",
    "1020,256,4096",
    "144,384,4096",
    "480,384,4096",
    "240,192,4096",
]

_CHILD = r"""
import json, sys, time
sys.path.insert(0, {here!r})
import numpy as np
import fastcnn
import bench_gemm
from fastcnn._bench import best_time

out = {{"config": fastcnn.gemm_configs()["float32"][0]}}
times = {{}}
for name, m, n, k, ta, tb in bench_gemm.SHAPES:
    if name == "square256":
        continue
    a, b = bench_gemm._operands(m, n, k, ta, tb)
    c = np.empty((m, n), np.float32)
    times[name] = best_time(lambda: fastcnn.gemm(a, b, trans_a=ta, trans_b=tb, out=c), repeat=5)
if {step}:
    from fastcnn._bench import training_step
    times["deepconvnet_step"] = best_time(training_step("fastcnn"), repeat=5, min_time=0.2)
out["times"] = times
print(json.dumps(out))
"""


def run_candidate(blocking: str, step: bool) -> dict:
    env = {**os.environ, "FASTCNN_GEMM_BLOCKING": blocking}
    here = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.format(here=here, step=step)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tune_gemm: candidate {blocking!r} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("candidates", nargs="*", default=DEFAULT, help="MC,KC,NC, modelled, measured")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-step", action="store_true", help="leave out the DeepConvNet step")
    args = p.parse_args(argv)

    best: dict[str, dict[str, float]] = {}
    shown: dict[str, str] = {}
    for r in range(args.rounds):
        for cand in args.candidates:
            res = run_candidate(cand, not args.no_step)
            cfg = res["config"]
            shown[cand] = f"{cfg['mc']},{cfg['kc']},{cfg['nc']}"
            mine = best.setdefault(cand, {})
            for shape, t in res["times"].items():
                mine[shape] = min(t, mine.get(shape, math.inf))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    import fastcnn

    first = args.candidates[0]
    shapes = list(best[first])
    print(
        f"# fastcnn {fastcnn.__version__}, isa={fastcnn.get_isa()}, "
        f"threads={fastcnn.get_num_threads()}, cpu={fastcnn.cpu_info()['microarch']}; "
        f"time relative to {first} ({shown[first]}), best of {args.rounds} rounds"
    )
    header = ["shape", f"{first} ms"] + [f"{c} ({shown[c]})" for c in args.candidates[1:]]
    rows = []
    for shape in shapes:
        base = best[first][shape]
        rows.append(
            [shape, f"{base * 1e3:.2f}"]
            + [f"{best[c][shape] / base:.3f}" for c in args.candidates[1:]]
        )
    geo = ["geomean", ""]
    for c in args.candidates[1:]:
        ratios = [best[c][s] / best[first][s] for s in shapes]
        geo.append(f"{math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
    rows.append(geo)
    from common import print_table

    print_table(header, rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
