"""Data-parallel training (fastcnn.distributed): the pieces in one process (shards, dropout
offsets, the loader), then real runs under ``mpirun`` with 2 and 3 ranks: the same losses as
one process, resume with another number of ranks, a rank killed or hung, ranks that disagree.

The mpirun tests need mpi4py and an MPI runtime (the test extra installs both). Without them
they skip, unless FASTCNN_REQUIRE_MPI=1 (set by .ci/run): there a missing runtime fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastcnn import distributed
from fastcnn import functional as fast
from fastcnn.datasets import Augment, DataLoader, shard_rows
from fastcnn.reference import functional as ref


def _mpirun() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    here = Path(sys.executable).parent / "mpirun"
    return str(here) if here.exists() else shutil.which("mpirun")


MPIRUN = _mpirun()
if MPIRUN is None and os.environ.get("FASTCNN_REQUIRE_MPI", "") == "1":
    raise RuntimeError("FASTCNN_REQUIRE_MPI=1 but mpi4py or mpirun is missing")
needs_mpi = pytest.mark.skipif(MPIRUN is None, reason="mpi4py or mpirun is not installed")


# -- one process --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 101])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_cover_every_row_once(n, size):
    bounds = [shard_rows(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, hi), (lo, _) in zip(bounds, bounds[1:]):
        assert hi == lo
    lengths = [hi - lo for lo, hi in bounds]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


@pytest.mark.parametrize("F", [fast, ref])
def test_dropout_offset_draws_the_rows_of_the_whole_mask(F):
    whole = F.dropout_mask((10, 7, 3), 0.4, 99)
    for lo, hi in [(0, 4), (4, 7), (7, 10), (3, 3)]:
        part = F.dropout_mask((hi - lo, 7, 3), 0.4, 99, offset=lo * 21)
        np.testing.assert_array_equal(part, whole[lo:hi])
        x = np.random.default_rng(lo).standard_normal((hi - lo, 7, 3))
        y, mask = F.dropout_forward(x, 0.4, True, seed=99, offset=lo * 21)
        np.testing.assert_array_equal(mask, whole[lo:hi])
    with pytest.raises(ValueError, match="offset"):
        F.dropout_mask(3, 0.5, 1, offset=-1)


def test_dropout_first_row():
    from fastcnn import layers

    x = np.random.default_rng(0).standard_normal((9, 50))
    whole = layers.Dropout(0.5, seed=5).forward(x)
    part = layers.Dropout(0.5, seed=5)
    part.first_row = 4
    np.testing.assert_array_equal(part.forward(x[4:7]), whole[4:7])


@pytest.mark.parametrize("augment", [None, "augment", "callable"])
@pytest.mark.parametrize("size", [2, 3])
def test_sharded_loader_gives_the_rows_of_the_single_process_batches(augment, size):
    rng = np.random.default_rng(1)
    x = rng.random((23, 1, 8, 8)).astype(np.float32)
    x[:, :, :2] = 0
    t = np.arange(23)
    aug = {
        None: None,
        "augment": Augment(1, 15.0, seed=3),
        "callable": lambda xb, epoch, batch: xb + epoch + 10 * batch,
    }[augment]
    one = DataLoader(x, t, 10, seed=4, augment=aug)
    shards = [DataLoader(x, t, 10, seed=4, augment=aug, shard=(r, size)) for r in range(size)]
    for epoch in (0, 2):
        for loader in (one, *shards):
            loader.set_epoch(epoch)
        for i, batches in enumerate(zip(one, *shards)):
            (xb, tb), parts = batches[0], batches[1:]
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xb)
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), tb)
            for r, loader in enumerate(shards):
                lo, n = loader.rows(i)
                assert n == len(tb) and lo == shard_rows(n, r, size)[0]


def test_a_communicator_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(distributed.MPIUnavailable, match=r"pip install 'fastcnn\[mpi\]'"):
        distributed.Communicator()


def test_launched_reads_the_launchers_variables(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.launched_size() == 1
    monkeypatch.setenv("PMI_SIZE", "4")
    assert distributed.launched() and distributed.launched_size() == 4


def test_timeout_variable_is_checked(monkeypatch):
    monkeypatch.setenv("FASTCNN_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FASTCNN_DIST_TIMEOUT"):
        distributed.default_timeout()
    monkeypatch.setenv("FASTCNN_DIST_TIMEOUT", "2.5")
    assert distributed.default_timeout() == 2.5


# -- under mpirun -------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTCNN_DATA_DIR", None)
    env.update(extra)
    return env


def _run(n: int | None, args: list[str], timeout: float = 240, **env: str):
    """``args`` under ``mpirun -n n`` (or in one process for n None)."""
    cmd = list(args)
    if n is not None:
        assert MPIRUN is not None
        cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(n), *cmd]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env), check=False
    )


def _script_outputs(
    tmp: Path,
    source: str,
    ranks: tuple[int | None, ...],
    *args: str,
    timeout: float = 240,
    **env: str,
) -> dict[int | None, dict[str, np.ndarray]]:
    """``source`` run as a script with ``args`` and, last, the .npz file it writes: in one
    process for None in ``ranks``, under ``mpirun -n`` for a number; {n: the file's arrays}."""
    script = tmp / "script.py"
    script.write_text(source)
    outputs = {}
    for n in ranks:
        out = tmp / f"out-{'-'.join(args)}-{n}.npz"
        r = _run(n, [sys.executable, str(script), *args, str(out)], timeout, **env)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs[n] = dict(np.load(out))
    return outputs


_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastcnn import datasets, distributed, models, train

    dtype, iters, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    comm = distributed.Communicator() if distributed.launched() else None
    model = models.MODELS["deep"](dtype=dtype, seed=3)
    trainer = train.Trainer(
        model, datasets.mnist_source(subset="embedded"), epochs=2, batch_size=100,
        limit_batches=iters // 2, val=0, augment=True, progress=False, verbose=False, comm=comm,
    )
    trainer.fit()
    if comm is None or comm.is_root:
        np.savez(out, losses=np.array(trainer.iteration_losses), **model.params)
    """
)


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory):
    """100 iterations of DeepConvNet (dropout and augmentation on) in one process and on 2
    and 3 ranks (3: shards of 34, 33 and 33), float64 and float32."""
    if MPIRUN is None:
        pytest.skip("mpi4py or mpirun is not installed")  # pragma: no cover
    tmp = tmp_path_factory.mktemp("dp")
    runs = {}
    for dtype in ("float64", "float32"):
        outputs = _script_outputs(tmp, _LOOP, (None, 2, 3), dtype, "100", OMP_NUM_THREADS="1")
        runs |= {(dtype, n): arrays for n, arrays in outputs.items()}
    return runs


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_float64_losses_equal_one_process(loop_runs, n):
    one, many = loop_runs["float64", None], loop_runs["float64", n]
    assert len(one["losses"]) == 100
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=1e-12, atol=0)
    for key in one:
        if key != "losses":
            scale = np.abs(one[key]).max()
            assert np.abs(many[key] - one[key]).max() <= 1e-10 * scale, key


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_float32_differs_from_one_process_less_than_float32_from_float64(loop_runs, n):
    # In float32 any rounding difference (the shards change the order of the sums) grows
    # over the iterations, as it does between float32 and float64 in one process: the loss
    # curves of two float32 runs are only as close as each is to the exact one. The tolerance
    # justified is that noise floor: the one-process float32 run's distance from the float64
    # one, doubled (the triangle inequality over the two float32 runs), and the first
    # iterations, before the noise has grown, within 1e-3.
    one, many = loop_runs["float32", None]["losses"], loop_runs["float32", n]["losses"]
    exact = loop_runs["float64", None]["losses"]
    noise = np.abs(one - exact).max()
    assert np.abs(many - one).max() <= 2 * noise
    np.testing.assert_allclose(many[:5], one[:5], rtol=1e-3)


_SUMS = textwrap.dedent(
    """
    import numpy as np
    from fastcnn import distributed

    comm = distributed.Communicator()
    r, n = comm.rank, comm.size
    for dtype in (np.float32, np.float64, np.int64):
        for size in (0, 1, 5, 1000, 50_001):  # the small (one message) and chunked paths
            rng = np.random.default_rng([size, r])
            x = (rng.standard_normal(size) * 10.0 ** rng.integers(-8, 8, size)).astype(dtype)
            total = comm.allreduce_sum(x)
            everyone = comm.allgather_object(x)
            expect = everyone[0].copy()
            for other in everyone[1:]:
                expect += other  # rank order, element by element
            assert total.dtype == dtype and np.array_equal(total, expect), (dtype, size)
            assert len(set(comm.allgather_object(total.tobytes()))) == 1
    params = {"w": np.full((3, 4), float(r)), "b": np.arange(5.0) + r}
    distributed.broadcast_parameters(comm, params)
    assert (params["w"] == 0).all() and (params["b"] == np.arange(5.0)).all()
    g = distributed.sum_gradients(comm, {"w": np.ones((2, 2), np.float32)}, 0.5)
    assert g["w"].shape == (2, 2) and (g["w"] == 0.5 * n).all()
    print("sums ok", r)
    """
)


@needs_mpi
@pytest.mark.mpi
def test_the_sum_adds_in_rank_order_and_is_the_same_on_every_rank(tmp_path):
    script = tmp_path / "sums.py"
    script.write_text(_SUMS)
    r = _run(3, [sys.executable, str(script)], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(r.stdout.split("\n"))[-3:] == ["sums ok 0", "sums ok 1", "sums ok 2"]


@needs_mpi
def test_one_rank_without_a_launcher_is_a_communicator_of_one():
    # In its own process: MPI, once initialised, stays so until the process ends.
    code = (
        "import numpy as np; from fastcnn import distributed; c = distributed.Communicator(); "
        "x = np.arange(4.0); s = c.allreduce_sum(x); "
        "assert (c.rank, c.size, c.is_root) == (0, 1, True); "
        "assert np.array_equal(s, x) and s is not x; print('one')"
    )
    r = _run(None, [sys.executable, "-c", code], timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "one", r.stderr[-2000:]


_TINY = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastcnn import datasets, distributed, models, train

    comm = distributed.Communicator() if distributed.launched() else None
    (x, t), (xt, tt) = datasets.load_mnist(flatten=False, subset="embedded", dtype=np.float64)
    data = ((x[:7], t[:7]), (xt[:2], tt[:2]))  # batches of 2, 2, 2, 1; a test set of 2
    model = models.MODELS["deep"](dtype="float64", seed=1)
    trainer = train.Trainer(model, data, epochs=2, batch_size=2, val=0, progress=False,
                            verbose=False, comm=comm)
    result = trainer.fit()
    if comm is None or comm.is_root:
        np.savez(sys.argv[1], losses=np.array(trainer.iteration_losses),
                 test=[result.report["loss"], result.report["accuracy"]], **model.params)
    """
)


