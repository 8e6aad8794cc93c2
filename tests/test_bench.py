"""`fastcnn bench`'s pieces (no timing is asserted): the measured FMA peak, the useful FLOPs
of each convolution pass against a hand computation, the training-step peers (PyTorch eager and
channels_last, TensorFlow) and their logits check, the step table's columns and its notes for
peers that are missing, and the run limited to one ISA in a subprocess. The whole quick bench
through the command line is tests/test_cli.py's test_bench_quick."""

from __future__ import annotations

import importlib.util
import io
import math
import sys
from pathlib import Path

import pytest

import fastcnn
from fastcnn import _bench, _bench_isa, _bench_peers, _core
from fastcnn._bench import CONVS, ConvShape
from fastcnn._bench_peak import layer_flops, pass_flops

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_TF = importlib.util.find_spec("tensorflow") is not None


# ---- the FMA peak ---------------------------------------------------------------------------


@pytest.mark.parametrize("isa", fastcnn.available_isas())
def test_fma_peak_is_a_positive_finite_rate(isa):
    r = _core.fma_peak(isa, min_seconds=0.005, repeat=2)
    assert r["isa"] == isa
    assert math.isfinite(r["gflops"]) and r["gflops"] > 0
    assert 1 <= r["threads"] <= fastcnn.get_num_threads()
    assert r["seconds"] > 0 and r["flops"] > 0
    # the operations counted: 2 per multiply-add, chains x lanes per round, for every thread
    per_round = 2 * r["chains"] * r["lanes"] * r["threads"]
    assert r["flops"] % per_round == 0
    assert math.isclose(r["gflops"], r["flops"] / r["seconds"] / 1e9, rel_tol=1e-9)
    assert math.isfinite(r["checksum"])


def test_fma_peak_lanes_follow_the_isa():
    lanes = {"generic": 4, "avx2": 8, "avx512": 16}
    for isa in fastcnn.available_isas():
        assert _core.fma_peak(isa, min_seconds=0.001, repeat=1)["lanes"] == lanes[isa]


def test_fma_peak_one_thread():
    with fastcnn.threads(1):
        assert _core.fma_peak(fastcnn.get_isa(), min_seconds=0.002, repeat=1)["threads"] == 1


def test_fma_peak_refuses_bad_arguments():
    with pytest.raises(ValueError, match="unknown ISA"):
        _core.fma_peak("sse9")
    with pytest.raises(ValueError, match="min_seconds"):
        _core.fma_peak("generic", min_seconds=0.0)
    with pytest.raises(ValueError, match="repeat"):
        _core.fma_peak("generic", repeat=0)


# ---- useful FLOPs per pass --------------------------------------------------------------------


def test_pass_flops_by_hand():
    conv2 = ConvShape(c=16, k=16, h=28, w=28, size=3, stride=1, pad=1)  # DeepConvNet's conv2
    assert CONVS["conv2_16to16_28"] == conv2
    # direct: 2 * N * K * C * R * S * P * Q = 2 * 100 * 16 * 16 * 9 * 784
    assert pass_flops(conv2, 100, "forward", "direct_columns") == 361_267_200
    # F(4x4, 3x3): 100 images x 7 x 7 tiles x 36 points x 256 channel pairs x 2
    assert pass_flops(conv2, 100, "forward", "winograd_f4x4_3x3") == 90_316_800
    # F(2x2, 3x3): 100 x 14 x 14 tiles x 16 points x 256 x 2
    assert pass_flops(conv2, 100, "backward_weights", "winograd_f2x2_3x3") == 160_563_200
    # conv4 pads by 2: y is 16 x 16, dx 14 x 14
    conv4 = CONVS["conv4_32to32_14"]
    assert (conv4.h, conv4.pad) == (14, 2)
    # dx on the flipped problem covers dx (14 x 14): 2 * 100 * 32 * 32 * 9 * 196
    assert pass_flops(conv4, 100, "backward_data", "direct_pixels") == 361_267_200
    # col2im_gemm multiplies over dy's 16 x 16 pixels: 2 * 100 * 32 * 32 * 9 * 256
    assert pass_flops(conv4, 100, "backward_data", "col2im_gemm") == 471_859_200
    # F(2x2) dx over 14 x 14 = 7 x 7 tiles: 100 x 49 x 16 x 1024 x 2
    assert pass_flops(conv4, 100, "backward_data", "winograd_f2x2_3x3") == 160_563_200
    # F(4x4) forward over 16 x 16 = 4 x 4 tiles: 100 x 16 x 36 x 1024 x 2
    assert pass_flops(conv4, 100, "forward", "winograd_f4x4_3x3") == 117_964_800
    # an edge tile counts whole: 13 x 13 outputs in 2 x 2 tiles are 7 x 7 tiles
    odd = ConvShape(c=2, k=3, h=13, w=13, size=3, stride=1, pad=1)
    assert pass_flops(odd, 1, "forward", "winograd_f2x2_3x3") == 49 * 16 * 6 * 2


