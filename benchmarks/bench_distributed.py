"""Data-parallel throughput of a DeepConvNet training step on one machine: 1 rank x 1 thread,
1 rank x T threads and R ranks x 1 thread (mpirun), with the time each step spends in the sum
over ranks and the bytes each rank moves for it (docs/distributed.md, "Measured scaling").

  python benchmarks/bench_distributed.py [--rounds 3] [--steps 60] [--batch 100] [--ranks 2]

The configurations take turns, round after round, each in fresh processes, so a load that
comes and goes hits them alike; the table gives each one's median step per round and the best
round. The step is the Trainer's: this rank's rows of the global batch (forward, backward),
the fixed-order sum of the loss and the gradients, and Adam. "in the sum" includes waiting for
the slowest rank. Needs mpi4py and mpirun (pip install 'fastcnn[mpi]').
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
import numpy as np
import fastcnn
from fastcnn import distributed, models, optim
from fastcnn.datasets import DataLoader
from fastcnn.train._net import as_net
from fastcnn.train._parallel import DataParallelNet
from fastcnn.train._stop import StopFlag

steps, batch, threads = (int(a) for a in sys.argv[1:4])
fastcnn.set_num_threads(threads)
comm = distributed.Communicator() if distributed.launched() else None
model = models.DeepConvNet(seed=0)
net = as_net(model)
stop = StopFlag()
if comm is not None:
    net = DataParallelNet(net, comm, lambda: stop)
    spent = [0.0]
    plain = comm.allreduce_sum
    def timed(x, what="a sum"):
        t0 = time.perf_counter()
        out = plain(x, what)
        spent[0] += time.perf_counter() - t0
        return out
    comm.allreduce_sum = timed
rng = np.random.default_rng(0)
x = rng.random((batch * 8, 1, 28, 28), dtype=np.float32)
t = rng.integers(0, 10, batch * 8)
shard = None if comm is None else (comm.rank, comm.size)
adam = optim.Adam(lr=1e-3)
times, warm = [], 10
while len(times) < steps + warm:
    loader = DataLoader(x, t, batch, shard=shard)
    for i, (xb, tb) in enumerate(loader):
        if comm is not None:
            comm.barrier()  # every step starts together: the sum's time is the step's own
            if len(times) == warm:
                spent[0], comm.bytes_reduced = 0.0, 0
        t0 = time.perf_counter()
        loss, grads, _ = net.step(xb, tb, loader.rows(i))
        adam.update(model.params, grads)
        times.append(time.perf_counter() - t0)
times = times[warm:]
if comm is None or comm.is_root:
    out = {"step_s": float(np.median(times))}
    if comm is not None:
        out |= {"sum_s": spent[0] / len(times), "bytes": comm.bytes_reduced / len(times)}
    print(json.dumps(out))
"""


def _mpirun() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    found = here if os.path.exists(here) else shutil.which("mpirun")
    if found is None:
        sys.exit("bench_distributed: no mpirun (pip install 'fastcnn[mpi]')")
    return found


def _run(ranks: int, threads: int, steps: int, batch: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", _CHILD, str(steps), str(batch), str(threads)]
    if ranks > 1:
        cmd = [_mpirun(), "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        sys.exit(f"bench_distributed: {ranks} x {threads} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=100, help="the global batch")
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    configs = [(1, 1), (1, cores), (args.ranks, max(1, cores // args.ranks))]
    results: dict[tuple[int, int], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for ranks, threads in configs:
            results[ranks, threads].append(_run(ranks, threads, args.steps, args.batch))
    print(f"DeepConvNet float32, global batch {args.batch}, {time.strftime('%Y-%m-%d')}; "
          f"median step of {args.steps} per round, best of {args.rounds} rounds")  # fmt: skip
    print(f"{'configuration':<22}{'step ms':>9}{'rounds ms':>22}{'images/s':>10}"
          f"{'sum ms':>8}{'bytes/step':>12}")  # fmt: skip
    for (ranks, threads), runs in results.items():
        best = min(runs, key=lambda r: r["step_s"])
        spread = " ".join(f"{1e3 * r['step_s']:.1f}" for r in runs)
        sums = f"{1e3 * best['sum_s']:.2f}" if "sum_s" in best else "-"
        moved = f"{best['bytes']:,.0f}" if "bytes" in best else "-"
        print(f"{f'{ranks} rank x {threads} thread':<22}{1e3 * best['step_s']:>9.1f}"
              f"{spread:>22}{args.batch / best['step_s']:>10.0f}{sums:>8}{moved:>12}")  # fmt: skip


if __name__ == "__main__":
    main()
