"""Runtime configuration: version, threads, CPU features, ISA selection, the `info` command,
lazy loading of the compiled core, and kernels in processes forked from a threaded parent."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest

import fastcnn


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_version_matches_core():
    from fastcnn import _core

    assert fastcnn.__version__ == _core.__version__
    assert fastcnn.__version__.count(".") == 2


def test_set_num_threads_roundtrip_and_validation():
    old = fastcnn.get_num_threads()
    try:
        fastcnn.set_num_threads(3)
        assert fastcnn.get_num_threads() == 3
        with fastcnn.threads(1):
            assert fastcnn.get_num_threads() == 1
        assert fastcnn.get_num_threads() == 3
    finally:
        fastcnn.set_num_threads(old)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fastcnn.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        fastcnn.set_num_threads(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be an int"):
        fastcnn.set_num_threads(True)


def test_min_thread_work_roundtrip_and_validation():
    from fastcnn import _config

    old = _config.get_min_thread_work()
    assert old > 0  # small calls stay on the calling thread by default
    with _config.min_thread_work(0):
        assert _config.get_min_thread_work() == 0
        a = np.ones((64, 64), np.float32)
        with fastcnn.threads(2):
            np.testing.assert_array_equal(fastcnn.gemm(a, a), np.full((64, 64), 64.0))
    assert _config.get_min_thread_work() == old
    with pytest.raises(ValueError, match=">= 0"):
        _config.set_min_thread_work(-1.0)
    with pytest.raises(TypeError, match="number"):
        _config.set_min_thread_work("1")  # type: ignore[arg-type]


def test_default_threads_honour_omp_num_threads():
    res = _run("import fastcnn; print(fastcnn.get_num_threads())", OMP_NUM_THREADS="3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3"


def test_isa_selection_and_env_override():
    isas = fastcnn.available_isas()
    assert isas[0] == "generic"
    assert fastcnn.get_isa() in isas
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        fastcnn.set_isa("sse9")
    res = _run("import fastcnn; print(fastcnn.get_isa())", FASTCNN_ISA="generic")
    assert res.stdout.strip() == "generic", res.stderr
    res = _run("import fastcnn; fastcnn.get_isa()", FASTCNN_ISA="bogus")
    assert res.returncode != 0 and "unknown ISA 'bogus'" in res.stderr


def test_winograd_switch_roundtrip_and_env_override():
    old = fastcnn.get_winograd()
    with fastcnn.winograd(not old):
        assert fastcnn.get_winograd() is (not old)
        assert fastcnn.config()["winograd"] is (not old)
    assert fastcnn.get_winograd() is old
    # The context manager saves the setting when its body starts, not when it is created.
    cm = fastcnn.winograd(True)
    try:
        fastcnn.set_winograd(False)
        with cm:
            assert fastcnn.get_winograd() is True
        assert fastcnn.get_winograd() is False
    finally:
        fastcnn.set_winograd(old)
    for value, expected in [("0", "False"), ("Off", "False"), ("no", "False"), ("1", "True")]:
        res = _run("import fastcnn; print(fastcnn.get_winograd())", FASTCNN_WINOGRAD=value)
        assert res.stdout.strip() == expected, (value, res.stderr)


def test_cpu_features_agree_with_isas():
    feats = fastcnn.cpu_features()
    assert set(feats) >= {"avx2", "fma", "avx512f"}
    if "avx2" in fastcnn.available_isas():
        assert feats["avx2"] and feats["fma"]
    if "avx512" in fastcnn.available_isas():
        assert feats["avx512f"]


def test_show_config_and_info_command():
    buf = io.StringIO()
    fastcnn.show_config(file=buf)
    text = buf.getvalue()
    assert f"fastcnn {fastcnn.__version__}" in text
    assert f"threads:         {fastcnn.get_num_threads()}" in text
    assert f"kernel isa:      {fastcnn.get_isa()}" in text
    assert f"winograd conv:   {'on' if fastcnn.get_winograd() else 'off'}" in text
    res = subprocess.run(
        [sys.executable, "-m", "fastcnn", "info"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "threads:" in res.stdout and "kernel isa:" in res.stdout


def test_reference_import_does_not_load_compiled_core():
    res = _run(
        "import sys, fastcnn.reference, fastcnn.reference.layers;"
        "print('fastcnn._core' in sys.modules)"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fastcnn.nope  # type: ignore[attr-defined]


def _child_gemm(queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from fastcnn import _config

    a = np.ones((300, 200), np.float32)
    with fastcnn.threads(2), _config.min_thread_work(0):  # the child's own pool
        out = [fastcnn.gemm(a, a.T) for _ in range(3)]
    queue.put([float(o.min()) for o in out] + [float(o.max()) for o in out])


def test_kernels_work_in_forked_child_of_threaded_parent():
    # The parent runs multithreaded kernels first, so its pool threads exist before fork();
    # the child has none of them and must start its own.
    from fastcnn import _config

    with fastcnn.threads(2), _config.min_thread_work(0):
        a = np.ones((400, 300), np.float32)
        fastcnn.gemm(a, a.T)
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child_gemm, args=(queue,))
        proc.start()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
            pytest.fail("kernel call in a forked child hung")
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == [200.0] * 6


def test_regions_from_many_python_threads_at_once():
    """Kernels called from several Python threads at once (the GIL is released) share one
    pool: each region runs on the pool or, while another runs, on its own thread; every
    result is exact."""
    from concurrent.futures import ThreadPoolExecutor

    from fastcnn import _config

    rng = np.random.default_rng(0)
    a = rng.integers(-4, 4, (96, 80)).astype(np.float64)
    b = rng.integers(-4, 4, (80, 72)).astype(np.float64)
    want = a @ b  # small integers: exact in any summation order
    x = rng.standard_normal((4, 3, 12, 12), dtype=np.float32)
    w = rng.standard_normal((8, 3, 3, 3), dtype=np.float32)

    def work(i: int) -> bool:
        ok = True
        for _ in range(40):
            ok &= bool(np.array_equal(fastcnn.gemm(a, b), want))
            ok &= bool(np.array_equal(fastcnn.functional.conv2d_forward(x, w, None, 1, 1),
                                      conv_want))  # fmt: skip
        return ok

    with fastcnn.threads(1):
        conv_want = fastcnn.functional.conv2d_forward(x, w, None, 1, 1)
    with fastcnn.threads(2), _config.min_thread_work(0):
        with ThreadPoolExecutor(4) as ex:
            assert all(ex.map(work, range(8)))