def test_layer_flops_add_dx_and_dw():
    conv2 = CONVS["conv2_16to16_28"]
    ran = {"forward": "winograd_f4x4_3x3", "backward_data": "winograd_f4x4_3x3",
           "backward_weights": "winograd_f2x2_3x3"}  # fmt: skip
    assert layer_flops(conv2, 100, ran) == (90_316_800, 90_316_800 + 160_563_200)
    assert layer_flops(conv2, 100, {"forward": "direct_columns", "backward_data": None,
                                    "backward_weights": None}) == (361_267_200, 0)  # fmt: skip


def test_pass_flops_refuses_what_it_cannot_count():
    conv2 = CONVS["conv2_16to16_28"]
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        pass_flops(conv2, 100, "forward", "fft")
    with pytest.raises(ValueError, match="unknown pass"):
        pass_flops(conv2, 100, "sideways", "direct_pixels")
    with pytest.raises(ValueError, match="5 x 5 filter"):
        pass_flops(conv2._replace(size=5), 100, "forward", "winograd_f2x2_3x3")


def test_every_algorithm_of_every_pass_is_counted():
    conv2 = CONVS["conv2_16to16_28"]
    for pass_, names in fastcnn.conv_algorithms().items():
        for name in names:
            assert pass_flops(conv2, 1, pass_, name) > 0


# ---- the step table ------------------------------------------------------------------------


@pytest.fixture
def cheap_steps(monkeypatch):
    """Every backend's step a cheap stand-in, present when its framework is in the dict given
    (the table's logic, not the frameworks: test_bench_quick and the tests below run those)."""

    def step(backend, frameworks=None):
        framework = _bench_peers.PEERS.get(backend)
        return None if framework and framework not in (frameworks or {}) else lambda: 0.0

    monkeypatch.setattr(_bench, "check_training_step", lambda: 0.0)
    monkeypatch.setattr(_bench, "training_step", step)


def _rows(text):
    """{backend: its cells} of a table whose backend names may hold a space."""
    rows = {}
    for line in text.splitlines():
        for name in _bench.STEP_BACKENDS:
            if line.strip().startswith(name + " "):
                rows[name] = line.strip()[len(name) :].split()
    return rows


def test_step_table_columns_with_every_peer(cheap_steps):
    out = io.StringIO()
    every = {"torch": object(), "tensorflow": object()}
    steps, memory = _bench._step_table(every, {}, True, False, out)
    text = out.getvalue()
    assert list(steps) == list(_bench.STEP_BACKENDS)
    header = text.splitlines()[2]
    assert header.split()[:4] == ["backend", "ms/step", "time/fastcnn", "time/torch"]
    rows = _rows(text)
    assert set(rows) == set(_bench.STEP_BACKENDS)
    best = _bench.torch_best(steps)
    assert best in ("torch eager", "torch channels_last")
    assert rows[best][2] == "1.00" and rows["fastcnn"][1] == "1.00"
    assert f"x torch's best ({best})" in text and "x tensorflow's" in text
    assert "left out" not in text