@needs_mpi
@pytest.mark.mpi
def test_more_ranks_than_rows_leaves_some_ranks_without_rows(tmp_path):
    # 3 ranks, batches of 2 and 1 images and a test set of 2: every step and the final test
    # have ranks with nothing to do, which must still take part (and count their dropout).
    runs = _script_outputs(tmp_path, _TINY, (None, 3), timeout=120)
    one, three = runs[None], runs[3]
    assert len(one["losses"]) == 8
    np.testing.assert_allclose(three["losses"], one["losses"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(three["test"], one["test"], rtol=1e-12)
    for key in one:
        np.testing.assert_allclose(three[key], one[key], rtol=1e-10, atol=1e-14)


_CLASSIC = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastcnn import datasets, distributed, train

    class TwoLayer:  # the classic protocol, no fastcnn model
        def __init__(self):
            rng = np.random.default_rng(0)
            self.params = {"W1": rng.standard_normal((784, 20)) * 0.05, "b1": np.zeros(20),
                           "W2": rng.standard_normal((20, 10)) * 0.05, "b2": np.zeros(10)}

        def _forward(self, x):
            p = self.params
            a = x.reshape(len(x), -1) @ p["W1"] + p["b1"]
            return a, np.maximum(a, 0)

        def predict(self, x):
            return self._forward(x)[1] @ self.params["W2"] + self.params["b2"]

        def _proba(self, x):
            s = self.predict(x)
            e = np.exp(s - s.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        def loss(self, x, t):
            return float(-np.log(self._proba(x)[np.arange(len(t)), t]).mean())

        def accuracy(self, x, t):
            return float((self.predict(x).argmax(1) == t).mean())

        def gradient(self, x, t):
            a, h = self._forward(x)
            d = self._proba(x)
            d[np.arange(len(t)), t] -= 1
            d /= len(t)
            dh = d @ self.params["W2"].T
            dh[a <= 0] = 0
            return {"W1": x.reshape(len(x), -1).T @ dh, "b1": dh.sum(0), "W2": h.T @ d,
                    "b2": d.sum(0)}

    comm = distributed.Communicator() if distributed.launched() else None
    data = datasets.load_mnist(subset="embedded", dtype=np.float64)
    trainer = train.Trainer(TwoLayer(), data, epochs=1, batch_size=100, limit_batches=20,
                            val=0, optimizer="SGD", lr=0.1, progress=False, verbose=False,
                            comm=comm)
    trainer.fit()
    if comm is None or comm.is_root:
        np.savez(sys.argv[1], losses=np.array(trainer.iteration_losses))
    """
)


@needs_mpi
@pytest.mark.mpi
def test_a_network_of_the_classic_protocol_trains_data_parallel(tmp_path):
    runs = _script_outputs(tmp_path, _CLASSIC, (None, 3), timeout=120)
    one, three = runs[None]["losses"], runs[3]["losses"]
    assert len(one) == 20
    np.testing.assert_allclose(three, one, rtol=1e-12, atol=0)


_TRAIN = ["--model", "deep", "--subset", "embedded", "--no-progress", "--val", "500",
          "--limit-batches", "15", "--dtype", "float64", "--augment"]  # fmt: skip


def _fastcnn(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastcnn", "train", *_TRAIN, *args]


def _log(out: Path) -> dict:
    return json.loads((out / "log.json").read_text())


@needs_mpi
@pytest.mark.mpi
def test_fastcnn_train_resumes_on_another_number_of_ranks(tmp_path):
    one, dp = tmp_path / "one", tmp_path / "dp"
    r = _run(None, _fastcnn("--epochs", "2", "--out", str(one)))
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run(2, _fastcnn("--epochs", "1", "--out", str(dp)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("data-parallel over 2 ranks") == 1  # only rank 0 prints
    r = _run(3, [sys.executable, "-m", "fastcnn", "train", "--resume",
                 str(dp / "checkpoint.npz"), "--epochs", "2", "--no-progress"])  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stdout and "data-parallel over 3 ranks" in r.stdout
    a, b = _log(one), _log(dp)
    np.testing.assert_allclose(b["iterations"]["loss"], a["iterations"]["loss"], rtol=1e-12)
    assert len(b["iterations"]["loss"]) == 30
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert eb["val_loss"] == pytest.approx(ea["val_loss"], rel=1e-12)
        assert eb["val_acc"] == ea["val_acc"]
    assert b["report"]["accuracy"] == a["report"]["accuracy"]
    assert sorted(p.name for p in dp.iterdir()) == sorted(p.name for p in one.iterdir())


@needs_mpi
@pytest.mark.mpi
@pytest.mark.skipif(not os.environ.get("FASTCNN_DATA_DIR"), reason="needs the full MNIST")
def test_fastcnn_train_on_full_mnist_matches_one_process(tmp_path):
    # The criterion on the real data: 100 iterations of DeepConvNet in float64 on the
    # full MNIST (batch 100, dropout on), 2 ranks against one process, losses to 1e-12.
    data = os.environ["FASTCNN_DATA_DIR"]
    args = ["--model", "deep", "--data-dir", data, "--dtype", "float64", "--epochs", "1",
            "--limit-batches", "100", "--val", "0", "--no-progress"]  # fmt: skip
    logs = []
    for n in (None, 2):
        out = tmp_path / f"run-{n}"
        cmd = [sys.executable, "-m", "fastcnn", "train", *args, "--out", str(out)]
        r = _run(n, cmd, FASTCNN_DATA_DIR=data)
        assert r.returncode == 0, r.stderr[-3000:]
        logs.append(_log(out))
    one, two = (np.array(log["iterations"]["loss"]) for log in logs)
    assert len(one) == 100 and logs[0]["data"]["n_train"] == 60000
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=0)
    assert logs[1]["report"]["loss"] == pytest.approx(logs[0]["report"]["loss"], rel=1e-9)


def _ranks_of(launcher: subprocess.Popen, n: int, timeout: float = 60) -> list[int]:
    """The pids of the ranks a launcher started (its python descendants)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True)
        rows = [line.split(None, 2) for line in out.stdout.splitlines()[1:]]
        children: dict[int, list[tuple[int, str]]] = {}
        for pid, ppid, args in rows:
            children.setdefault(int(ppid), []).append((int(pid), args))
        found, todo = [], [launcher.pid]
        while todo:
            for pid, args in children.get(todo.pop(), []):
                todo.append(pid)
                if "fastcnn" in args and "python" in args.split()[0]:
                    found.append(pid)
        if len(found) == n:
            return sorted(found)
        time.sleep(0.2)
    raise AssertionError(f"the launcher's {n} ranks did not appear")


def _start(n: int, args: list[str], **env: str) -> subprocess.Popen:
    assert MPIRUN is not None
    cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(n), *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(**env)
    )


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "checkpoint.npz").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.1)
    time.sleep(0.1)  # into the next epoch


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("how", ["kill", "hang", "usr1"])
def test_a_dead_hung_or_stopped_rank_stops_the_others_and_the_run_resumes(tmp_path, how):
    # kill: SIGKILL to rank 1; hang: SIGSTOP to rank 1; usr1: SIGUSR1 to mpirun, which passes
    # it on to every rank (the graceful stop: after the current iteration, with a checkpoint).
    out = tmp_path / "run"
    args = _fastcnn("--epochs", "2", "--out", str(out))
    args[args.index("15")] = "1000"  # whole epochs of 25 batches: long enough to stop one
    args[args.index("float64")] = "float32"
    args[args.index("500")] = "2500"
    proc = _start(2, args, FASTCNN_DIST_TIMEOUT="5", OMP_NUM_THREADS="1")
    ranks: list[int] = []
    try:
        ranks = _ranks_of(proc, 2)
        _wait_for_checkpoint(out, proc)
        saved = (out / "checkpoint.npz").read_bytes()
        t0 = time.monotonic()
        if how == "usr1":
            os.kill(proc.pid, signal.SIGUSR1)
        else:
            os.kill(ranks[1], signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        _, stderr = proc.communicate(timeout=60)
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode != 0
    assert stopped < 30
    if how == "usr1":
        assert "fastcnn: SIGUSR1: stopping after the current iteration" in stderr
        assert stderr.count("resume with") == 1, stderr  # rank 0 alone says it
        log = _log(out)
        assert log["status"] == "interrupted" and log["position"]["batch"] > 0
    else:
        ours = [line for line in stderr.splitlines() if line.startswith("fastcnn: rank 0 of 2")]
        assert len(ours) == 1, stderr
        expect = "the MPI launcher ended the job" if how == "kill" else "no answer from the other"
        assert expect in ours[0]
        assert (out / "checkpoint.npz").read_bytes() == saved  # intact: written atomically
    r = _run(None, [sys.executable, "-m", "fastcnn", "train", "--resume",
                    str(out / "checkpoint.npz"), "--no-progress"], timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    log = _log(out)
    assert log["status"] == "finished" and log["position"]["iteration"] == 2 * 25


@needs_mpi
@pytest.mark.mpi
def test_ranks_that_disagree_refuse_to_start(tmp_path):
    assert MPIRUN is not None
    base = _fastcnn("--epochs", "1", "--out", str(tmp_path / "x"))
    cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", "1", *base, "--seed", "1",
           ":", "-n", "1", *base, "--seed", "2"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if "disagree" in line]
    assert len(lines) == 1, r.stderr
    assert "seed: rank 0 has 1, rank 1 2" in lines[0]
    assert not (tmp_path / "x" / "checkpoint.npz").exists()


_OWN_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fastcnn import datasets, distributed, models, optim

    (x, t), _ = datasets.load_mnist(flatten=False, subset="embedded", dtype=np.float64)
    comm = distributed.Communicator() if distributed.launched() else None
    model = models.MODELS["simple"](dtype="float64", seed=comm.rank if comm else 0)
    opt = optim.Adam(lr=1e-3)
    shard = None
    if comm is not None:
        distributed.broadcast_parameters(comm, model.params)  # rank 0's: seeds differ
        opt = distributed.DistributedOptimizer(opt, comm)
        shard = (comm.rank, comm.size)
    for xb, tb in datasets.DataLoader(x[:700], t[:700], 100, shard=shard):
        loss, grads = model.loss_and_gradient(xb, tb)
        if comm is None:
            opt.update(model.params, grads)
        else:
            opt.update(model.params, grads, batch_size=len(tb))
    if comm is not None:
        digests = comm.allgather_object(b"".join(v.tobytes() for v in model.params.values()))
        assert len(set(digests)) == 1, "the ranks' parameters differ"
    if comm is None or comm.is_root:
        np.savez(sys.argv[1], **model.params)
    """
)


@needs_mpi
@pytest.mark.mpi
def test_distributed_optimizer_in_a_loop_of_ones_own(tmp_path):
    runs = _script_outputs(tmp_path, _OWN_LOOP, (None, 3))
    one, three = runs[None], runs[3]
    for key in one:
        np.testing.assert_allclose(three[key], one[key], rtol=1e-10, atol=1e-13)