def test_step_table_notes_missing_peers(monkeypatch, cheap_steps):
    """A framework that does not import is left out of the table, with a note saying why."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "keras", None)
    frameworks, notes = _bench_peers.import_frameworks()
    assert frameworks == {}
    assert "not installed" in notes["torch"] and "tensorflow-cpu" in notes["tensorflow"]
    out = io.StringIO()
    steps, _ = _bench._step_table(frameworks, notes, True, False, out)
    text = out.getvalue()
    assert list(steps) == ["fastcnn", "reference"]
    assert "time/torch best" not in text
    for peer in _bench_peers.PEERS:
        assert f"{peer}: left out, " in text
    assert _bench.peak_memory("torch eager") is None


def test_frameworks_not_asked_for_are_neither_imported_nor_noted():
    assert _bench_peers.import_frameworks(torch=False, tensorflow=False) == ({}, {})


# ---- the peers themselves --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("peer", ["torch eager", "torch channels_last"])
def test_torch_steps_run_and_check_their_logits(peer, monkeypatch):
    frameworks, _ = _bench_peers.import_frameworks(tensorflow=False)
    step = _bench.training_step(peer, frameworks)
    assert step is not None
    losses = [step() for _ in range(2)]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    # the logits check can fail: against other logits the step is refused, not timed
    monkeypatch.setattr(_bench_peers, "reference_logits", lambda model, x: model.predict(x) + 1)
    with pytest.raises(AssertionError, match=f"the {peer} DeepConvNet's logits differ"):
        _bench.training_step(peer, frameworks)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TF, reason="tensorflow is not installed")
def test_tensorflow_step_runs_and_checks_its_logits(monkeypatch):
    frameworks, notes = _bench_peers.import_frameworks(torch=False)
    if "tensorflow" not in frameworks:
        pytest.skip(f"tensorflow: {notes['tensorflow']}")
    step = _bench.training_step("tensorflow", frameworks)
    assert step is not None
    losses = [step() for _ in range(2)]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    monkeypatch.setattr(_bench_peers, "reference_logits", lambda model, x: model.predict(x) + 1)
    with pytest.raises(AssertionError, match="the tensorflow DeepConvNet's logits differ"):
        _bench.training_step("tensorflow", frameworks)


# ---- one ISA for every framework, in a subprocess -------------------------------------------

needs_avx2 = pytest.mark.skipif(
    "avx2" not in fastcnn.available_isas(), reason="this CPU does not run AVX2"
)


@pytest.mark.slow
@needs_avx2
def test_isa_run_is_limited_to_that_isa():
    r = _bench_isa.run_isa_steps("avx2", quick=True, torch=True, tensorflow=False)
    assert r["isa"] == "avx2" and r["peak"]["isa"] == "avx2" and r["peak"]["gflops"] > 0
    assert r["peak"]["lanes"] == 8
    assert r["steps"]["fastcnn"] > 0 and "reference" not in r["steps"]
    if HAS_TORCH:
        assert r["torch_capability"] == "AVX2"
        assert {"torch eager", "torch channels_last"} <= set(r["steps"])
    else:
        assert r["torch_capability"] is None and "torch" in r["notes"]


def test_isa_run_refuses_an_isa_this_machine_lacks():
    with pytest.raises(ValueError, match="not an ISA this machine runs"):
        _bench_isa.check_isa("avx1024")
    with pytest.raises(ValueError, match="not an ISA this machine runs"):
        _bench.main(quick=True, isa="sse9", out=io.StringIO())


def test_isa_environment_covers_every_isa():
    assert set(_bench_isa.ISA_ENVIRONMENT) >= set(fastcnn.available_isas())
    for isa, env in _bench_isa.ISA_ENVIRONMENT.items():
        assert env["FASTCNN_ISA"] == isa
        assert set(env) == {"FASTCNN_ISA", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"}


# ---- the benchmark scripts ---------------------------------------------------------------------

_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.skipif(not _BENCHMARKS.is_dir(), reason="run from a checkout (benchmarks/)")
@pytest.mark.parametrize(
    "script", sorted(p.stem for p in _BENCHMARKS.glob("*.py")) if _BENCHMARKS.is_dir() else []
)
def test_every_benchmark_script_imports(script, monkeypatch):
    """What the scripts import from fastcnn's bench modules still exists (a helper moved out of
    _bench broke two of them once, which nothing else noticed)."""
    monkeypatch.syspath_prepend(str(_BENCHMARKS))
    sys.modules.pop(script, None)
    importlib.import_module(script)
